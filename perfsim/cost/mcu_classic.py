"""Non-neural kernels on an MCU cluster: which loop is split over cores, and the serial reduction after it.

Each kernel's parallel loop runs over independent items (samples, trees, support vectors, training points,
features); each core then holds a partial result (votes, partial sums, a local top-k) that one core merges
after a barrier — a region of one item, cores × partial results long. Per-item cycles count a natural C loop
on an in-order core: each load 1 issue slot, each FLOP 1 slot on an FPU (or the emulated operation's
cycles), a branch 1; with float work contending for shared FPUs as in perfsim.cost.mcu_kernels.
"""

from __future__ import annotations

from perfsim.cost.cpu_kernels import EXP_INSTRUCTIONS
from perfsim.cost.mcu_kernels import Plan, Region, flop_cycles, fpu_share
from perfsim.dtypes import resolve_dtype
from perfsim.hardware.mcu import Mcu
from perfsim.ops import OpBase
from perfsim.ops_classic import DecisionTree, KMeans, Knn, NaiveBayes, RandomForest, Svm

NODE_INSTRUCTIONS = 5
"""One tree level: load the node's feature index, the feature, the threshold and the child offset; a branch
(the compare is counted apart)."""


def item_cycles(device: Mcu, dtype: str, cores: int, instructions: float, flops: float = 0,
                compares: float = 0) -> float:
    """Core cycles of `instructions` integer/memory instructions plus `flops` FLOPs and `compares` compares."""
    fp = flops + compares
    if dtype in device.emulated or resolve_dtype(dtype).family != "float":
        return (instructions / device.issue_width + flops * flop_cycles(device, dtype)
                + compares * flop_cycles(device, dtype, compare=True))
    return max((instructions + fp) / device.issue_width, fp * fpu_share(device, dtype, cores))


def classic_plan(op: OpBase, device: Mcu, cores: int) -> Plan | None:
    """The regions of a non-neural kernel on `cores` cores; None for an op that is not one."""
    if not isinstance(op, DecisionTree | RandomForest | Svm | Knn | KMeans | NaiveBayes):
        return None
    d = op.dtype

    def cyc(instructions: float, flops: float = 0, compares: float = 0) -> float:
        return item_cycles(device, d, cores, instructions, flops, compares)

    n, f = op.samples, op.features
    if isinstance(op, DecisionTree):
        return Plan(d, (Region("traverse", n, op.depth * cyc(NODE_INSTRUCTIONS, compares=1)),))
    if isinstance(op, RandomForest):
        per_tree = n * (op.depth * cyc(NODE_INSTRUCTIONS, compares=1) + cyc(2, flops=1))  # + vote load/add/store
        merge = n * (cores * op.classes * cyc(1, flops=1) + cyc(op.classes, compares=op.classes - 1))
        return Plan(d, (Region("trees", op.trees, per_tree), Region("vote", 1, merge)))
    if isinstance(op, Svm):
        exp = EXP_INSTRUCTIONS if op.kernel == "rbf" else 0
        per_vector = n * cyc(2 * f + 1, flops=op.kernel_flops + 2 - (1 if exp else 0) + exp)
        reduce = n * (cores * cyc(1, flops=1) + cyc(0, flops=1, compares=1))
        return Plan(d, (Region("kernel", op.support_vectors, per_vector), Region("reduce", 1, reduce)))
    if isinstance(op, Knn):
        per_point = n * cyc(2 * f + 1, flops=3 * f, compares=1)
        merge = n * (cores * op.k * cyc(2, compares=1) + cyc(op.k, flops=op.k, compares=op.classes - 1))
        return Plan(d, (Region("distances", op.train, per_point), Region("merge", 1, merge)))
    if isinstance(op, KMeans):
        assign = op.clusters * cyc(2 * f, flops=3 * f, compares=1) + cyc(2 * f, flops=f)
        update = cores * op.clusters * f * cyc(1, flops=1) + op.clusters * f * cyc(2, flops=1)
        one = (Region("assign", n, assign), Region("update", 1, update))
        return Plan(d, one * op.iterations)
    per_feature = n * op.classes * cyc(3, flops=4)  # naive Bayes: per-core partial log-likelihoods
    reduce = n * (cores * op.classes * cyc(1, flops=1) + cyc(op.classes, flops=op.classes, compares=op.classes - 1))
    return Plan(d, (Region("likelihood", f, per_feature), Region("argmax", 1, reduce)))
