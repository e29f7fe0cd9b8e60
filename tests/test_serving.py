"""The serving simulation: metrics by definition, scheduler behaviour, and the CLI."""

import itertools
import json
import math

import pytest

from perfsim.models.scenario import Scenario
from perfsim.models.step import estimate_step
from perfsim.serving.arrivals import Request, from_csv, length_sampler, poisson
from perfsim.serving.costs import StepCosts, kv_capacity_tokens
from perfsim.serving.report import Recorder, summary
from perfsim.serving.scheduler import SchedulerConfig, serve

A100 = Scenario(model="llama-2-7b", hardware="a100-sxm-80gb")


def _run(requests, config=None, capacity=None, base=A100):
    config = config or SchedulerConfig()
    costs = StepCosts(base)
    capacity = capacity or kv_capacity_tokens(base, config.max_tokens)[0]
    recorder = Recorder(None, None)
    result = serve(iter(requests), costs, capacity, config, recorder)
    return result, recorder, costs


def test_one_request_by_hand():
    # one request alone: prefill (1 step) emits the first token, then output − 1 decode steps
    result, rec, costs = _run([Request(0, 1.0, 300, 4)])
    prefill = costs.prefill(300)
    decodes = [costs.decode(1, 300 + i) for i in range(3)]  # contexts 300, 301, 302 (one bucket)
    assert rec.ttft[0] == pytest.approx(prefill)
    assert rec.e2e[0] == pytest.approx(prefill + sum(decodes))
    assert rec.tpot[0] == pytest.approx(sum(decodes) / 3)
    assert result.iterations == 4 and result.output_tokens == 4
    assert result.makespan_s == pytest.approx(1.0 + prefill + sum(decodes))


def test_single_output_token_has_no_tpot():
    _, rec, _ = _run([Request(0, 0.0, 64, 1)])
    assert math.isnan(rec.tpot[0])


def test_tpot_at_low_load_matches_a_single_decode_step(cli):
    out = json.loads(cli("serve", "--model", "llama-2-7b", "--hardware", "a100-sxm-80gb", "--rate", "0.2",
                         "--requests", "200", "--seed", "1", "--format", "json").out)
    # mean context over a request's decode: 512 prompt + 128 / 2 generated
    single = estimate_step(Scenario(model="llama-2-7b", hardware="a100-sxm-80gb", context=576)).step_s
    assert out["tpot_s"]["p50"] == pytest.approx(single, rel=0.10)
    assert out["requests"] == 200
    assert out["throughput_tokens_per_s"] == pytest.approx(200 * 128 / out["makespan_s"])


def test_higher_load_raises_tail_ttft(cli):
    def p99(rate, n):
        out = cli("serve", "--model", "llama-2-7b", "--hardware", "a100-sxm-80gb", "--rate", rate, "--requests", n,
                  "--seed", "1", "--format", "json").out
        return json.loads(out)["ttft_s"]["p99"]

    assert p99("20", "2000") > p99("0.2", "200")


def test_same_seed_same_result(cli):
    argv = ("serve", "--model", "llama-2-7b", "--hardware", "a100-sxm-80gb", "--rate", "5", "--requests", "50",
            "--seed", "7", "--format", "json")
    assert cli(*argv).out == cli(*argv).out


def test_kv_cache_full_preempts_and_recomputes():
    # a cache of 2,600 tokens admits two 1,000-token prompts, which outgrow it as they decode 400 tokens each
    requests = [Request(i, 0.0, 1000, 400) for i in range(4)]
    result, rec, _ = _run(requests, SchedulerConfig(max_batch=8), capacity=2600)
    assert result.finished == 4 and result.output_tokens == 1600
    assert result.preemptions >= 1
    assert all(t > 0 for t in rec.e2e)


def test_max_batch_limits_concurrency():
    requests = [Request(i, 0.0, 64, 32) for i in range(10)]
    result, _, _ = _run(requests, SchedulerConfig(max_batch=3))
    assert max(result.batch_sizes) == 3


