"""Serving at scale: routers, prefix caching, KV tiers, schedulers, context policies and workloads, by hand."""

import json
import math
from array import array
from types import SimpleNamespace

import numpy as np
import pytest

import perfsim.api as ps
from perfsim.errors import PerfsimError
from perfsim.models.scenario import Scenario
from perfsim.serving.arrivals import Request, arrival_process, from_trace, poisson
from perfsim.serving.capacity import max_rate, quantile_interval
from perfsim.serving.context import ContextLimit
from perfsim.serving.costs import StepCosts, kv_capacity_tokens
from perfsim.serving.kv_tiers import HostTier
from perfsim.serving.prefix_cache import PrefixCache
from perfsim.serving.report import Recorder
from perfsim.serving.router import Router
from perfsim.serving.scheduler import SchedulerConfig, serve

A100 = Scenario(model="llama-2-7b", hardware="a100-sxm-80gb")
SERVE = {"model_ref": "llama-2-7b", "hardware_ref": "a100-sxm-80gb"}


def _run(requests, config=None, capacity=None, cache=None, host=None):
    config = config or SchedulerConfig()
    capacity = capacity or kv_capacity_tokens(A100, config.max_tokens)[0]
    recorder = Recorder(None, None)
    result = serve(iter(requests), StepCosts(A100), capacity, config, recorder, cache=cache, host=host)
    return result, recorder


# --- routers -------------------------------------------------------------------------------------------------------

def _servers(*loads):
    """Stand-ins for replicas: (KV tokens held, prompt tokens queued, KV capacity) each."""
    return [SimpleNamespace(kv_total=kv, queued_tokens=queued, capacity=cap) for kv, queued, cap in loads]


def _picks(router, events):
    """Route 'r<i>:<prefix>' requests and apply 'f<replica>' finishes in order; the replicas chosen."""
    chosen = []
    for i, event in enumerate(events):
        if event.startswith("f"):
            router.finished(int(event[1:]))
        else:
            chosen.append(router.pick(Request(i, 0.0, 10, 10, prefix_id=event[2:] or None)))
    return chosen


TRACE = ["r:A", "r:B", "r:A", "f0", "r:C", "r:", "f1", "f1", "r:B", "r:A"]


def test_round_robin_by_hand():
    # the k-th request goes to k mod 3 whatever finishes: 0, 1, 2, 0, 1, 2, 0
    assert _picks(Router("round-robin", _servers(*[(0, 0, 1)] * 3)), TRACE) == [0, 1, 2, 0, 1, 2, 0]


def test_least_outstanding_by_hand():
    # outstanding [0,0,0]: A → 0 [1,0,0]; B → 1 [1,1,0]; A → 2 [1,1,1]; f0 [0,1,1]; C → 0 [1,1,1];
    # '' → 0 (ties go low) [2,1,1]
    router = Router("least-outstanding", _servers(*[(0, 0, 1)] * 3))
    assert _picks(router, TRACE[:6]) == [0, 1, 2, 0, 0]
    # f1 [2,0,1]; B → 1 [2,1,1]; A → 1 (the lowest of the tied) [2,2,1]
    assert _picks(router, ["f1", "r:B", "r:A"]) == [1, 1]
    assert router.outstanding == [2, 2, 1]


def test_prefix_affinity_by_hand():
    # A: new key → least outstanding, 0 [1,0,0]; B: new → 1 [1,1,0]; A: home 0 [2,1,0]; f0 [1,1,0]; C: new → 2
    # [1,1,1]; '' (no key) → least outstanding, 0 [2,1,1]; f1, f1; B: its home 1; A: its home 0
    router = Router("prefix-affinity", _servers(*[(0, 0, 1)] * 3))
    assert _picks(router, TRACE) == [0, 1, 0, 2, 0, 1, 0]


