"""Prefix caching: KV blocks of shared prompt prefixes kept in HBM with LRU eviction, spilling to a host tier.

An entry is a key (a prefix id or a conversation id) and the tokens of KV it holds. `lookup` moves a hit to the
most-recently-used end; a hit in the host tier is fetched back into HBM. `insert` adds or refreshes an entry and
evicts least-recently-used entries until it fits; with a host tier, an evicted entry is offloaded there (itself
LRU). An entry larger than the HBM budget is not cached. Time for the moves is priced by the host tier.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from perfsim.serving.kv_tiers import HostTier


class PrefixCache:
    """`capacity_tokens` of KV in HBM set aside for shared prefixes, and an optional host tier behind it."""

    def __init__(self, capacity_tokens: int, host: HostTier | None = None) -> None:
        self.capacity_tokens, self.host = capacity_tokens, host
        self.entries: OrderedDict[Hashable, int] = OrderedDict()  # key → tokens, least recently used first
        self.used_tokens = 0
        self.lookups = self.hits = self.host_hits = self.evictions = 0
        self.hit_tokens = 0

    def lookup(self, key: Hashable) -> tuple[int, float]:
        """(tokens cached under `key`, 0 on a miss; seconds to fetch them from the host tier)."""
        self.lookups += 1
        tokens = self.entries.get(key)
        if tokens is not None:
            self.entries.move_to_end(key)
            self.hits += 1
            self.hit_tokens += tokens
            return tokens, 0.0
        if self.host is not None and (tokens := self.host.take(key)) is not None:
            self.host_hits += 1
            self.hit_tokens += tokens
            seconds = self.host.seconds(tokens)
            self.host.fetched_tokens += tokens
            return tokens, seconds + self.insert(key, tokens)
        return 0, 0.0

    def peek(self, key: Hashable) -> bool:
        """Whether `key` is cached in either tier (no change to the order or the counts)."""
        return key in self.entries or (self.host is not None and key in self.host.entries)

    def insert(self, key: Hashable, tokens: int) -> float:
        """Cache `tokens` under `key` (most recently used); seconds spent offloading what it evicts to the host."""
        if tokens <= 0 or tokens > self.capacity_tokens:
            return 0.0
        self.used_tokens -= self.entries.pop(key, 0)
        seconds = 0.0
        while self.used_tokens + tokens > self.capacity_tokens:
            old, size = self.entries.popitem(last=False)
            self.used_tokens -= size
            self.evictions += 1
            if self.host is not None:
                seconds += self.host.offload(old, size)
        self.entries[key] = tokens
        self.used_tokens += tokens
        return seconds
