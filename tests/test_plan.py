"""Capacity plans: the acceptance case confirmed by an independent serve run, cost and energy by hand, pruning,
and the Pareto fronts."""

import json

import pytest

from perfsim import api
from perfsim.planning import pricing
from perfsim.planning.pareto import front

SERVERS = {"h100-sxm": "dgx-h100", "mi300x": "mi300x-node"}
PRICES = {"h100-sxm": (1.65, 6.88), "mi300x": (1.71, 1.85)}  # the specs' price ranges, USD per device-hour


def test_plan_llama_3_70b_meets_the_slos_and_a_serve_run_confirms_it(cli):
    result = cli("plan", "--model", "llama-3-70b", "--rate", "10", "--slo-ttft", "2s", "--slo-tpot", "100ms",
                 "--candidates", "h100-sxm,mi300x", "--format", "json", "--requests", "100")
    assert result.code == 0, result.err
    entries = json.loads(result.out)["candidates"]
    assert [e["hardware"] for e in entries] == ["h100-sxm", "mi300x"]
    for entry in entries:
        assert set(entry) == {"hardware", "chips", "replicas", "parallelism", "weight_dtype", "kv_dtype",
                              "max_batch", "ttft_s", "tpot_s", "throughput_tokens_per_s", "cost_per_hour",
                              "cost_per_million_tokens", "joules_per_token", "meets_slo"}
        assert entry["meets_slo"] is True
        # a dense model: no data or expert parallelism inside a replica; the model's bf16 weights, a bf16 KV cache
        assert (entry["parallelism"]["dp"], entry["parallelism"]["ep"], entry["parallelism"]["expert_tp"]) == \
            (1, 1, None)
        assert (entry["weight_dtype"], entry["kv_dtype"]) == ("bf16", "bf16")
        tp, pp, replicas = entry["parallelism"]["tp"], entry["parallelism"]["pp"], entry["replicas"]
        assert entry["chips"] == tp * pp * replicas
        # confirmed independently: one replica on its server at rate / replicas (a random split of a Poisson
        # stream is Poisson), the same 100 requests: p99 within both SLOs, and the plan's p99s are this run's
        served = api.serve("llama-3-70b", SERVERS[entry["hardware"]], devices=tp * pp, tp=tp, pp=pp,
                           rate=10 / replicas, requests=100, max_batch=entry["max_batch"])
        p99 = served.to_frame().quantile(0.99)
        assert p99["ttft_s"] <= 2.0 and p99["tpot_s"] <= 0.1
        assert (entry["ttft_s"], entry["tpot_s"]) == pytest.approx((p99["ttft_s"], p99["tpot_s"]), rel=1e-9)
        # the deployment serves 10 requests/s × 128 output tokens = 1280 tokens/s
        assert entry["throughput_tokens_per_s"] == pytest.approx(1280.0)
        low, high = PRICES[entry["hardware"]]
        assert entry["cost_per_hour"] == pytest.approx([entry["chips"] * low, entry["chips"] * high])
        assert entry["cost_per_million_tokens"] == pytest.approx(
            [entry["chips"] * low / (1280 * 3600) * 1e6, entry["chips"] * high / (1280 * 3600) * 1e6])
        assert entry["joules_per_token"] > 0


def test_no_configuration_meets_an_impossible_slo(cli):
    # a TPOT of 1 ms: Llama-3-70B's 131 GiB of bf16 weights over 8 × 3.35 TB/s of HBM take at least
    # 141e9 B / 26.8e12 B/s = 5.3 ms per decode step, so no layout of up to 8 chips passes the analytic pruning
    result = cli("plan", "--model", "llama-3-70b", "--rate", "1", "--slo-ttft", "2s", "--slo-tpot", "1ms",
                 "--candidates", "h100-sxm", "--max-chips", "8", "--format", "json")
    assert result.code == 0, result.err
    (entry,) = json.loads(result.out)["candidates"]
    assert entry["meets_slo"] is False and entry["chips"] is None
    assert "no configuration up to 8 chips per replica meets the SLOs" in result.err
    assert "over the TPOT SLO" in result.err


@pytest.mark.parametrize(("argv", "needle"), [
    (["--rate", "0"], "--rate must be a positive number"),
    (["--rate", "1", "--percentile", "101"], "--percentile must be in (0, 100]"),
    (["--rate", "1", "--candidates", "no-such-chip"], "no-such-chip"),
    (["--rate", "1", "--weight-dtype", "bf16,fp7"], "--weight-dtype: unknown dtype or quantisation scheme 'fp7'"),
    (["--rate", "1", "--kv-dtype", "int9"], "--kv-dtype: unknown dtype or quantisation scheme 'int9'"),
    (["--rate", "1", "--weight-dtype", " , "], "--weight-dtype: give at least one dtype"),
])
def test_bad_plan_input_is_one_line(cli, argv, needle):
    base = {"--model": "llama-3-70b", "--slo-ttft": "2s", "--slo-tpot": "50ms", "--candidates": "h100-sxm"}
    given = dict(zip(argv[::2], argv[1::2], strict=True))
    flags = [item for key, value in {**base, **given}.items() for item in (key, value)]
    result = cli("plan", *flags)
    assert result.code == 2 and needle in result.err and len(result.err.strip().splitlines()) == 1