def test_least_kv_by_hand():
    # loads (held + queued) / capacity: 0: (500 + 0) / 1000 = 0.5; 1: (100 + 50) / 400 = 0.375; 2: 300 / 600 = 0.5
    servers = _servers((500, 0, 1000), (100, 50, 400), (300, 0, 600))
    router = Router("least-kv", servers)
    assert router.pick(Request(0, 0.0, 200, 1)) == 1
    servers[1].queued_tokens += 200  # as the router process counts it: 1 is now (100 + 250) / 400 = 0.875
    assert router.pick(Request(1, 0.0, 200, 1)) == 0  # 0 and 2 tie at 0.5: the lower index


def test_router_on_a_served_trace():
    # four requests at t = 0, prefixes A, A, A, B, on two replicas; none finishes before all are routed
    trace = [Request(i, 0.0, 64, 4, prefix_id=p, prefix_len=32) for i, p in enumerate("AAAB")]
    counts = {policy: [r["requests"] for r in ps.serve(**SERVE, trace=trace, replicas=2, router=policy)
                       .summary["per_replica"]] for policy in ("round-robin", "least-outstanding", "prefix-affinity")}
    assert counts == {"round-robin": [2, 2], "least-outstanding": [2, 2], "prefix-affinity": [3, 1]}


def test_fleet_totals_add_up_the_replicas():
    run = ps.serve(**SERVE, rate=20, requests=60, replicas=3, router="least-kv", prompt_len=128, output_len=16)
    per = run.replicas_frame()
    assert per["requests"].sum() == run.summary["requests"] == 60
    assert run.summary["devices"] == 3
    assert run.summary["iterations"] == per["iterations"].sum()


def test_unknown_router_is_refused():
    with pytest.raises(PerfsimError, match="--router: unknown policy 'random'"):
        Router("random", [])


# --- prefix cache and host tier --------------------------------------------------------------------------------------

def test_lru_by_hand():
    cache = PrefixCache(250)  # holds two 100-token prefixes
    for key in "ABACAB":
        if not cache.lookup(key)[0]:
            cache.insert(key, 100)
    # A miss [A]; B miss [A B]; A hit [B A]; C miss, evicts B [A C]; A hit [C A]; B miss, evicts C [A B]
    assert (cache.lookups, cache.hits, cache.evictions) == (6, 2, 2)
    assert list(cache.entries) == ["A", "B"]


def test_lru_with_a_host_tier_by_hand():
    host = HostTier(1000, 2e-6)
    cache = PrefixCache(250, host)
    for key in "ABACAB":
        if not cache.lookup(key)[0]:
            cache.insert(key, 100)
    # as above, but B (evicted at C) is offloaded, and fetched back at the last B: a host hit; fetching B evicts C
    assert (cache.hits, cache.host_hits) == (2, 1)
    assert host.fetched_tokens == 100 and host.offloaded_tokens == 200  # B, then C
    assert list(host.entries) == ["C"]


def _spaced(prefixes, prompt=400, output=2, gap=10.0, **fields):
    """One request every `gap` seconds (each done before the next), prefix ids from `prefixes`."""
    return [Request(i, gap * i, prompt, output, prefix_id=p, prefix_len=100, **fields) for i, p in enumerate(prefixes)]


def test_prefix_hits_on_a_trace_with_known_sharing():
    # as test_lru_by_hand, through the scheduler: a 250-token cache holds two 100-token prefixes
    run = ps.serve(**SERVE, trace=_spaced("ABACAB"), prefix_cache=250)
    s = run.summary
    assert (s["prefix_lookups"], s["prefix_hits"], s["prefix_evictions"]) == (6, 2, 2)
    assert s["prefix_hit_rate"] == pytest.approx(2 / 6) and s["prefix_hit_tokens"] == 200
    ttft = run.to_frame()["ttft_s"]
    # a hit prefills 300 tokens over 100 cached instead of 400: the 3rd and 5th requests start sooner
    assert ttft[2] < ttft[0] and ttft[4] < ttft[0] and ttft[1] == pytest.approx(ttft[0])
    assert s["kv_capacity_tokens"] == kv_capacity_tokens(A100, 8192)[0] - 250  # the cache's share is set aside


