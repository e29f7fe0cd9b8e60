"""An offloaded scenario estimated: the MoE-Lens bound at its batch, the simulated iteration against it, the
binding resource, the GPU-saturating batch (Eq. 2) and the batch host memory allows.

Throughput counts the tokens one iteration processes (batch × q_len: the new tokens of a decode step, the prompt
tokens of a prefill) over the iteration's time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from perfsim.cost import Cache
from perfsim.errors import PerfsimError
from perfsim.hardware import Device, System
from perfsim.models.scenario import Resolved, Scenario, resolve
from perfsim.offload.bound import Bound, Capacity, bound_of, capacity, offloaded, saturation_tokens
from perfsim.offload.iteration import iteration
from perfsim.offload.placement import Host, Offload
from perfsim.offload.simulate import Simulated, simulate_iteration


@dataclass(frozen=True)
class OffloadEstimate:
    resolved: Resolved
    offload: Offload
    host: Host
    bound: Bound
    capacity: Capacity
    peak: Bound  # the bound at the largest batch that fits
    saturation_tokens: float | None
    simulated: Simulated | None

    @property
    def peak_bound(self) -> str:
        """What caps the throughput over every batch: host (or GPU) memory capacity when the largest batch that fits
        still leaves the link binding (a larger batch would go faster), else the peak's binding resource."""
        return self.capacity.resource if self.peak.bound.startswith("link:") else self.peak.bound

    def summary(self) -> dict[str, Any]:
        r, s = self.resolved, self.resolved.scenario
        sim = self.simulated
        return {
            "model": r.model.name, "hardware": s.hardware, "gpu": r.chip.name,
            "host": f"{self.host.sockets} x {self.host.cpu.name}",
            "phase": s.phase, "batch": s.batch, "context": r.context, "tokens": self.bound.tokens,
            "bound_tokens_per_s": self.bound.tokens_per_s, "bound": self.bound.bound,
            "bound_iteration_s": self.bound.iteration_s,
            **self.bound.by_role(),
            "simulated_tokens_per_s": sim.tokens_per_s if sim else None,
            "simulated_iteration_s": sim.iteration_s if sim else None,
            "simulated_bound": sim.bound if sim else None,
            "simulated_over_bound": sim.tokens_per_s / self.bound.tokens_per_s if sim else None,
            "saturation_tokens": self.saturation_tokens,
            "max_batch": self.capacity.sequences, "kv_bytes_per_sequence": self.capacity.kv_bytes_per_sequence,
            "peak_bound_tokens_per_s": self.peak.tokens_per_s, "peak_bound": self.peak_bound,
        }


def estimate_offload(scenario: Scenario, hardware: Device | System | None = None, cache: Cache = "cold",
                     simulate: bool = True) -> OffloadEstimate:
    """Bound (and, with `simulate`, the discrete-event iteration) of an offloaded scenario. Raise PerfsimError
    when it has no placement or host, or when its batch's KV cache does not fit beside the weights."""
    r, offload, host = offloaded(scenario, hardware)
    it = iteration(r, offload)
    cap = capacity(r, offload, host, r.kv_len)
    s = r.scenario
    if cap.sequences < 1:
        raise PerfsimError(f"one sequence's KV cache ({cap.kv_bytes_per_sequence / 2**30:.2f} GiB) does not fit the "
                           f"{cap.free_bytes / 2**30:.1f} GiB of {cap.level} left beside the weights "
                           f"(binding: {cap.resource})")
    if s.batch > cap.sequences:
        raise PerfsimError(f"batch {s.batch}: its KV cache ({s.batch * cap.kv_bytes_per_sequence / 2**30:.0f} GiB) "
                           f"overflows the {cap.free_bytes / 2**30:.0f} GiB of {cap.level} left beside the weights: "
                           f"at most {cap.sequences} sequences of {r.kv_len} tokens (binding: {cap.resource})")
    peak_r = resolve(s.model_copy(update={"batch": cap.sequences}), hardware)
    peak = bound_of(iteration(peak_r, offload), host)
    has_moe = r.model.moe is not None
    saturation = saturation_tokens(it, host) if has_moe else None
    sim = simulate_iteration(r, offload, host, cache) if simulate else None
    return OffloadEstimate(r, offload, host, bound_of(it, host), cap, peak, saturation, sim)


def sweep(scenario: Scenario, batches: list[int], hardware: Device | System | None = None, simulate: bool = False,
          cache: Cache = "cold") -> list[dict[str, Any]]:
    """One record per batch: tokens, the bound and each ceiling (tokens/s: link, gpu, dram, cpu), the binding
    resource, whether the batch's KV cache fits, and with `simulate` the simulated tokens/s."""
    rows = []
    r, offload, host = offloaded(scenario, hardware)
    cap = capacity(r, offload, host, r.kv_len)
    for batch in batches:
        rb = resolve(r.scenario.model_copy(update={"batch": batch}), hardware)
        b = bound_of(iteration(rb, offload), host)
        row: dict[str, Any] = {"batch": batch, "tokens": b.tokens, "bound_tokens_per_s": b.tokens_per_s,
                               "bound": b.bound, "fits": batch <= cap.sequences}
        row.update(b.by_role())
        if simulate:
            row["simulated_tokens_per_s"] = simulate_iteration(rb, offload, host, cache).tokens_per_s
        rows.append(row)
    return rows