def test_prices_by_hand():
    # 4 chips at [1.65, 6.88] USD/h = [6.6, 27.52] USD/h; at 2000 tokens/s that is 7.2e6 tokens an hour:
    # [6.6, 27.52] / 7.2 USD per million tokens
    hourly = pricing.per_hour((1.65, 6.88), 4)
    assert hourly == pytest.approx((6.6, 27.52))
    assert pricing.per_million_tokens(hourly, 2000.0) == pytest.approx((6.6 / 7.2, 27.52 / 7.2))
    assert pricing.shown((2.0, 2.0)) == 2.0 and pricing.shown((1.0, 2.0)) == [1.0, 2.0]
    assert pricing.per_million_tokens(None, 2000.0) is None


def test_pareto_front_by_hand():
    # latency, throughput: (1, 10) (2, 5) (2, 30) (3, 20) (4, 40); (2, 5) is beaten by (1, 10), (3, 20) by (2, 30)
    latency, value = [1, 2, 2, 3, 4], [10, 5, 30, 20, 40]
    assert front(latency, value, higher_is_better=True) == [0, 2, 4]
    # cost (lower is better): (1, 9) (2, 9) (3, 4) (4, 6): only (1, 9) and (3, 4) are undominated
    assert front([1, 2, 3, 4], [9, 9, 4, 6], higher_is_better=False) == [0, 2]


def test_pareto_plots_of_a_sweep_are_figures():
    from matplotlib.figure import Figure

    result = api.sweep({"base": {"model": "llama-3-8b", "phase": "decode"},
                        "axes": {"hardware": ["h100-sxm", "mi300x"], "batch": [1, 8, 64]}}, workers=1)
    for kind in ("throughput", "cost"):
        figure = result.plot(kind)
        assert isinstance(figure, Figure)
        (ax,) = figure.axes
        assert len(ax.lines) == 2  # one front per hardware
    with pytest.raises(api.PerfsimError, match="no point of the sweep has both ttft_s"):
        api.sweep({"base": {"model": "llama-3-8b", "hardware": "h100-sxm", "phase": "decode"}},
                  workers=1).plot(latency="ttft_s")


def test_a_replica_runs_on_the_chips_server_or_cluster(tmp_path):
    from perfsim.planning.replicas import replica_hardware

    h100 = api.hardware("h100-sxm")
    assert (replica_hardware(h100, 4, tmp_path).ref, replica_hardware(h100, 4, tmp_path).devices) == ("dgx-h100", 4)
    assert replica_hardware(h100, 16, tmp_path).ref == "h100-cluster"
    with pytest.raises(api.PerfsimError, match="12 chips are not whole dgx-h100 servers of 8"):
        replica_hardware(h100, 12, tmp_path)


def test_servers_join_over_the_chips_scale_out_link(tmp_path):
    from perfsim.planning.overrides import with_field
    from perfsim.planning.replicas import replica_hardware

    ascend = api.hardware("ascend-910b4-1")  # the Atlas 800I A2's NPU
    # up to 32 NPUs: the shipped 4-server cluster (atlas-800i-a2-x4, HCCS inside a server, RoCE between)
    assert replica_hardware(ascend, 16, tmp_path).ref == "atlas-800i-a2-x4"
    # beyond it, servers are joined over the chip's own RoCE port, which gives no latency: no way to join them
    with pytest.raises(api.PerfsimError, match="ascend-910b4-1 declares no scale-out link with a latency"):
        replica_hardware(ascend, 64, tmp_path)
    replica = replica_hardware(with_field(ascend, "links.roce.latency", "5 us"), 64, tmp_path)
    # 8 Atlas 800I A2 servers of 8 NPUs, each NPU's one 25 GB/s RoCE port into the fabric: 8 links per server
    assert replica.ref == str(tmp_path / "atlas-800i-a2-x8.yaml") and replica.devices == 64
    fabric = replica.spec.interconnect
    assert (fabric.topology, fabric.bandwidth_per_direction, fabric.links_per_member, fabric.latency) == \
        ("fat_tree", 25e9, 8, 5e-6)
    step = api.step("llama-3-70b", replica.ref, devices=64, tp=8, pp=8, batch=64, engine="analytic")
    assert step.summary["hardware"] == "atlas-800i-a2-x8"


