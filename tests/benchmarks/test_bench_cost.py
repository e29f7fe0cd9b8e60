"""Performance budgets (run with `make bench`): one op estimate well under 1 ms."""

from perfsim.cost import cost
from perfsim.hardware import load_hardware
from perfsim.ops import parse_op


def test_one_op_estimate(benchmark):
    device = load_hardware("h100-sxm")
    op = parse_op("gemm m=4096 n=4096 k=4096 dtype=bf16")
    result = benchmark(cost, op, device)
    assert result.bound == "compute:bf16"
