"""Properties every estimate must have, over random valid scenarios, ops and specs (hypothesis).

Floors come from the specs' datasheet numbers (peak FLOP/s, memory bandwidth) and from counting, never from the
cost model: no efficiency, clock or cache can make a chip beat its datasheet, and a step cannot move fewer bytes
than the weights and KV cache its busiest chip must read. Scenarios perfsim refuses (does not fit, tp does not
divide the heads, ...) are skipped. PERFSIM_FUZZ_EXAMPLES=N runs N examples per property.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import (
    CPU_LIKE,
    FLOAT_DTYPES,
    HARDWARE,
    MODELS,
    SYSTEMS,
    Hang,
    bounded,
    collect,
    lengths,
    op_strings,
    parse_json,
    refused,
    run_cli,
    scenarios,
    time_limit,
)

from perfsim.cost import cost
from perfsim.dtypes import resolve_dtype, resolve_format
from perfsim.engine.blocks import stages_of
from perfsim.engine.chains import contended
from perfsim.hardware import System, load_hardware
from perfsim.models.scenario import Resolved, Scenario, resolve
from perfsim.models.step import StepEstimate, estimate_step
from perfsim.ops import parse_op

REL = 1e-9  # float round-off allowed in the inequalities


def estimate(scenario: Scenario, engine: str | None = None, check_memory: bool = True) -> StepEstimate:
    """The step as `perfsim estimate` computes it (DES on several chips unless `engine`); skip a refused scenario."""
    def run() -> StepEstimate:
        chosen = engine or ("des" if resolve(scenario).par.devices > 1 else "analytic")
        return estimate_step(scenario, engine=chosen, check_memory=check_memory)

    try:
        with time_limit(scenario):
            step = refused(run)
    except Hang as hang:
        raise AssertionError(f"hang: {hang}") from None
    assume(step is not None)
    return step


# --- datasheet ceilings ---------------------------------------------------------------------------------------

def _unit_peak(unit, dtype: str, clock_hz: float, cores: int | None) -> float:
    """A unit's datasheet FLOP/s for `dtype`, per_cycle units limited to `cores` cores."""
    if unit.per_cycle is not None and cores is not None:
        return unit.per_cycle[dtype] * min(cores, unit.cores) * clock_hz
    return unit.peak_flops(dtype, clock_hz)


def flop_ceiling(chip, dtype: str, cores: int | None = None, role: str | None = None) -> float:
    """The most FLOP/s the chip's datasheet allows for work in `dtype`: its fastest unit (of `role`, if given) in
    any format at least as wide (a chip without a unit for a format computes in a wider one, never a narrower);
    plus the PIM logic's own peaks on a PIM device."""
    bits = resolve_dtype(dtype).storage_bits
    units = [u for u in chip.compute if role is None or u.role == role]
    ceiling = max([_unit_peak(u, d, chip.clock.peak, cores) for u in units for d in u.dtypes
                   if resolve_dtype(d).storage_bits >= bits], default=0.0)
    pim = getattr(chip, "pim", None)
    if pim is not None:
        ceiling += pim.stacks * max(pim.peak_per_stack.values())
    return ceiling


def bandwidth_ceiling(chip) -> float:
    """Datasheet bytes/s of the memory weights live in (per-core SRAM times the cores; PIM adds its internal
    bandwidth): with a cold cache every operand comes from there. An MCU reads its weights from flash and its
    activations from SRAM over separate buses at once, so its ceiling is the levels' bandwidths together."""
    if chip.kind == "mcu":
        return sum(level.bandwidth * ((chip.cores or 1) if level.scope == "core" else 1) for level in chip.memory)
    main = chip.main
    ceiling = main.bandwidth * ((getattr(chip, "cores", None) or 1) if main.scope == "core" else 1)
    pim = getattr(chip, "pim", None)
    return ceiling + (pim.stacks * pim.internal_bandwidth_per_stack if pim is not None else 0.0)