def test_a_des_point_is_the_discrete_event_step():
    from perfsim.planning.evaluate import evaluate
    from perfsim.planning.sweep_spec import Point

    fields = {"model": "llama-3-8b", "hardware": "dgx-h100", "devices": 2, "tp": 2, "batch": 4}
    row = evaluate(Point(fields, {}, "des"))
    assert row["step_s"] == pytest.approx(api.step("llama-3-8b", "dgx-h100", devices=2, tp=2, batch=4,
                                                   engine="des").step_s, rel=1e-12)


def test_progress_is_reported_per_chunk():
    from perfsim.planning.runner import run
    from perfsim.planning.sweep_spec import Point

    points = [Point({"model": "llama-3-8b", "hardware": "h100-sxm", "batch": b}, {}, "analytic") for b in range(1, 6)]
    seen = []
    run(points, workers=1, on_progress=lambda done, total: seen.append((done, total)))
    # one worker: 5 points in chunks of ⌈5 / 4⌉ = 2 → 2, 4, 5 done
    assert seen == [(2, 5), (4, 5), (5, 5)]


def test_an_offloading_host_machine_is_no_server_for_a_replica():
    # host-8380x2-a100 holds one A100 beside two Xeons for MoE offload: no server of A100s to replicate on
    from perfsim.planning.replicas import replica_hardware, systems_of

    assert systems_of("a100-sxm-80gb") == ()
    replica = replica_hardware(api.hardware("a100-sxm-80gb"), 2)
    assert (replica.ref, replica.devices) == ("a100-sxm-80gb", 2)


def _shapes(found):
    return {(layout.chips, layout.tp, layout.pp, layout.dp, layout.ep) for layout in found}


def test_candidates_are_every_chip_count_and_split_the_model_allows():
    from perfsim.planning.search import Demand, candidates

    # Llama-3-8B: 32 layers, 32 query heads, 8 KV heads; h100-sxm's server (dgx-h100) has 8 chips, so every count
    # 1..8 is a replica. tp must divide 32 heads and divide 8 KV heads (or be a multiple of them), pp must divide
    # 32 layers, tp · pp = N (dense: no dp inside a replica, ep 1):
    #   N=1: (1,1)   N=2: (2,1) (1,2)   N=4: (4,1) (2,2) (1,4)   N=8: (8,1) (4,2) (2,4) (1,8)
    #   N=3, 5, 6, 7: tp ∈ {3, 5, 6, 7} divides no 32 heads and pp ∈ {3, 5, 6, 7} no 32 layers: none
    found, rejected = candidates(api.hardware("h100-sxm"), Demand("llama-3-8b", 1.0, 2.0, 0.05, max_chips=8))
    assert _shapes(found) == {(1, 1, 1, 1, 1), (2, 2, 1, 1, 1), (2, 1, 2, 1, 1), (4, 4, 1, 1, 1), (4, 2, 2, 1, 1),
                              (4, 1, 4, 1, 1), (8, 8, 1, 1, 1), (8, 4, 2, 1, 1), (8, 2, 4, 1, 1), (8, 1, 8, 1, 1)}
    assert len(found) == 10 and {layout.weight_dtype for layout in found} == {"bf16"}  # the model's dtype
    # every split resolve refuses keeps its reason: N=6 is tp 6, 3, 2, 1 × pp 1, 2, 3, 6
    assert "h100-sxm × 6 (tp 6, pp 1, dp 1, ep 1): tp (6) must divide the 32 attention heads" in "\n".join(rejected)
    assert "h100-sxm × 6 (tp 2, pp 3, dp 1, ep 1): pp (3) must divide the 32 layers" in "\n".join(rejected)
    assert sum(note.startswith("h100-sxm × 6 ") for note in rejected) == 4
    # beyond one server only whole servers: 9..15 chips are no replica (no candidate and no note)
    found, _ = candidates(api.hardware("h100-sxm"), Demand("llama-3-8b", 1.0, 2.0, 0.05, max_chips=16))
    assert {layout.chips for layout in found} == {1, 2, 4, 8, 16}


def test_moe_candidates_add_expert_parallelism():
    from perfsim.planning.search import Demand, candidates

    # Mixtral-8x7B: 32 heads, 8 KV heads, 32 layers, 8 experts. A replica of 2 chips splits into tp · pp · dp = 2
    # (attention data-parallel inside the replica is an MoE layout: the experts span the tp · dp chips), and the
    # experts ep ways with expert_tp = tp · dp / ep, ep dividing tp · dp = 2 and the 8 experts:
    #   tp 2: ep 1 (experts TP2) or ep 2 (EP2);  dp 2: ep 1 or 2;  pp 2: tp · dp = 1, ep 1;  N=1: all 1
    found, _ = candidates(api.hardware("h100-sxm"), Demand("mixtral-8x7b", 1.0, 2.0, 0.05, max_chips=2))
    assert _shapes(found) == {(1, 1, 1, 1, 1), (2, 2, 1, 1, 1), (2, 2, 1, 1, 2), (2, 1, 1, 2, 1), (2, 1, 1, 2, 2),
                              (2, 1, 2, 1, 1)}
    assert all(layout.ep * layout.expert_tp == layout.tp * layout.dp for layout in found)


