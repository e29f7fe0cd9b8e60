"""Budgets: 2,000 requests at rate 20 on one A100 and 10,000 on 8 H100s (tp 8), each under 10 s; and 2,000 requests of
varied lengths on one A100, where every distinct token count is a step estimate of its own (the memo's bound)."""

import json

from perfsim.cli import main


def _serve(*argv: str) -> dict:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["serve", *argv, "--format", "json"]) == 0
    return json.loads(out.getvalue())


def test_serve_2000_requests_one_a100(benchmark):
    result = benchmark.pedantic(_serve, args=("--model", "llama-2-7b", "--hardware", "a100-sxm-80gb", "--rate", "20",
                                              "--requests", "2000", "--seed", "1"), rounds=1, iterations=1)
    assert result["requests"] == 2000


def test_serve_10000_requests_8_chips(benchmark):
    result = benchmark.pedantic(_serve, args=("--model", "llama-3-70b", "--hardware", "dgx-h100", "--tp", "8",
                                              "--rate", "20", "--requests", "10000", "--seed", "1"), rounds=1,
                                iterations=1)
    assert result["requests"] == 10000


def test_serve_2000_requests_of_varied_lengths_one_a100(benchmark):
    result = benchmark.pedantic(_serve, args=("--model", "llama-2-7b", "--hardware", "a100-sxm-80gb", "--rate", "2",
                                              "--requests", "2000", "--prompt-len", "uniform:64:3000", "--output-len",
                                              "uniform:16:512", "--seed", "1"), rounds=1, iterations=1)
    assert result["requests"] == 2000