def test_host_tier_fetch_is_priced_over_the_host_link():
    run = ps.serve(**SERVE, trace=_spaced("ABACAB"), prefix_cache=250, host_kv="1 GiB")
    s = run.summary
    assert (s["prefix_hits"], s["prefix_host_hits"]) == (2, 1)
    # llama-2-7b fp16 KV: 2 · 32 layers · 4096 · 2 B = 512 KiB a token; A100's PCIe 4: 32 GB/s a direction
    per_token = 2 * 32 * 4096 * 2 / 32e9
    # offloads: B (at C), C (at B's fetch); fetch: B: 300 tokens moved
    assert s["host_transfer_s"] == pytest.approx(300 * per_token)
    assert s["kv_offloaded_tokens"] == 200 and s["kv_fetched_tokens"] == 100


def test_conversation_turns_hit_the_previous_turn():
    # turn 2 of x starts with turn 1's 200 + 50 tokens; y is new: lookups 3 (x miss, x hit, y miss)
    trace = [Request(0, 0.0, 200, 50, conversation_id="x"), Request(1, 30.0, 400, 20, conversation_id="x"),
             Request(2, 60.0, 400, 20, conversation_id="y")]
    s = ps.serve(**SERVE, trace=trace, prefix_cache=2000).summary
    assert (s["prefix_lookups"], s["prefix_hits"], s["prefix_hit_tokens"]) == (3, 1, 250)


# --- schedulers and preemption ----------------------------------------------------------------------------------------

def test_static_batch_makes_a_late_request_wait_for_the_whole_batch():
    # request 1 arrives 1 ms after request 0: vLLM takes it in at the next iteration; a static batch lets it in
    # only when request 0 (200 output tokens, ≥ 200 iterations of ≥ 1 ms) has finished
    trace = [Request(0, 0.0, 100, 200), Request(1, 0.001, 100, 5)]
    _, vllm = _run(trace)
    _, static = _run(trace, SchedulerConfig(policy="static"))
    assert static.ttft[1] > static.e2e[0] - 0.001 > 0.2
    assert vllm.ttft[1] < 0.05


def test_static_batch_pays_for_padded_slots():
    # two requests at t = 0 (outputs 2 and 40): after the short one ends, a static batch still costs two decodes
    trace = [Request(0, 0.0, 100, 2), Request(1, 0.0, 100, 40)]
    costs = StepCosts(A100)
    _, vllm = _run(trace)
    _, static = _run(trace, SchedulerConfig(policy="static"))
    # one prefill iteration emits both first tokens; request 0 ends after decode iteration 1; request 1's decode
    # iterations k = 2 … 39 (context 100 + k − 1, as in test_one_request_by_hand) run alone under vLLM, while the
    # static batch pays batch 2 for them
    extra = sum(costs.decode(2, 99 + k) - costs.decode(1, 99 + k) for k in range(2, 40))
    assert static.e2e[1] - vllm.e2e[1] == pytest.approx(extra, rel=1e-9)
    assert extra > 0


def test_orca_reserves_the_whole_output():
    # capacity 1000, watermark 1 %: 990; each request reserves 100 + 400 and a block of 16: the first takes 516, a
    # second would need 500 + 2 · 16 + 500 = 1032 > 990, so one runs at a time and nothing is ever preempted
    trace = [Request(i, 0.0, 100, 400) for i in range(3)]
    result, _ = _run(trace, SchedulerConfig(policy="orca"), capacity=1000)
    assert result.preemptions == 0 and max(result.batch_sizes) == 1
    vllm, _ = _run(trace, capacity=1000)
    assert max(vllm.batch_sizes) > 1 and vllm.preemptions > 0


def test_sarathi_is_the_chunked_loop():
    trace = [Request(i, 0.01 * i, 3000, 20) for i in range(5)]
    _, chunked = _run(trace, SchedulerConfig(max_tokens=512))
    _, sarathi = _run(trace, SchedulerConfig(max_tokens=512, policy="sarathi"))
    assert list(sarathi.e2e) == list(chunked.e2e)
    with pytest.raises(PerfsimError, match="sarathi is chunked prefill"):
        SchedulerConfig(policy="sarathi", chunked_prefill=False)