def busiest_chip_floor(r: Resolved) -> tuple[float, float]:
    """(bytes, FLOPs) the busiest chip must at least move and compute in one step, counted from the model spec:
    its weight matrices read once (attention, dense FFN and shared experts split tp ways — K and V keep
    ⌈kv_heads/tp⌉ heads each; the LM head vocab-parallel on the last stage; routed experts, embeddings, norms and
    biases left out), its sequences' KV cache read once in decode, and 2 FLOP per weight per token."""
    model, par, s = r.model, r.par, r.scenario
    h, d, tp = model.hidden, model.dim_per_head, par.tp
    weight_b = resolve_format(r.weight_dtype).bits_per_element / 8
    kv_b = resolve_format(r.kv_dtype).bits_per_element / 8
    seqs = -(-s.batch // par.dp)
    tokens = seqs * (s.prompt_len if s.phase == "prefill" else s.decode_tokens)
    per_stage = model.layers // par.pp
    worst = (0.0, 0.0)
    for stage in range(par.pp):
        weights = kv = 0.0
        for i in range(stage * per_stage, (stage + 1) * per_stage):
            q_local, kv_local = model.layer_heads(i) // tp * d, -(-model.layer_kv_heads(i) // tp) * d
            matrices = 2 * h * q_local + 2 * h * kv_local
            if model.is_moe_layer(i):
                moe = model.moe
                matrices += moe.shared_experts * model.ffn_matrices * h * (moe.shared_ffn or moe.expert_ffn) / tp
            else:
                matrices += model.ffn_matrices * h * model.layer_ffn(i) / tp
            weights += matrices
            if s.phase == "decode":
                kv += seqs * s.context * 2 * kv_local * kv_b
        head = h * -(-model.vocab // tp) if stage == par.pp - 1 and model.architecture == "decoder" else 0
        flops = 2 * tokens * weights + 2 * seqs * head
        moved = weights * weight_b + head * resolve_format(model.embedding_dtype).bits_per_element / 8 + kv
        worst = (max(worst[0], moved), max(worst[1], flops))
    return worst


# --- model steps ---------------------------------------------------------------------------------------------

@bounded(60)
@given(scenarios())
@collect
def test_every_reported_time_is_finite_and_positive(scenario):
    step = estimate(scenario)
    summary = step.summary()
    times = {"step_s": summary["step_s"], "ttft_s or tpot_s": summary["ttft_s"] or summary["tpot_s"]}
    times |= {f"breakdown {row['op']}": row["time_s"] for row in summary["breakdown"]}
    if step.schedule is not None:
        times |= {"analytic_step_s": summary["analytic_step_s"], "busiest_resource_s": summary["busiest_resource_s"]}
        times |= {f"critical path {op}": s for op, s in summary["critical_path_s"].items()}
    bad = {k: v for k, v in times.items() if not (isinstance(v, float | int) and math.isfinite(v) and v > 0)}
    assert not bad, f"{scenario!r}: {bad}"


@bounded(40)
@given(scenarios(), st.integers(1, 4))
@collect
def test_tokens_per_s_times_step_is_the_tokens(scenario, decode_tokens):
    # prefill: every sequence's prompt; decode: each sequence gains one token per step on average, whatever the
    # draft length k = decode_tokens (issue 11, defect 12: tpot_s = step_s / E and tokens_per_s × tpot_s = batch).
    scenario = scenario.model_copy(update={"decode_tokens": decode_tokens if scenario.phase == "decode" else 1})
    summary = estimate(scenario).summary()
    s = scenario
    if s.phase == "prefill":
        assert math.isclose(summary["tokens_per_s"] * summary["step_s"], s.batch * s.prompt_len, rel_tol=1e-9)
    else:
        assert math.isclose(summary["tokens_per_s"] * summary["tpot_s"], s.batch, rel_tol=1e-9), summary
    assert math.isclose(summary["tokens_per_s_per_device"] * summary["devices"], summary["tokens_per_s"],
                        rel_tol=1e-9)


def _grown(scenario: Scenario, field: str, by: int) -> Scenario:
    return scenario.model_copy(update={field: getattr(scenario, field) + by})


@bounded(40)
@given(scenarios(), st.sampled_from(["batch", "context", "prompt_len"]), st.sampled_from([1, 2, 7, 100, 1000]))
@collect
def test_step_time_non_decreasing_in_batch_context_and_prompt(scenario, field, by):
    scenario = scenario.model_copy(update={"phase": "decode" if field == "context" else
                                           "prefill" if field == "prompt_len" else scenario.phase})
    small = estimate(scenario)
    if field == "batch":
        par = small.resolved.par
        by *= par.dp * scenario.micro_batches  # keep every replica's micro-batches equally loaded
    large = estimate(_grown(scenario, field, by))
    assert large.step_s >= small.step_s * (1 - REL), (
        f"{scenario!r}: {field} + {by} makes the step faster: {small.step_s} s -> {large.step_s} s")


@st.composite
def doubled(draw):
    """A scenario on one replica (dp = 1), and the same with twice the chips (tp or pp doubled)."""
    scenario = draw(scenarios())
    scenario = scenario.model_copy(update={"devices": scenario.tp * scenario.pp})
    field = draw(st.sampled_from(["tp", "pp"]))
    bigger = scenario.model_copy(update={field: getattr(scenario, field) * 2,
                                         "devices": scenario.tp * scenario.pp * 2})
    return scenario, bigger


def _memory(scenario: Scenario) -> dict:
    summary = estimate(scenario, engine="analytic", check_memory=False).summary()
    return {**summary["memory"], "memory_bytes_per_device": summary["memory_bytes_per_device"]}


@bounded(40)
@given(doubled())
@collect
def test_per_device_memory_non_increasing_in_devices_and_nothing_lost_in_sharding(pair):
    scenario, bigger = pair
    one, two = _memory(scenario), _memory(bigger)
    assert two["memory_bytes_per_device"] <= one["memory_bytes_per_device"] * (1 + REL), (scenario, bigger)
    # Sharding splits weights and KV over the chips but never drops any: twice the chips each hold at least half.
    # Tensor parallelism gives every chip the same share, so each part halves at most; pipeline stages differ
    # (embedding, head, dense layers), and the breakdown is the heaviest stage's, so only its total bounds the rest.
    if bigger.pp == scenario.pp:
        for part in ("weights_bytes", "kv_bytes"):
            assert 2 * two[part] >= one[part] * (1 - REL), f"{part}: {bigger!r} holds {two[part]} per chip, " \
                                                            f"{scenario!r} {one[part]}"
    else:
        held = one["weights_bytes"] + one["kv_bytes"]
        assert 2 * two["memory_bytes_per_device"] >= held * (1 - REL), f"{bigger!r} drops some of {scenario!r}"


@bounded(60)
@given(scenarios())
@collect
def test_step_time_above_the_busiest_chips_datasheet_floors(scenario):
    step = estimate(scenario)
    r = step.resolved
    moved, flops = busiest_chip_floor(r)
    bytes_floor = moved / bandwidth_ceiling(r.chip)
    flop_floor = flops / flop_ceiling(r.chip, r.scenario.activation_dtype)
    assert step.step_s >= bytes_floor * (1 - REL), (
        f"{scenario!r}: step {step.step_s} s below the bytes/bandwidth floor {bytes_floor} s ({moved} B)")
    assert step.step_s >= flop_floor * (1 - REL), (
        f"{scenario!r}: step {step.step_s} s below the FLOPs/peak floor {flop_floor} s ({flops} FLOP)")


@bounded(30)
@given(scenarios(), st.sampled_from([1, 1, 2, 4, 8]))
@collect
def test_des_never_slower_than_the_analytic_sum(scenario, micro_batches):
    # One stream of ops (pp = 1): the analytic sum is the DES without overlap. pp > 1: the analytic value is
    # Σ_s (T_s + send_s) + (m − 1)·max_s max(T_s, send_s) (issue 11, defect 5), which the DES cannot beat, except
    # where a stage's sends share a link with its all-reduces: each send then slows them by at most its own time.
    if scenario.pp > 1:
        scenario = scenario.model_copy(update={"micro_batches": micro_batches,
                                               "batch": scenario.batch // scenario.micro_batches * micro_batches})
    step = estimate(scenario, engine="des")
    des, analytic = step.step_s, estimate(scenario, engine="analytic").step_s
    stages = stages_of(step.trace, step.costs)
    slack = scenario.micro_batches * sum(s.send.seconds for s in stages if s.send) if contended(stages) else 0.0
    assert des <= analytic * (1 + REL) + slack, f"{scenario!r}: DES {des} s > analytic {analytic} s + {slack} s"


# --- single ops --------------------------------------------------------------------------------------------------

def op_estimate(op: str, hardware: str, cores: int | None = None) -> dict:
    argv = ["estimate", "--op", op, "--hardware", hardware, "--format", "json"]
    result = run_cli([*argv, "--cores", str(cores)] if cores else argv)
    assume(result.code == 0)
    return parse_json(result)


@bounded(150)
@given(op_strings(), st.sampled_from(HARDWARE))
@collect
def test_op_time_above_datasheet_floors(op, hardware):
    record = op_estimate(op, hardware)
    spec = load_hardware(hardware)
    chip = spec.device if isinstance(spec, System) else spec
    _check_op_floors(op, chip, record, None)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("hardware", HARDWARE)
def test_compute_bound_vector_op_above_datasheet_floors(hardware, dtype):
    # 1,000 FLOP per element of 2 to 4 bytes: compute-bound on every chip, so the vector-unit floor is the one it
    # can break (issue 11, defect 11: bf16 vector work on MI300X ran at the matrix cores' rate)
    op = f"elementwise elements=1048576 flops_per_element=1000 dtype={dtype}"
    result = run_cli(["estimate", "--op", op, "--hardware", hardware, "--format", "json"])
    if result.code == 0:
        spec = load_hardware(hardware)
        _check_op_floors(op, spec.device if isinstance(spec, System) else spec, parse_json(result), None)


@bounded(60)
@given(op_strings(), st.sampled_from(CPU_LIKE), st.integers(1, 16))
@collect
def test_op_time_on_fewer_cores_above_their_datasheet_floors(op, hardware, cores):
    # `--cores c` leaves c cores' units: a compute-bound op cannot beat c cores' datasheet peak (defect 13).
    chip = load_hardware(hardware)
    assume(cores <= chip.cores)
    _check_op_floors(op, chip, op_estimate(op, hardware, cores), cores)


def _check_op_floors(op_text: str, chip, record: dict, cores: int | None) -> None:
    op = parse_op(op_text)
    time_s = record["time_s"]
    assert math.isfinite(time_s) and time_s > 0, record
    assert time_s >= op.bytes / bandwidth_ceiling(chip) * (1 - REL), f"{op_text} on {chip.name}: below bytes floor"
    if op.kind == "lut_gemm":  # table lookups replace the multiply-adds: no FLOP floor
        return
    ceiling = flop_ceiling(chip, op.compute_dtype, cores)
    if not ceiling:  # no datasheet unit runs the dtype (an FPGA design's fixed-function lanes do): no FLOP floor
        return
    floor = op.flops / ceiling
    assert time_s >= floor * (1 - REL), f"{op_text} on {chip.name} (cores {cores}): {time_s} s < FLOP floor {floor} s"
    # Vector work (softmax, norms, elementwise) runs on the vector units whenever they run the dtype or a wider
    # float (issue 11, defect 11: promote within the role before borrowing the matrix units).
    vector = sum(f for role, f in op.work() if role == "vector")
    dtype = resolve_dtype(op.compute_dtype)
    vector_units = [u for u in chip.compute if u.role == "vector"]
    stays = dtype.family == "float" and any({dtype.name, "fp32", "fp64"} & set(u.dtypes) for u in vector_units)
    if vector and stays:
        floor = vector / flop_ceiling(chip, dtype.name, cores, role="vector")
        assert time_s >= floor * (1 - REL), f"{op_text} on {chip.name}: {time_s} s < vector-unit floor {floor} s"


INT_CHAIN = ("int4", "int8", "int16", "int32")
FLOAT_CHAIN = ("fp8_e4m3", "fp16", "bf16", "fp32", "fp64")


@pytest.mark.parametrize("hardware", HARDWARE)
def test_narrower_formats_promote_to_a_wider_unit_the_chip_has(hardware):
    # A chip computes a format it has no unit for in the next wider one of its family: int4 → int8 → int16 → int32,
    # fp8 → fp16 → bf16 → fp32 → fp64 (issue 11, defect 11: an int8 GEMM on an int16 MAC array must not error).
    spec = load_hardware(hardware)
    chip = spec.device if isinstance(spec, System) else spec
    for chain in (INT_CHAIN, FLOAT_CHAIN):
        listed = [chain.index(d) for d in chip.dtypes if d in chain]
        for dtype in chain[:max(listed, default=-1) + 1]:
            result = run_cli(["estimate", "--op", f"gemm m=64 n=64 k=64 dtype={dtype}", "--hardware", hardware])
            assert result.code == 0, f"{dtype} GEMM on {hardware} (it runs {chip.dtypes}): {result.err}"


# --- collectives -------------------------------------------------------------------------------------------------

@st.composite
def collectives(draw):
    """(system, group, bytes) over the shipped systems."""
    system = draw(st.sampled_from(SYSTEMS))
    chips = load_hardware(system).chips
    group = draw(st.sampled_from([None, *(g for g in range(2, chips + 1) if chips % g == 0)]))
    return system, group, float(draw(lengths(1, 2**34)))


def collective_time(kind: str, system: str, group: int | None, size: float, algorithm: str = "auto") -> float:
    """Seconds of a collective; `auto`: the library's choice (the fastest of each algorithm's own monotone cost)."""
    text = f"{kind} bytes={size:.0f} algorithm={algorithm}" + (f" group={group}" if group else "")
    time_s = cost(parse_op(text), load_hardware(system)).time_s
    assert math.isfinite(time_s) and time_s > 0, (text, system, time_s)
    return time_s


@bounded(40)
@given(collectives(), st.sampled_from(["all_reduce", "reduce_scatter", "all_gather", "broadcast", "all_to_all"]),
       st.sampled_from([2, 10, 1000]))
@collect
def test_collective_time_non_decreasing_in_bytes(where, kind, factor):
    system, group, size = where
    assert collective_time(kind, system, group, size * factor) >= collective_time(kind, system, group, size) \
        * (1 - REL)


@bounded(40)
@given(collectives(), st.sampled_from(["ring", "tree"]))
@collect
def test_collectives_no_slower_than_all_reduce_of_the_same_bytes(where, algorithm):
    # A ring all-reduce is a reduce-scatter then an all-gather, each of the same S bytes; a broadcast moves S once
    # (issue 11, defect 6: "a broadcast takes no longer than an all-reduce of the same size").
    system, group, size = where
    all_reduce = collective_time("all_reduce", system, group, size, algorithm)
    parts = ["broadcast"] if algorithm == "tree" else ["broadcast", "reduce_scatter", "all_gather"]
    for kind in parts:
        assert collective_time(kind, system, group, size, algorithm) <= all_reduce * (1 + REL), (kind, where)


# --- serving -------------------------------------------------------------------------------------------------------

@st.composite
def serve_argv(draw) -> list[str]:
    output_len = draw(st.integers(1, 64))
    return ["serve", "--model", draw(st.sampled_from(MODELS)), "--hardware", draw(st.sampled_from(HARDWARE)),
            "--requests", str(draw(st.integers(1, 24))), "--rate", str(draw(st.sampled_from([0.5, 4, 50, 1000]))),
            "--prompt-len", draw(st.sampled_from(["1", "128", "700", "3000", "uniform:16:2048"])),
            "--output-len", str(output_len), "--seed", str(draw(st.integers(0, 2**16))),
            "--max-batch", str(draw(st.sampled_from([1, 8, 256]))), "--format", "json"]


@bounded(40)
@given(serve_argv())
@collect
def test_serving_percentiles_ordered_throughput_consistent_and_deterministic(argv):
    first = run_cli(argv)
    assume(first.code == 0)
    report = parse_json(first)
    for metric in ("ttft_s", "tpot_s", "e2e_s"):
        p = report[metric]
        if p["p50"] is None:
            continue
        assert 0 < p["p50"] <= p["p90"] <= p["p99"], (argv, metric, p)
    requests, output_len = int(argv[argv.index("--requests") + 1]), int(argv[argv.index("--output-len") + 1])
    served = requests - report["dropped_requests"]  # longer than the model's context: dropped, with a warning
    assert report["requests"] == served > 0, argv
    assert (report["dropped_requests"] > 0) == ("dropped:" in first.err), (argv, first.err)
    assert report["makespan_s"] > 0, argv
    assert math.isclose(report["throughput_tokens_per_s"] * report["makespan_s"], served * output_len,
                        rel_tol=1e-9), (argv, report)
    assert run_cli(argv).out == first.out, f"same seed, different output: {argv}"
