"""Budgets: 100,000 requests over 8 replicas (Llama-3-8B, one H100 each, least-outstanding routing) under 30 s;
1,000,000 requests in bounded memory, run in a child process whose peak resident memory is reported and held
under 1 GiB (requests are streamed; the scheduler keeps the sequences in flight; what grows with the run is 24 bytes
of latencies per request, twice (fleet and replica), and 32 bytes per iteration of each replica's record)."""

import json
import subprocess
import sys
import time

import perfsim.api as ps

FLEET = {"model_ref": "llama-3-8b", "hardware_ref": "h100-sxm", "rate": 200.0, "replicas": 8,
         "router": "least-outstanding", "prompt_len": "uniform:100:1000", "output_len": "uniform:10:300", "seed": 1}


def test_100000_requests_over_8_replicas(budget_benchmark):
    start = time.perf_counter()
    run = budget_benchmark.pedantic(ps.serve, kwargs={**FLEET, "requests": 100_000}, rounds=1, iterations=1)
    elapsed = time.perf_counter() - start
    budget_benchmark.extra_info.update(seconds=elapsed, iterations=run.summary["iterations"])
    assert run.summary["requests"] == 100_000
    assert elapsed < 30


CHILD = """
import json, resource, sys, time
import perfsim.api as ps
start = time.perf_counter()
s = ps.serve(**json.loads(sys.argv[1])).summary
print(json.dumps({"requests": s["requests"], "iterations": s["iterations"], "seconds": time.perf_counter() - start,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def test_1000000_requests_in_bounded_memory(budget_benchmark):
    def child() -> dict:
        args = {**FLEET, "requests": 1_000_000, "prompt_len": "512", "output_len": "128"}
        out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True,
                             check=True).stdout
        return json.loads(out)

    result = budget_benchmark.pedantic(child, rounds=1, iterations=1)
    budget_benchmark.extra_info.update(result)
    print(f"1,000,000 requests: {result['seconds']:.0f} s, peak RSS {result['peak_rss_mib']:.0f} MiB")
    assert result["requests"] == 1_000_000
    assert result["peak_rss_mib"] < 1024
