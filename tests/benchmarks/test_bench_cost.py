"""Performance budgets (run with `make bench`): one op estimate well under 1 ms, and a memoised one ~1 µs."""

from perfsim.cost import _cost, cost
from perfsim.hardware import load_hardware
from perfsim.ops import parse_op


def test_one_op_estimate(benchmark):
    device = load_hardware("h100-sxm")
    op = parse_op("gemm m=4096 n=4096 k=4096 dtype=bf16")
    result = benchmark(_cost, op, device, "cold")
    assert result.bound == "compute:bf16"


def test_one_op_estimate_memoised(benchmark):
    device = load_hardware("h100-sxm")
    op = parse_op("gemm m=4096 n=4096 k=4096 dtype=bf16")
    result = benchmark(cost, op, device)
    assert result is cost(op, device)
