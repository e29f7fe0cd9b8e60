"""Training a small network (a CNN in workloads/networks/) on one chip, as PULP-TrainLib does on an MCU.

One sample at a time (batch 1): each sample's forward and backward (perfsim.models.mcu_training: weight and input
gradients, none of the input for the first layer), gradients accumulated over `global_batch` samples, then one
SGD update of every weight (`tokens` counts samples here). step_s = global_batch × Σ (forward + backward op
times) + Σ update op times, each op priced by the chip's own cost model. MAC/cycle = the step's MACs (FLOPs / 2)
/ (step_s × clock).
Memory: the weights and their gradients, plus every layer's output kept for the backward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from perfsim.cost import OpCost, cost
from perfsim.cost.roofline import level_capacity
from perfsim.errors import PerfsimError
from perfsim.hardware import Device
from perfsim.models.mcu_training import backward_ops, update_op
from perfsim.models.network import network_ops, output_bytes, weight_bytes
from perfsim.ops import OpBase
from perfsim.training.config import TrainConfig
from perfsim.training.layout import hardware_for


@dataclass(frozen=True)
class NetworkTrainingEstimate:
    config: TrainConfig
    chip: Device
    per_sample: list[tuple[str, OpBase, OpCost]]  # (pass, op, cost)
    updates: list[tuple[OpBase, OpCost]]
    memory: dict[str, float]

    @property
    def samples(self) -> int:
        return self.config.global_batch or self.config.micro_batch

    @property
    def step_s(self) -> float:
        return self.samples * sum(c.time_s for _, _, c in self.per_sample) + sum(c.time_s for _, c in self.updates)

    @property
    def flops(self) -> float:
        return self.samples * sum(op.flops for _, op, _ in self.per_sample) + sum(op.flops for op, _ in self.updates)

    @property
    def mac_per_cycle(self) -> float:
        return self.flops / 2 / (self.step_s * self.chip.clock.peak)

    def rows(self) -> list[tuple[str, OpBase, OpCost, int]]:
        return [(phase, op, c, self.samples) for phase, op, c in self.per_sample] + \
            [("update", op, c, 1) for op, c in self.updates]

    def by_resource(self) -> dict[str, float]:
        seconds: dict[str, float] = {}
        for _, _, c, n in self.rows():
            seconds[c.bound] = seconds.get(c.bound, 0.0) + c.time_s * n
        return seconds

    def summary(self) -> dict[str, Any]:
        step = self.step_s
        c = self.config
        time_s = {phase: sum(x.time_s * n for p, _, x, n in self.rows() if p == phase)
                  for phase in ("forward", "backward", "update")}
        return {"model": c.model, "hardware": self.chip.name, "devices": 1, "global_batch": self.samples,
                "step_s": step, "samples_per_s": self.samples / step, "flops_per_step": self.flops,
                "mac_per_cycle": self.mac_per_cycle,
                "time_to_train_s": c.tokens / self.samples * step if c.tokens else None, "time_s": time_s,
                "memory_bytes_per_device": self.memory["total_bytes"], "memory": self.memory,
                "bound": max(self.by_resource().items(), key=lambda item: item[1])[0],
                "breakdown": [{"pass": p, "op": op.label, "time_s": x.time_s * n, "flops": op.flops * n,
                               "bytes": x.bytes * n, "count": n, "bound": x.bound} for p, op, x, n in self.rows()]}


CLUSTER_FIELDS = ("devices", "tp", "pp", "dp", "ep", "zero", "micro_batch", "seq_len", "recompute", "precision",
                  "schedule", "virtual_stages", "grad_reduce", "bucket_mb")
"""TrainConfig fields of a transformer on a cluster, which a CNN trained one sample at a time on one chip refuses."""


def estimate_network_training(config: TrainConfig) -> NetworkTrainingEstimate:
    """Price one training step of network `config.model` on one chip (module doc). Raise PerfsimError for a
    cluster setting (CLUSTER_FIELDS) or an optimizer other than SGD."""
    given = [f"--{name.replace('_', '-')}" for name in CLUSTER_FIELDS if name in config.model_fields_set]
    if given:
        raise PerfsimError(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to training "
                           f"{config.model} (a CNN, one sample at a time on one chip)")
    if config.optimizer != "sgd" and "optimizer" in config.model_fields_set:
        raise PerfsimError(f"--optimizer {config.optimizer}: a CNN on one chip trains with SGD here")
    chip, _, _ = hardware_for(config.hardware, 1)
    forward = network_ops(config.model)
    per_sample = [("forward", op, cost(op, chip)) for op in forward]
    per_sample += [("backward", b, cost(b, chip)) for i, op in reversed(list(enumerate(forward)))
                   for b in backward_ops(op, first=i == 0)]
    updates = [(u, cost(u, chip)) for op in forward if (u := update_op(op)) is not None]
    weights = sum(weight_bytes(op) for op in forward)
    activations = sum(output_bytes(op) for op in forward)
    capacity = level_capacity(chip, chip.main)
    memory = {"params_bytes": weights, "grads_bytes": weights, "activation_bytes": activations,
              "total_bytes": 2 * weights + activations, "capacity_bytes": capacity}
    return NetworkTrainingEstimate(config, chip, per_sample, updates, memory)
