"""Budget: `perfsim estimate --op ...` under 0.3 s wall, median of 7 runs in a fresh interpreter each (the start
is the cost: imports of pandas and matplotlib only when a table or a plot needs them); the step estimate's wall
time printed beside it."""

import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OP_ESTIMATE = ["estimate", "--hardware", "h100-sxm", "--op", "gemm m=4096 n=4096 k=4096"]
STEP_ESTIMATE = ["estimate", "--model", "llama-3-70b", "--hardware", "dgx-h100", "--tp", "8", "--batch", "64",
                 "--context", "2048"]
BUDGET_S = 0.3


def _wall_s(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "perfsim", *argv], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _median_s(argv: list[str], runs: int = 7) -> float:
    _wall_s(argv)  # warm the file cache and the bytecode
    return statistics.median(_wall_s(argv) for _ in range(runs))


def test_op_estimate_cli_starts_fast(benchmark):
    if benchmark.disabled:
        pytest.skip("a wall-clock budget: run with `make bench`")
    op, step = _median_s(OP_ESTIMATE), _median_s(STEP_ESTIMATE)
    print(f"\nCLI wall, median of 7: op estimate {op * 1e3:.0f} ms, Llama-3-70B tp 8 decode step {step * 1e3:.0f} ms")
    benchmark.pedantic(_wall_s, args=(OP_ESTIMATE,), rounds=3, iterations=1)
    assert op < BUDGET_S