def test_the_plan_chooses_expert_parallelism_where_it_is_faster():
    # Mixtral-8x22B's 141 B bf16 parameters (282 GB) need 4 H100s (320 GB) at the least. The planner tries the
    # layouts of equally few chips (4, one replica) analytically fastest per request first: prefill(512) + 128
    # output tokens × TPOT(B) / B at the batch B that fits. This test asserts that it chose attention TP4 with
    # experts EP4 (ep 4, expert_tp 1), and checks why independently: against TP4 everywhere (ep 1, expert_tp 4),
    # EP4's prefill and decode at B = 256 are both faster (no all-reduce of the MoE output over 4 chips; each
    # chip's grouped GEMMs run whole experts, on the tile that keeps its SMs busiest), so the sum per request
    # favours EP4
    result = api.plan("mixtral-8x22b", rate=5, slo_ttft="500ms", slo_tpot="50ms", candidates=["h100-sxm"],
                      max_chips=8, requests=200)
    (entry,) = result.summary["candidates"]
    assert entry["meets_slo"] and (entry["chips"], entry["replicas"]) == (4, 1)
    assert entry["parallelism"] == {"tp": 4, "pp": 1, "dp": 1, "ep": 4, "expert_tp": 1}
    steps = {ep: {phase: api.step("mixtral-8x22b", "dgx-h100", devices=4, tp=4, ep=ep, expert_tp=4 // ep,
                                  phase=phase, engine="analytic", **settings).step_s
                  for phase, settings in (("prefill", {"batch": 1, "prompt_len": 512}),
                                          ("decode", {"batch": 256, "context": 640}))} for ep in (4, 1)}
    assert steps[4]["prefill"] < steps[1]["prefill"] and steps[4]["decode"] < steps[1]["decode"]
    per_request = {ep: one["prefill"] + 128 * one["decode"] / 256 for ep, one in steps.items()}
    assert per_request[4] < per_request[1]


def test_weight_dtypes_parse_once_each_in_order():
    from perfsim.planning.search import dtype_choices

    assert dtype_choices(None, "--weight-dtype") == (None,)
    # fp8 is fp8_e4m3's alias: listed twice it is considered once
    assert dtype_choices(["bf16", "fp8", "int4", "fp8_e4m3", "q4_0"], "--weight-dtype") == \
        ("bf16", "fp8_e4m3", "int4", "q4_0")


def test_a_narrower_weight_dtype_fits_fewer_chips():
    from perfsim.planning.search import Demand, _layouts

    # Llama-3-70B's 70.6e9 parameters: bf16 weights are 141 GB, over one H100's 80 GB (85.9e9 B), so the 1-chip
    # bf16 layout is pruned as not fitting; fp8 weights are 70.6 GB and fit one chip with room for a batch
    demand = Demand("llama-3-70b", 1.0, 2.0, 0.05, max_chips=1, weight_dtypes=("bf16", "fp8_e4m3"))
    kept, rejected = _layouts(api.hardware("h100-sxm"), demand)
    assert [(layout.chips, layout.weight_dtype, layout.kv_dtype) for layout in kept] == [(1, "fp8_e4m3", "bf16")]
    assert any("weights bf16" in note and "does not fit" in note for note in rejected)


def test_a_chip_without_a_unit_is_skipped_with_a_reason(cli):
    # tpe-cube-8's MAC array computes int8 only, and perfsim computes a GEMM in the activation dtype (bf16, the
    # weights dequantised: weight-only quantisation), so no weight dtype runs there: every candidate is skipped with
    # the estimate's reason and the plan answers (no error) that nothing meets the SLOs
    result = cli("plan", "--model", "openelm-270m", "--rate", "1", "--slo-ttft", "2s", "--slo-tpot", "50ms",
                 "--candidates", "tpe-cube-8", "--max-chips", "1", "--weight-dtype", "int8,int4", "--format", "json")
    assert result.code == 0, result.err
    (entry,) = json.loads(result.out)["candidates"]
    assert entry["meets_slo"] is False
    for weights in ("int8", "int4"):
        assert f"tpe-cube-8 × 1 (tp 1, pp 1, dp 1, ep 1, weights {weights}, kv bf16): tpe-cube-8 has no compute " \
               "unit for bf16" in result.err
