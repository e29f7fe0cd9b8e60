"""Inputs the CLI and API must refuse in one line, or defaults that must hold for every shipped model."""

from __future__ import annotations

import pytest

from perfsim import api
from perfsim.cost import cost
from perfsim.hardware import load_hardware
from perfsim.models.footprint import footprint
from perfsim.models.loader import WORKLOAD_DIR, load_model, shipped_models
from perfsim.models.scenario import DECODE_CONTEXT, Scenario, resolve
from perfsim.models.step import estimate_step
from perfsim.ops_network import NetworkStep

GIB = 2**30


def one_line_error(result, needle: str) -> None:
    assert result.code == 2, result.out
    assert needle in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1, result.err


# --- a network step on a chip that is not an MCU -----------------------------------------------------------------

def test_a_network_step_without_dtype_runs_in_the_networks_own():
    # workloads/networks/resnet8.yaml says `dtype: fp16`: a step without one computes in fp16, as if given it
    step = NetworkStep(network="resnet8")
    assert step.compute_dtype == "fp16"
    h100 = load_hardware("h100-sxm")
    assert cost(step, h100) == cost(NetworkStep(network="resnet8", dtype="fp16"), h100)


@pytest.mark.parametrize("hardware", ["h100-sxm", "xeon-8380"])
def test_estimate_a_network_step_on_a_gpu_and_a_cpu(cli, hardware):
    result = cli("estimate", "--op", "network network=resnet8 step=inference", "--hardware", hardware)
    assert result.code == 0, result.err
    assert "resnet8-inference" in result.out


def test_a_network_step_on_an_fpga_without_its_format_is_one_line(cli):
    # zcu102-edge-moe computes int16 only (its spec): fp16, the network's format, has no unit there
    one_line_error(cli("estimate", "--op", "network network=resnet8", "--hardware", "zcu102-edge-moe"),
                   "has no compute unit for fp16")


# --- odd head_dim ------------------------------------------------------------------------------------------------

def _variant(tmp_path, base: str, name: str, extra: str):
    text = (WORKLOAD_DIR / f"{base}.yaml").read_text().replace(f"name: {base}\n", f"name: {name}\n")
    path = tmp_path / f"{name}.yaml"
    path.write_text(text + extra)
    return path


def test_a_rotary_model_with_an_odd_head_dim_is_refused_at_load(cli, tmp_path):
    path = _variant(tmp_path, "llama-3-8b", "odd", "head_dim: 7\n")
    one_line_error(cli("model", "show", str(path)), f"{path}: head_dim: 7 per head is odd")
    one_line_error(cli("estimate", "--model", str(path), "--hardware", "h100-sxm"), "head_dim")


def test_an_odd_dim_per_head_from_hidden_over_heads_is_refused(tmp_path):
    # hidden 4080 / heads 48 = 85 dims per head, odd: RoPE cannot pair them (kv_heads 8 divides 48)
    path = _variant(tmp_path, "llama-3-8b", "odd85", "")
    path.write_text(path.read_text().replace("hidden: 4096", "hidden: 4080").replace("heads: 32", "heads: 48"))
    with pytest.raises(Exception, match="head_dim: 85 per head is odd"):
        load_model(str(path))


@pytest.mark.parametrize("base", ["mpt-7b", "bert-base"])  # ALiBi, learned positions: nothing rotates
def test_an_odd_head_dim_is_fine_without_rope(tmp_path, base):
    assert load_model(str(_variant(tmp_path, base, f"{base}-odd", "head_dim: 7\n"))).dim_per_head == 7


# --- default context ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", shipped_models())
def test_every_shipped_models_default_step_runs(name):
    # memory unchecked: the largest do not fit one H100; what is tested is that the default lengths fit the model
    model = load_model(name)
    step = estimate_step(Scenario(model=name, hardware="h100-sxm"), check_memory=False)
    r = step.resolved
    if model.architecture == "encoder":  # no decode: prefill of min(512, max_context) prompt tokens, none cached
        assert (r.scenario.phase, r.context, r.kv_len) == ("prefill", 0, min(512, model.max_context))
    else:  # decode of one token over min(2048, max_context − 1) cached tokens
        assert r.scenario.phase == "decode"
        assert r.context == min(DECODE_CONTEXT, model.max_context - 1)
        assert r.kv_len <= model.max_context
    assert step.step_s > 0