def test_swap_preemption_moves_caches_over_the_host_link():
    trace = [Request(i, 0.0, 100, 400) for i in range(3)]
    host = HostTier(10_000, 1e-5)
    result, rec = _run(trace, SchedulerConfig(preemption="swap"), capacity=1000, host=host)
    assert result.preemptions > 0 and result.swaps == result.preemptions
    # every swapped cache comes back: out and in, each priced at 10 µs a token
    assert host.offloaded_tokens == host.fetched_tokens > 0 and host.swapped_tokens == 0
    assert result.host_transfer_s == pytest.approx(2 * host.offloaded_tokens * 1e-5)
    assert len(rec.e2e) == 3


def test_swap_needs_host_memory():
    with pytest.raises(PerfsimError, match="--preemption swap needs host memory"):
        ps.serve(**SERVE, requests=2, preemption="swap")


def test_framework_host_overhead_is_paid_every_iteration():
    # vLLM's preset adds 4 ms of host time to every step; a prefill-only pass is not graph-captured under it, so
    # that pass costs the eager one plus exactly 4 ms
    eager = StepCosts(A100.model_copy(update={"framework": "eager"})).prefill(512)
    vllm = StepCosts(A100.model_copy(update={"framework": "vllm"})).prefill(512)
    assert vllm - eager == pytest.approx(4e-3)


# --- context policies -----------------------------------------------------------------------------------------------

LONG = [Request(0, 0.0, 4000, 200), Request(1, 1.0, 100, 100), Request(2, 2.0, 5000, 10)]


def test_drop_and_clip_count_requests_beyond_the_context():
    # llama-2-7b's context is 4096: requests 0 (4200) and 2 (5010) are beyond it
    dropped = ps.serve(**SERVE, trace=LONG).summary
    assert (dropped["requests"], dropped["dropped_requests"], dropped["clipped_requests"]) == (1, 2, 0)
    clipped = ps.serve(**SERVE, trace=LONG, context_policy="clip").summary
    assert (clipped["requests"], clipped["dropped_requests"], clipped["clipped_requests"]) == (3, 0, 2)
    assert clipped["throughput_tokens_per_s"] * clipped["makespan_s"] == pytest.approx(200 + 100 + 10)


def test_clip_keeps_the_output_and_trims_the_prompt():
    limit = ContextLimit(4096, "test", "clip")
    out = list(limit(iter([Request(0, 0.0, 5000, 96, prefix_id="p", prefix_len=4500), Request(1, 0.0, 10, 5000)])))
    assert (out[0].prompt_len, out[0].output_len, out[0].prefix_len) == (4000, 96, 4000)
    assert (out[1].prompt_len, out[1].output_len) == (1, 4095)  # the output alone is too long: one prompt token
    assert limit.clipped == 2


def test_heavy_tailed_prompts_never_abort():
    # lognormal prompts (median 2000, σ 1.5): count the draws beyond 4096 − 128 with the same generator
    requests = list(poisson(1.0, 300, "lognormal:2000:1.5", "128", seed=4))
    beyond = sum(r.prompt_len + 128 > 4096 for r in requests)
    s = ps.serve(**SERVE, rate=1.0, requests=300, prompt_len="lognormal:2000:1.5", output_len=128, seed=4,
                 max_batch=64).summary
    assert beyond > 30 and s["dropped_requests"] == beyond and s["requests"] == 300 - beyond