def test_chunked_prefill_splits_a_long_prompt():
    result, _, _ = _run([Request(0, 0.0, 3000, 2)], SchedulerConfig(max_tokens=1024))
    assert result.iterations == 3 + 1  # 1024 + 1024 + 952 prompt tokens, then one decode step
    whole, _, _ = _run([Request(0, 0.0, 3000, 2)], SchedulerConfig(max_tokens=4096, chunked_prefill=False))
    assert whole.iterations == 2  # the whole prompt in one iteration (within the 4096 budget), then one decode


def test_goodput_counts_requests_meeting_both_slos():
    rec = Recorder(slo_ttft_s=1.0, slo_tpot_s=0.1)
    rec(Request(0, 0.0, 10, 11), first_token_s=0.5, end_s=1.5)  # ttft 0.5, tpot 0.1: good
    rec(Request(1, 0.0, 10, 11), first_token_s=2.0, end_s=2.5)  # ttft 2.0: bad
    rec(Request(2, 0.0, 10, 11), first_token_s=0.5, end_s=3.0)  # tpot 0.25: bad
    assert rec.good == 1


def test_summary_percentiles_by_hand():
    from perfsim.serving.scheduler import ServingResult

    rec = Recorder(None, None)
    for i in range(1, 101):
        rec(Request(i, 0.0, 10, 2), first_token_s=i / 100, end_s=i / 100 + 0.01)
    out = summary(ServingResult(finished=100, output_tokens=200, makespan_s=2.0), rec, devices=4)
    assert out["ttft_s"]["p50"] == pytest.approx(0.505)
    assert out["throughput_tokens_per_s_per_device"] == 25.0


def test_requests_beyond_the_context_are_dropped_and_counted(cli, tmp_path):
    # 4000 + 200 > llama-2-7b's 4096: dropped (as vLLM refuses it and serves on), not an abort
    trace = tmp_path / "trace.csv"
    trace.write_text("arrival_s,prompt_len,output_len\n0.0,4000,200\n1.0,100,10\n")
    result = cli("serve", "--model", "llama-2-7b", "--hardware", "a100-sxm-80gb", "--trace", str(trace),
                 "--format", "json")
    out = json.loads(result.out)
    assert result.code == 0 and out["requests"] == 1 and out["dropped_requests"] == 1


def test_request_too_long_for_the_cache():
    from perfsim.errors import PerfsimError

    with pytest.raises(PerfsimError, match="can never fit"):
        _run([Request(0, 0.0, 5000, 10)], capacity=1000)


def test_poisson_arrivals_and_distributions():
    requests = list(poisson(10.0, 2000, "uniform:100:200", "exponential:50", seed=3))
    gaps = [b.arrival_s - a.arrival_s for a, b in itertools.pairwise(requests)]
    assert sum(gaps) / len(gaps) == pytest.approx(0.1, rel=0.1)
    assert all(100 <= r.prompt_len <= 200 for r in requests)
    assert list(poisson(10.0, 5, "512", "128", seed=3)) == list(poisson(10.0, 5, "512", "128", seed=3))


@pytest.mark.parametrize("spec", ["zipf:3", "uniform:1", "abc", "0", "normal:a:b"])
def test_bad_lengths(spec):
    from perfsim.errors import PerfsimError

    with pytest.raises(PerfsimError):
        length_sampler(spec, "prompt-len")


def test_csv_trace_and_outputs(cli, tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text("arrival_s,prompt_len,output_len\n0.0,128,16\n0.5,256,8\n0.6,64,4\n")
    assert [r.prompt_len for r in from_csv(trace)] == [128, 256, 64]
    out = tmp_path / "out"
    result = cli("serve", "--model", "llama-2-7b", "--hardware", "a100-sxm-80gb", "--trace", str(trace), "-o",
                 str(out), "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["requests"] == 3
    rows = (out / "requests.csv").read_text().splitlines()
    assert rows[0] == "id,arrival_s,prompt_len,output_len,ttft_s,tpot_s,e2e_s" and len(rows) == 4
    assert (out / "serving.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--rate", "0"], "--rate must be positive"),
        (["--prompt-len", "zipf:2"], "unknown distribution"),
        (["--max-batch", "0"], "--max-batch must be 1 to 2,147,483,647, got 0"),
        (["--trace", "/nonexistent.csv"], "cannot read"),
        (["--hardware", "stm32f746"], None),
    ],
)
def test_bad_serve_flags(cli, argv, needle):
    base = ["serve", "--model", "llama-2-7b"] + ([] if "--trace" in argv else ["--requests", "5"])
    if "--hardware" not in argv:
        base += ["--hardware", "a100-sxm-80gb"]
    result = cli(*base, *argv)
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1
    if needle:
        assert needle in result.err


