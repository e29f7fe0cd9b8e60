"""The host tier of the KV cache: host memory (or CXL) behind the chip's host link.

KV moves between a replica's chips and host memory over each chip's host link (the spec's `links` entry named
pcie…, cxl… or host…), every chip moving its own shard at once: seconds per token = KV bytes per token per chip /
that link's bandwidth per direction. The tier holds offloaded prefix entries (LRU) and the caches of sequences
preempted by swapping; a swap takes room from the prefixes (evicting them, oldest first) but never from another
swapped sequence. Moves are priced as stalls of the replica's next iteration (no overlap with compute).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from perfsim.errors import PerfsimError
from perfsim.hardware.common import LinkPort

HOST_LINK_PREFIXES = ("pcie", "cxl", "host")


def host_link(links: list[LinkPort], chip: str) -> LinkPort:
    """The chip's link to host memory. Raise PerfsimError if its spec declares none."""
    for link in links:
        if link.name.lower().startswith(HOST_LINK_PREFIXES):
            return link
    raise PerfsimError(f"{chip} declares no host link (a links entry named {', '.join(HOST_LINK_PREFIXES)}…), "
                       "so KV cannot be offloaded to host memory")


class HostTier:
    """`capacity_tokens` of KV in host memory, moved at `seconds_per_token` each way."""

    def __init__(self, capacity_tokens: int, seconds_per_token: float) -> None:
        self.capacity_tokens, self.seconds_per_token = capacity_tokens, seconds_per_token
        self.entries: OrderedDict[Hashable, int] = OrderedDict()  # offloaded prefixes, least recently used first
        self.prefix_tokens = 0
        self.swapped_tokens = 0.0
        self.offloaded_tokens = self.fetched_tokens = 0.0

    def seconds(self, tokens: float) -> float:
        return tokens * self.seconds_per_token

    def offload(self, key: Hashable, tokens: int) -> float:
        """Keep an evicted prefix entry (dropping the oldest ones to make room); seconds of the move (0 if it
        cannot fit at all)."""
        if tokens > self.capacity_tokens - self.swapped_tokens:
            return 0.0
        self._free(tokens)
        self.entries[key] = tokens
        self.prefix_tokens += tokens
        self.offloaded_tokens += tokens
        return self.seconds(tokens)

    def take(self, key: Hashable) -> int | None:
        """Remove and return the tokens of an offloaded prefix (None if absent)."""
        tokens = self.entries.pop(key, None)
        if tokens is not None:
            self.prefix_tokens -= tokens
        return tokens

    def swap_out(self, tokens: float) -> float | None:
        """Seconds to swap a preempted sequence's `tokens` out; None if the tier cannot hold them."""
        if tokens > self.capacity_tokens - self.swapped_tokens:
            return None
        self._free(tokens)
        self.swapped_tokens += tokens
        self.offloaded_tokens += tokens
        return self.seconds(tokens)

    def swap_in(self, tokens: float) -> float:
        """Seconds to bring a swapped sequence's `tokens` back."""
        self.swapped_tokens -= tokens
        self.fetched_tokens += tokens
        return self.seconds(tokens)

    def _free(self, tokens: float) -> None:
        while self.entries and self.prefix_tokens + self.swapped_tokens + tokens > self.capacity_tokens:
            _, size = self.entries.popitem(last=False)
            self.prefix_tokens -= size