def test_the_error_policy_stops_at_the_first_long_request(cli, tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text("arrival_s,prompt_len,output_len\n0.0,4000,200\n")
    result = cli("serve", "--model", "llama-2-7b", "--hardware", "a100-sxm-80gb", "--trace", str(trace),
                 "--context-policy", "error")
    assert result.code == 2 and "exceed llama-2-7b's max_context (4096)" in result.err


# --- workloads ------------------------------------------------------------------------------------------------------

def _gaps(process, n=20000, rate=4.0):
    times = np.array([r.arrival_s for r in poisson(rate, n, "8", "8", seed=2, process=process)])
    return times, np.diff(np.concatenate([[0.0], times]))


def test_gamma_arrivals_have_the_mean_rate_and_cv():
    _, gaps = _gaps("gamma:3")
    assert gaps.mean() == pytest.approx(0.25, rel=0.05)  # 1 / rate
    assert gaps.std() / gaps.mean() == pytest.approx(3, rel=0.05)


def test_poisson_is_unchanged_by_the_process_argument():
    assert list(poisson(3.0, 50, "8", "8", seed=1)) == list(poisson(3.0, 50, "8", "8", seed=1, process="poisson"))


def test_on_off_arrivals_fall_in_the_on_windows():
    times, _ = _gaps("onoff:2:6")
    assert np.all(times % 8 < 2)  # ON for 2 s in every 8 s
    assert len(times) / times[-1] == pytest.approx(4.0, rel=0.05)  # the mean rate is still 4/s


def test_diurnal_arrivals_follow_the_rate():
    # rate(t) = 4 (1 + 0.5 sin(2π t / 100)): the first half of a period holds ∫ = 50 + 0.5 · 100 / π,
    # the second 50 − 0.5 · 100 / π: a ratio of (50 + 15.92) / (50 − 15.92) = 1.934
    times, _ = _gaps("diurnal:0.5:100")
    phase = times % 100
    assert (phase < 50).sum() / (phase >= 50).sum() == pytest.approx(65.92 / 34.08, rel=0.05)


@pytest.mark.parametrize(("spec", "needle"), [("zipf", "unknown process 'zipf'"), ("gamma:0", "CV must be positive"),
                                              ("onoff:1", "is not onoff:ON_S:OFF_S"),
                                              ("diurnal:1:10", "0 ≤ AMPLITUDE < 1")])
def test_bad_arrival_processes(spec, needle):
    with pytest.raises(PerfsimError, match=needle):
        arrival_process(spec)


def test_jsonl_and_csv_traces_carry_prefix_and_conversation(tmp_path):
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text('{"arrival_s": 0, "prompt_len": 300, "output_len": 5, "prefix_id": "sys", "prefix_len": 100}\n'
                     "\n"
                     '{"arrival_s": 1.5, "prompt_len": 40, "output_len": 5, "conversation_id": 7}\n')
    csv = tmp_path / "t.csv"
    csv.write_text("arrival_s,prompt_len,output_len,prefix_id,prefix_len,conversation_id\n0,300,5,sys,100,\n"
                   "1.5,40,5,,,7\n")
    for path in (jsonl, csv):
        a, b = from_trace(path)
        assert (a.prefix_id, a.prefix_len, a.conversation_id) == ("sys", 100, None)
        assert (b.arrival_s, b.prefix_id, b.prefix_len, b.conversation_id) == (1.5, None, 0, "7")


@pytest.mark.parametrize(("text", "needle"), [("[1, 2]\n", "line 1: not a JSON object"),
                                              ('{"arrival_s": 0}\n', "line 1: missing output_len, prompt_len"),
                                              ("{oops\n", "line 1: not JSON"),
                                              ('{"arrival_s": 0, "prompt_len": 5, "output_len": 1, "prefix_len": 9,'
                                               ' "prefix_id": "a"}\n', "prefix_len must be 0 to prompt_len"),
                                              ('{"arrival_s": 0, "prompt_len": 5.5, "output_len": 1}\n',
                                               "the lengths integers")])
def test_bad_jsonl_lines_name_the_file_and_line(tmp_path, text, needle):
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(PerfsimError, match=needle):
        list(from_trace(path))


# --- capacity search --------------------------------------------------------------------------------------------------

def _fake_run(rate, n=100):
    """A run whose every request has TTFT = rate / 10 s and TPOT 10 ms: the 1 s TTFT SLO holds up to 10/s."""
    ttft = array("d", [rate / 10] * n)
    return SimpleNamespace(recorder=SimpleNamespace(ttft=ttft, tpot=array("d", [0.01] * n), e2e=ttft),
                           summary={"goodput_requests_per_s": min(rate, 10.0), "throughput_tokens_per_s": 0.0})


def test_max_rate_bisects_a_given_bracket_to_the_tolerance():
    search = max_rate(_fake_run, 1.0, None, 99, (1, 100))
    low, high = search.bracket
    assert low <= 10 < high and high / low <= 1.01 and search.rate_rps == low
    # the two ends, then ⌈log2(ln 100 / ln 1.01)⌉ = ⌈log2 462.8⌉ = 9 bisections
    assert len(search.probes) == 2 + 9 and search.binding == "slo_ttft_s"


def test_max_rate_finds_its_bracket_by_doubling():
    search = max_rate(_fake_run, 1.0, None, 99, start=1.0)
    # 1, 2, 4, 8 meet, 16 misses: [8, 16], then ⌈log2(ln 2 / ln 1.01)⌉ = ⌈log2 69.66⌉ = 7 bisections
    assert [p.rate_rps for p in search.probes[:5]] == [1, 2, 4, 8, 16]
    assert len(search.probes) == 5 + 7 and 8 <= search.rate_rps <= 10 < search.bracket[1]
    frame = search.to_frame()
    assert list(frame["rate_rps"]) == sorted(frame["rate_rps"])
    assert list(frame["meets_slo"]) == [r <= 10 for r in frame["rate_rps"]]


def test_max_rate_refuses_a_bad_bracket():
    with pytest.raises(PerfsimError, match="the low end, 20 requests/s, already misses slo_ttft_s"):
        max_rate(_fake_run, 1.0, None, 99, (20, 40))
    with pytest.raises(PerfsimError, match="the high end, 5 requests/s, still meets"):
        max_rate(_fake_run, 1.0, None, 99, (1, 5))
    with pytest.raises(PerfsimError, match="needs --slo-ttft or --slo-tpot"):
        max_rate(_fake_run, None, None)


def test_quantile_interval_of_the_median_of_100():
    # the classic distribution-free 95 % interval of a median of n = 100 is (x(40), x(61)): P(B ≤ 39) = 0.018 ≤
    # 0.025 < P(B ≤ 40) = 0.028 and P(B ≤ 59) = 0.972 < 0.975 ≤ P(B ≤ 60) = 0.982, B ~ Binomial(100, 1/2)
    assert quantile_interval(np.arange(1.0, 101.0), 50) == (40.0, 61.0)


def test_cli_max_rate(cli, tmp_path):
    out = cli("serve", "--model", "llama-2-7b", "--hardware", "a100-sxm-80gb", "--max-rate", "--slo-ttft", "2s",
              "--slo-tpot", "50ms", "--percentile", "99", "--requests", "200", "--rate-range", "1:64",
              "--format", "json", "-o", str(tmp_path))
    s = json.loads(out.out)
    curve = (tmp_path / "capacity.csv").read_text().splitlines()
    assert len(curve) == 1 + s["probes"] and (tmp_path / "capacity.png").stat().st_size > 0
    low, high = s["bracket_rps"]
    assert s["max_rate_rps"] == low and high / low <= 1.01 and s["percentile"] == 99
    assert s["met"]["tpot_s"] <= 0.05 and s["met"]["ttft_s"] <= 2.0
    assert s["binding_slo"] in ("slo_ttft_s", "slo_tpot_s")
    lo, hi = s["met"]["ttft_interval_s"]
    assert lo <= s["met"]["ttft_s"] <= hi


def test_cli_rejects_search_flags_without_max_rate(cli):
    result = cli("serve", "--model", "llama-2-7b", "--hardware", "a100-sxm-80gb", "--percentile", "99")
    assert result.code == 2 and "apply to --max-rate" in result.err


def test_disaggregated_kv_crosses_the_link_joining_the_pools():
    from perfsim.api import hardware
    from perfsim.serving.run import joining_link

    cluster = hardware("h100-cluster")  # 8-GPU NVSwitch nodes on an InfiniBand fat tree
    assert joining_link(cluster.interconnects, 8)[0].name == "nvswitch"  # both pools in one node
    assert joining_link(cluster.interconnects, 16) == (cluster.interconnect, 1)  # the pools in two nodes: IB


def test_a_shared_step_cost_memo_changes_nothing_but_the_count():
    from perfsim.serving.run import shared_step_costs

    fresh = ps.serve(**SERVE, rate=8, requests=40, prompt_len="uniform:64:900", output_len=8).summary
    with shared_step_costs():
        ps.serve(**SERVE, rate=3, requests=40, prompt_len="uniform:64:900", output_len=8)
        shared = ps.serve(**SERVE, rate=8, requests=40, prompt_len="uniform:64:900", output_len=8).summary
    assert shared["step_cost_evaluations"] < fresh["step_cost_evaluations"]
    assert {**shared, "step_cost_evaluations": 0} == {**fresh, "step_cost_evaluations": 0}


def test_max_rate_without_a_request_count_judges_a_steady_state_not_a_burst():
    # 100 requests at a million per second all arrive at once and finish within the SLOs: a burst, not a rate.
    # Without `requests`, each probe is lengthened until its arrivals span 100 median request lifetimes. A request
    # of 32 output tokens lives at least 31 decode steps, each at least Llama-3-8B's 16.06 GB of bf16 weights over
    # the H100's 3.35 TB/s datasheet HBM: 31 × 4.79 ms = 0.149 s, so the arrivals span at least 14.9 s.
    summary = ps.max_rate("llama-3-8b", "h100-sxm", slo_ttft="2s", slo_tpot="50ms", output_len=32).summary
    assert 1 < summary["max_rate_rps"] < 1000  # one H100 serves tens of requests per second, not a million
    met = summary["met"]
    assert met["requests"] / met["rate_rps"] >= 100 * 31 * 16.06e9 / 3.35e12


class _Probed(Exception):
    """Ends a capacity search once its probes are run (the search's answer is not what is tested)."""


@pytest.mark.parametrize("requests", [None, 300])
def test_how_many_simulations_a_probe_runs(monkeypatch, requests):
    # Llama-3-8B on one H100, 512-token prompts, 32 output tokens: a request lives at least 31 decode steps of
    # 16.06 GB of weights over 3.35 TB/s = 0.149 s. At 1 request/s the pilot's 100 arrivals span 100 lifetimes
    # unless a lone request lives over 1 s (a 512-token prefill adds milliseconds, not most of a second): the pilot
    # is the probe's one run. At 64 requests/s, 100 lifetimes of arrivals are
    # at least 64 × 100 × 0.149 = 952 requests: the pilot, then one run at steady_requests of the pilot's median
    # lifetime. With `requests` given, every probe is one run of that many.
    served: list[ps.ServeResult] = []
    real = ps.serve
    monkeypatch.setattr(ps, "serve", lambda *args, **kw: served.append(real(*args, **kw)) or served[-1])
    runs: dict[float, list[int]] = {}

    def search(run_at, *args):
        for rate in (1.0, 64.0):
            served.clear()
            run_at(rate)
            runs[rate] = [s.summary["requests"] for s in served]
        pilot_s = served[0].summary["e2e_s"]["p50"]
        raise _Probed(pilot_s)

    monkeypatch.setattr("perfsim.serving.capacity.max_rate", search)
    given = {} if requests is None else {"requests": requests}
    with pytest.raises(_Probed) as probed:
        ps.max_rate("llama-3-8b", "h100-sxm", slo_ttft="2s", output_len=32, **given)
    if requests is not None:
        assert runs == {1.0: [300], 64.0: [300]}
        return
    pilot_s = probed.value.args[0]
    assert pilot_s >= 31 * 16.06e9 / 3.35e12
    assert runs[1.0] == [100]
    assert runs[64.0] == [100, math.ceil(64 * 100 * pilot_s)] and runs[64.0][1] >= 952


def test_max_rate_on_a_burst_asks_for_more_requests():
    with pytest.raises(PerfsimError, match="too few requests to load a replica; give more --requests"):
        ps.max_rate("llama-3-8b", "h100-sxm", slo_ttft="2s", requests=10)
