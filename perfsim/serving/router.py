"""Replicas behind a router: each arriving request goes to one replica's scheduler, chosen by a policy.

`round-robin`: replica k mod N for the k-th request. `least-outstanding`: the replica with the fewest requests
routed to it and not yet finished. `least-kv`: the replica whose KV cache is least loaded, (KV tokens held by its
running sequences + prompt tokens routed to it and not yet admitted) / its KV capacity. `prefix-affinity`: a
request naming a conversation (or else a prefix id) goes where the first request with that key went; the first
one, and any request without a key, goes to the least-outstanding replica. Ties go to the lowest-numbered
replica. The router remembers the most recent MAX_HOMES keys (least recently used forgotten), so its memory is
bounded however long the trace.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator

import simpy

from perfsim.errors import PerfsimError
from perfsim.serving.arrivals import Request
from perfsim.serving.scheduler import Handoffs, Sequence, Server

ROUTERS = ("round-robin", "least-outstanding", "least-kv", "prefix-affinity")
MAX_HOMES = 1 << 16  # keys prefix-affinity remembers


def affinity_key(request: Request) -> Hashable | None:
    """What prefix-affinity groups by: the conversation, else the prefix id, else nothing."""
    if request.conversation_id is not None:
        return ("conversation", request.conversation_id)
    return None if request.prefix_id is None else ("prefix", request.prefix_id)


class Router:
    """Chooses a replica for each request under `policy`; `finished(i)` as each request on replica i ends."""

    def __init__(self, policy: str, servers: list[Server]) -> None:
        if policy not in ROUTERS:
            raise PerfsimError(f"--router: unknown policy '{policy}' (known: {', '.join(ROUTERS)})")
        self.policy, self.servers = policy, servers
        self.outstanding = [0] * len(servers)
        self.routed = 0
        self.homes: OrderedDict[Hashable, int] = OrderedDict()

    def pick(self, request: Request) -> int:
        n = len(self.servers)
        if self.policy == "round-robin":
            choice = self.routed % n
        elif self.policy == "least-kv":
            choice = min(range(n), key=lambda i: (self.servers[i].kv_total + self.servers[i].queued_tokens)
                         / self.servers[i].capacity)
        elif self.policy == "prefix-affinity" and (key := affinity_key(request)) is not None:
            choice = self.homes.get(key, -1)
            if choice < 0:
                choice = self._least_outstanding()
                if len(self.homes) >= MAX_HOMES:
                    self.homes.popitem(last=False)
            self.homes[key] = choice
            self.homes.move_to_end(key)
        else:
            choice = self._least_outstanding()
        self.routed += 1
        self.outstanding[choice] += 1
        return choice

    def finished(self, replica: int) -> None:
        self.outstanding[replica] -= 1

    def _least_outstanding(self) -> int:
        return min(range(len(self.servers)), key=self.outstanding.__getitem__)


def route(env: simpy.Environment, requests: Iterator[Request], router: Router, inboxes: list[Handoffs],
          assigned: Callable[[Request, int], None] | None = None):
    """The router process: at each arrival, pick a replica and hand it the request; close every inbox at the end."""
    for request in requests:
        if request.arrival_s > env.now:
            yield env.timeout(request.arrival_s - env.now)
        i = router.pick(request)
        router.servers[i].queued_tokens += request.prompt_len
        inboxes[i].put(Sequence(request, request.prompt_len))
        if assigned is not None:
            assigned(request, i)
    for inbox in inboxes:
        inbox.close()