def test_speculation_expected_tokens_and_step_cost():
    from perfsim.serving.costs import Speculation

    draft = A100.model_copy(update={"model": "openelm-1.1b"})
    spec = Speculation(draft, length=4, acceptance=0.7)
    assert spec.tokens_per_step == pytest.approx((1 - 0.7**5) / (1 - 0.7))  # 2.7731
    plain, speculative = StepCosts(A100), StepCosts(A100, speculation=spec)
    verify = estimate_step(A100.model_copy(update={"batch": 8, "context": 640, "decode_tokens": 5})).step_s
    drafting = estimate_step(draft.model_copy(update={"batch": 8, "context": 640})).step_s
    assert speculative.decode(8, 600) == pytest.approx(verify + 4 * drafting)  # context bucket 640
    assert speculative.decode(8, 600) > plain.decode(8, 600)


def test_speculation_finishes_in_fewer_iterations():
    from perfsim.serving.costs import Speculation

    spec = Speculation(A100.model_copy(update={"model": "openelm-1.1b"}), length=4, acceptance=0.7)
    costs = StepCosts(A100, speculation=spec)
    config = SchedulerConfig(tokens_per_step=spec.tokens_per_step)
    recorder = Recorder(None, None)
    result = serve(iter([Request(0, 0.0, 256, 101)]), costs, 100_000, config, recorder)
    assert result.iterations == 1 + math.ceil(100 / spec.tokens_per_step)  # prefill, then ⌈100 / 2.77⌉ = 37


def test_verification_step_attends_over_the_draft_tokens():
    from perfsim.models.scenario import resolve
    from perfsim.models.trace import build_trace
    from perfsim.ops import Attention

    r = resolve(A100.model_copy(update={"batch": 2, "context": 100, "decode_tokens": 5}))
    attention = next(t.op for t in build_trace(r).ops if isinstance(t.op, Attention))
    assert (attention.q_len, attention.kv_len) == (5, 105)


def test_disaggregated_prefill_hands_over_to_decode(cli):
    argv = ["serve", "--model", "llama-3-70b", "--hardware", "dgx-h100", "--tp", "4", "--rate", "4", "--requests",
            "200", "--seed", "1", "--format", "json"]
    together = json.loads(cli(*argv).out)
    apart = json.loads(cli(*argv, "--prefill-devices", "4").out)
    assert apart["requests"] == 200 and apart["prefill_devices"] == 4
    assert apart["ttft_s"]["p50"] < together["ttft_s"]["p50"]  # prefill no longer waits behind decode steps


def test_disaggregation_by_hand():
    from perfsim.serving.scheduler import Disaggregation

    prefill_costs, decode_costs = StepCosts(A100), StepCosts(A100)
    transfer = Disaggregation(prefill_costs, 100_000, transfer_s_per_token=1e-6)
    recorder = Recorder(None, None)
    result = serve(iter([Request(0, 0.0, 1000, 3)]), decode_costs, 100_000, SchedulerConfig(), recorder, transfer)
    prefill = prefill_costs.prefill(1000)
    decode = decode_costs.decode(1, 1001) + decode_costs.decode(1, 1002)
    assert recorder.ttft[0] == pytest.approx(prefill)  # the first token comes from the prefill group
    assert recorder.e2e[0] == pytest.approx(prefill + 1001 * 1e-6 + decode)  # KV of 1,001 tokens moves over
    assert result.iterations == 3


@pytest.mark.parametrize(("argv", "needle"), [(["--prefill-devices", "8"], "must leave chips for decode"),
                                              (["--draft-model", "llama-2-7b", "--acceptance", "1.5"], "acceptance")])
def test_bad_disaggregation_and_speculation(cli, argv, needle):
    result = cli("serve", "--model", "llama-2-7b", "--hardware", "dgx-h100", "--requests", "5", *argv)
    assert result.code == 2 and needle in result.err
