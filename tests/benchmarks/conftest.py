"""Benchmarks with a wall-clock budget run only under `make bench` (`--benchmark-enable`); the cheap ones also run
once, as smoke tests, in `make test`."""

import pytest


@pytest.fixture
def budget_benchmark(benchmark):
    """`benchmark`, skipping the test unless benchmarks are enabled (a budget in seconds means nothing otherwise)."""
    if benchmark.disabled:
        pytest.skip("a wall-clock budget: run with `make bench`")
    return benchmark