def test_default_context_is_capped_by_max_context_less_the_query_tokens():
    # openelm-270m: max_context 2048; 4 speculative query tokens leave 2048 − 4 = 2044 cached
    r = resolve(Scenario(model="openelm-270m", hardware="m2-pro-cpu", decode_tokens=4))
    assert (r.context, r.kv_len) == (2044, 2048)
    # llama-3-8b: max_context 8192 > 2048 + 1: the default 2048 stands
    assert resolve(Scenario(model="llama-3-8b", hardware="h100-sxm")).context == 2048


def test_default_prompt_is_capped_by_max_context():
    # m3vit: 128 patches + a class token = max_context 129 < the default 512; a prompt given is kept as given
    assert resolve(Scenario(model="m3vit", hardware="zcu102-edge-moe")).q_len == 129
    with pytest.raises(Exception, match="prefill of 512 tokens exceeds m3vit's max_context"):
        resolve(Scenario(model="m3vit", hardware="zcu102-edge-moe", prompt_len=512))


def test_the_openelm_default_estimate_runs(cli):
    result = cli("estimate", "--model", "openelm-270m", "--hardware", "m2-pro-cpu")
    assert result.code == 0, result.err


def test_an_explicit_context_beyond_max_context_is_still_refused(cli):
    one_line_error(cli("estimate", "--model", "openelm-270m", "--hardware", "m2-pro-cpu", "--context", "2048"),
                   "decode of 2049 tokens exceeds openelm-270m's max_context (2048)")


# --- encoders ----------------------------------------------------------------------------------------------------

def test_an_encoder_has_no_decode(cli):
    one_line_error(cli("estimate", "--model", "bert-base", "--hardware", "h100-sxm", "--phase", "decode",
                       "--context", "10"), "bert-base is an encoder: it caches no keys and values")


def test_an_encoder_caches_no_prefix(cli):
    one_line_error(cli("estimate", "--model", "bert-base", "--hardware", "h100-sxm", "--phase", "prefill",
                       "--context", "10"), "context: bert-base is an encoder")


def test_an_encoders_default_estimate_is_a_prefill(cli):
    result = cli("estimate", "--model", "bert-base", "--hardware", "h100-sxm", "--format", "json")
    assert result.code == 0, result.err
    assert '"phase": "prefill"' in result.out


def test_serving_an_encoder_is_refused():
    with pytest.raises(Exception, match="bert-base is an encoder"):
        api.serve("bert-base", "h100-sxm", requests=2)


# --- memory utilisation ------------------------------------------------------------------------------------------

# Llama 3 8B decode, batch 256, context 2048 on one H100 (80 GiB): KV = 256 × 2049 tokens × 2 (K, V) × 8 KV heads
# × 128 dims × 2 B × 32 layers = 64.03 GiB; weights 8.03e9 × 2 B = 14.96 GiB: 79.0 GiB, over 0.9 × 80 = 72 GiB,
# under 1.0 × 80.
BIG = ("--model", "llama-3-8b", "--hardware", "h100-sxm", "--batch", "256")


def test_memory_utilization_caps_what_a_step_may_use(cli):
    one_line_error(cli("estimate", *BIG, "--memory-utilization", "0.9"), "but may use 72 GiB (90% of its memory")
    one_line_error(cli("estimate", *BIG, "--memory-utilization", "0.5"), "but may use 40 GiB (50% of its memory")
    assert cli("estimate", *BIG, "--memory-utilization", "1.0").code == 0
    assert cli("estimate", *BIG).code == 0  # not given: the whole 80 GiB


def test_footprint_capacity_is_memory_utilization_of_the_chip_where_given():
    given = resolve(Scenario(model="llama-3-8b", hardware="h100-sxm", memory_utilization=0.5))
    assert footprint(given).capacity_bytes == 0.5 * 80 * GIB
    assert footprint(resolve(Scenario(model="llama-3-8b", hardware="h100-sxm"))).capacity_bytes == 80 * GIB


