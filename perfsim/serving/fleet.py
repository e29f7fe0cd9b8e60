"""A fleet: replicas of one scenario behind a router in one simulation, with per-replica and fleet metrics.

Every replica runs its own scheduler (perfsim.serving.scheduler) over its own KV cache, prefix cache and host tier;
they share the memoised step costs (the same model on the same chips). Only the first replica keeps per-iteration
records (for the picture); every replica keeps its busy time and Σ batch · Δt, whence mean batches. Fleet totals
add the replicas up: requests, tokens, iterations, preemptions and energy are sums; the makespan is the last
replica's end; latency percentiles are over every request; mean batch is weighted by each replica's busy time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import simpy

from perfsim.serving.arrivals import Request
from perfsim.serving.costs import StepCosts
from perfsim.serving.kv_tiers import HostTier
from perfsim.serving.prefix_cache import PrefixCache
from perfsim.serving.report import Recorder, summary
from perfsim.serving.router import Router, route
from perfsim.serving.scheduler import Handoffs, SchedulerConfig, Server, ServingResult

Tiers = Callable[[], tuple[PrefixCache | None, HostTier | None]]


@dataclass
class Fleet:
    """The replicas' servers after a run, each one's latency recorder, and the router."""

    servers: list[Server]
    recorders: list[Recorder]
    router: Router

    def merged(self) -> ServingResult:
        """The fleet's totals as one result, without per-iteration records (they stay with each replica)."""
        first = self.servers[0].result
        total = ServingResult(kv_capacity_tokens=first.kv_capacity_tokens, makespan_s=first.makespan_s)
        for server in self.servers:
            r = server.result
            for name in ("finished", "output_tokens", "iterations", "preemptions", "busy_energy_j", "busy_chip_s",
                         "swaps", "host_transfer_s"):
                setattr(total, name, getattr(total, name) + getattr(r, name))
        return total

    def mean_batch(self) -> float | None:
        """Σ batch · Δt / Σ Δt over every replica's iterations: the batch weighted by busy time."""
        busy = sum(server.result.busy_s for server in self.servers)
        return sum(server.result.batch_s for server in self.servers) / busy if busy > 0 else None

    def per_replica(self, devices: int, waiting_w: float | None) -> list[dict[str, object]]:
        """Each replica's summary (as serve's, over its own requests and iterations) and its prefix-cache counts."""
        return [{"replica": i, **summary(server.result, recorder, devices, waiting_w),
                 "mean_batch": server.result.batch_s / server.result.busy_s if server.result.busy_s > 0 else None,
                 **tier_summary([(server.result, server.cache, server.host)])}
                for i, (server, recorder) in enumerate(zip(self.servers, self.recorders, strict=True))]


def serve_fleet(requests: Iterator[Request], costs: StepCosts, capacity: int, config: SchedulerConfig, replicas: int,
                policy: str, on_finish: Callable[[Request, float, float], None], tiers: Tiers,
                slo_ttft_s: float | None = None, slo_tpot_s: float | None = None) -> Fleet:
    """Run every request through the router to completion on `replicas` servers of `capacity` KV tokens each;
    `on_finish(request, first_token_s, end_s)` as each one ends, whichever replica served it."""
    env = simpy.Environment()
    inboxes = [Handoffs(env) for _ in range(replicas)]
    recorders = [Recorder(slo_ttft_s, slo_tpot_s) for _ in range(replicas)]
    servers: list[Server] = []
    router: Router | None = None

    def finisher(i: int) -> Callable[[Request, float, float], None]:
        def finish(request: Request, first_token_s: float, end_s: float) -> None:
            router.finished(i)  # type: ignore[union-attr]
            recorders[i](request, first_token_s, end_s)
            on_finish(request, first_token_s, end_s)

        return finish

    for i in range(replicas):
        cache, host = tiers()
        servers.append(Server(env, inboxes[i], costs, capacity, config, finisher(i),
                              ServingResult(kv_capacity_tokens=capacity, keep_records=i == 0), cache=cache,
                              host=host))
    router = Router(policy, servers)
    env.process(route(env, requests, router, inboxes))
    for server in servers:
        env.process(server.run())
    env.run()
    for server in servers:
        server.result.makespan_s = env.now
    return Fleet(servers, recorders, router)


def tier_summary(servers: list[tuple[ServingResult, PrefixCache | None, HostTier | None]]) -> dict[str, object]:
    """Prefix-cache and host-tier counts over the servers (empty when none has either)."""
    caches = [cache for _, cache, _ in servers if cache is not None]
    hosts = [host for _, _, host in servers if host is not None]
    out: dict[str, object] = {}
    if caches:
        lookups = sum(c.lookups for c in caches)
        hits, host_hits = sum(c.hits for c in caches), sum(c.host_hits for c in caches)
        out |= {"prefix_lookups": lookups, "prefix_hits": hits, "prefix_host_hits": host_hits,
                "prefix_hit_rate": (hits + host_hits) / lookups if lookups else None,
                "prefix_hit_tokens": sum(c.hit_tokens for c in caches),
                "prefix_evictions": sum(c.evictions for c in caches)}
    if hosts:
        out |= {"swaps": sum(r.swaps for r, _, _ in servers),
                "host_transfer_s": sum(r.host_transfer_s for r, _, _ in servers),
                "kv_offloaded_tokens": sum(h.offloaded_tokens for h in hosts),
                "kv_fetched_tokens": sum(h.fetched_tokens for h in hosts)}
    return out