def test_serve_and_a_given_utilization_share_one_capacity():
    # serve's KV cache fills memory_utilization of the chip (default 0.9) less weights: the same 0.9 × 80 GiB a
    # step given --memory-utilization 0.9 may use, so both read footprint()'s capacity, applied once
    from perfsim.serving.costs import kv_capacity_tokens

    base = Scenario(model="llama-3-8b", hardware="h100-sxm")
    tokens, per_token = kv_capacity_tokens(base, 8192)
    assert per_token == 32 * 2 * 8 * 128 * 2  # 128 KiB of K and V per token
    r = resolve(base.model_copy(update={"memory_utilization": 0.9}))
    weights = footprint(r).weights_bytes
    # the rest is activations for a prompt chunk of 8192 tokens: tokens × (4·4096 + 3·14336) × 2 B
    activations = 8192 * (4 * 4096 + 3 * 14336) * 2
    assert tokens == int((0.9 * 80 * GIB - weights - activations) // per_token)


# --- serve inputs ------------------------------------------------------------------------------------------------

def test_serve_refuses_requests_that_all_exceed_max_context(cli):
    # 9000 + 128 output tokens > llama-3-8b's 8192: every request would be dropped
    one_line_error(cli("serve", "--model", "llama-3-8b", "--hardware", "h100-sxm", "--prompt-len", "9000",
                       "--requests", "3"), "all 3 requests (prompt + output tokens) exceed llama-3-8b's max_context")


def test_serve_notes_the_requests_it_drops():
    # prompts uniform over 7000..9000 + 128 output: those above 8064 exceed 8192 (about half of them)
    run = api.serve("llama-3-8b", "h100-sxm", requests=20, prompt_len="uniform:7000:9000")
    dropped = run.summary["dropped_requests"]
    assert 0 < dropped < 20
    assert any(note.startswith(f"{dropped} requests were dropped") for note in run.notes)


def test_serve_host_kv_needs_a_unit(cli):
    one_line_error(cli("serve", "--model", "llama-3-8b", "--hardware", "h100-sxm", "--host-kv", "10"),
                   "--host-kv: '10' has no unit")


# --- roofline ops sharing a label --------------------------------------------------------------------------------

def test_roofline_keeps_ops_that_share_a_label_apart():
    # the docs/api.md example: two unnamed GEMMs, both labelled "gemm". The square one (4096³: 2·4096³ FLOP over at
    # least 3·4096²·2 B, ≥ 1365 FLOP/B, above H100's bf16 ridge of 233) is compute-bound, the GEMV (≈ 1 FLOP/B) HBM
    result = api.roofline("h100-sxm", compare=["mi300x"], ops=["gemm m=4096 n=4096 k=4096", "gemm m=1 n=4096 k=4096"])
    assert [(p["device"], p["op"], p["bound"]) for p in result.points] == [
        ("h100-sxm", "gemm #1", "compute:bf16"), ("h100-sxm", "gemm #2", "memory:hbm"),
        ("mi300x", "gemm #1", "compute:bf16"), ("mi300x", "gemm #2", "memory:hbm")]
    table = result.figure.axes[1].texts[0].get_text().splitlines()
    assert [line.split()[:3] for line in table[1:3]] == [["1", "gemm", "#1"], ["2", "gemm", "#2"]]
    assert table[1].split()[-2:] == ["bf16", "bf16"] and table[2].split()[-2:] == ["hbm", "hbm"]
    labels = {t.get_text() for t in result.figure.axes[0].texts if (t.get_gid() or "").startswith("op-label")}
    assert labels == {"1", "2"}


# --- training ----------------------------------------------------------------------------------------------------

def test_zero3_on_one_chip_exposes_no_time():
    # one chip: ZeRO-3 has no peers to gather from, its passes take their compute exactly: 0 s exposed, not −1e-19
    times = api.train("openelm-270m", "h100-sxm", zero=3).summary["time_s"]
    assert times["dp_exposed"] == 0.0


def test_training_plot_title_counts_chips_of_a_system():
    assert api.train("openelm-270m", "dgx-h100").plot()._suptitle.get_text() == \
        "training openelm-270m on 8 × h100-sxm in dgx-h100"
    assert api.train("openelm-270m", "h100-sxm").plot()._suptitle.get_text() == \
        "training openelm-270m on 1 × h100-sxm"
