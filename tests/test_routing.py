"""Routing load from a distribution (issue 22): grouped top-k is balanced by construction, skewed top-k is not,
and the busiest expert-parallel rank sets the step time in the MoE op and in the all-to-all."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import perfsim.api as ps
from perfsim.errors import PerfsimError
from perfsim.models import WORKLOAD_DIR
from perfsim.models.routing import _draw, busiest_load
from perfsim.models.scenario import Scenario, resolve
from perfsim.models.trace import build_trace
from perfsim.ops import routing_imbalance
from tests.strategies import run_cli

# PG-02 of validation/ascend_pangu.yaml: pangu-pro-moe decode on 4 NPUs of an Atlas 800I A2, experts EP4
PG_02 = {"hardware": "atlas-800i-a2", "devices": 4, "tp": 2, "dp": 2, "ep": 4, "expert_tp": 1, "phase": "decode",
         "batch": 456, "context": 2048, "weight_dtype": "int8", "activation_dtype": "int8", "kv_dtype": "fp16"}


@settings(max_examples=25, deadline=2000, derandomize=True)
@given(st.integers(0, 2**32 - 1), st.floats(0, 3), st.integers(1, 300))
def test_grouped_routing_on_one_group_per_device_is_balanced_for_any_sample(seed, exponent, tokens):
    # MoGE: 64 experts in 8 groups, top-1 per group, group g on device g: every token sends exactly one pair
    # to every device, so each device holds `tokens` pairs and max/mean = tokens / tokens = 1.0, whatever the skew
    rng = np.random.default_rng(seed)
    popularity = rng.permutation(1.0 / np.arange(1, 65) ** exponent)
    ids = _draw(rng, popularity, top_k=8, groups=8, tokens=tokens)
    assert routing_imbalance(tuple(np.bincount(ids.ravel(), minlength=64)), 8) == 1.0
    assert busiest_load(f"zipf:{exponent}", 64, 8, 8, 8, tokens) == 1.0


def test_plain_top_k_on_a_skewed_sample_loads_the_busiest_device_above_the_mean():
    plain = busiest_load("zipf:1.2", 64, 8, 1, 8, 456)
    assert plain > 1.05
    # halving each group over 16 devices breaks the balance too: grouping balances only whole groups per device
    assert busiest_load("zipf:1.2", 64, 8, 8, 16, 456) > 1.0
    # a heavier skew loads the busiest device more (same seed, same samples)
    assert busiest_load("zipf:2", 64, 8, 1, 8, 456) > plain


def test_two_rank_toys_match_the_hand_derived_expectation(tmp_path):
    # 2 experts, top-1, 2 ranks (one expert each), a step of 2 tokens. Both tokens on one expert: loads (2, 0),
    # max/mean = 2 / 1 = 2; one each: (1, 1), ratio 1. So E[max/mean] = 1 + P(same expert) = 1 + p0² + p1².
    # 20,000 samples: the ratio is 1 or 2, standard deviation ≤ 0.5, standard error ≤ 0.0036; 4 standard errors.
    def toy(routing: str, tokens: int = 2) -> float:
        return busiest_load(routing, 2, 1, 1, 2, tokens, samples=20_000)

    assert toy("uniform") == pytest.approx(1 + 0.5**2 + 0.5**2, abs=0.015)  # 1.5
    counts = tmp_path / "counts.csv"
    counts.write_text("expert,count\n0,2\n1,1\n")  # p = (2/3, 1/3): 1 + 4/9 + 1/9 = 14/9
    assert toy(str(counts)) == pytest.approx(14 / 9, abs=0.015)
    # zipf:1 on 2 experts: popularity 1 : 1/2, the same p = (2/3, 1/3) whichever expert holds which rank
    assert toy("zipf:1") == pytest.approx(14 / 9, abs=0.015)
    tokens = tmp_path / "tokens.csv"
    tokens.write_text("0\n0\n0\n1\n")
    # a step of the trace's own 4 tokens is the trace: loads (3, 1), max/mean = 3 / 2, in every sample
    assert busiest_load(str(tokens), 2, 1, 1, 2, 4) == 1.5
    # 2 tokens resampled from it: p = (3/4, 1/4), 1 + 9/16 + 1/16 = 1.625
    assert toy(str(tokens)) == pytest.approx(1.625, abs=0.015)


def _plain_top_8(tmp_path) -> str:
    """pangu-pro-moe with its 8 groups removed: plain top-8 of 64."""
    path = tmp_path / "pangu-pro-moe.yaml"
    path.write_text((WORKLOAD_DIR / "pangu-pro-moe.yaml").read_text().replace("groups: 8", "groups: 1"))
    return str(path)


def test_busiest_device_sets_the_step_time_of_pangu_on_atlas_800i_a2(tmp_path):
    def step_s(model: str, **fields) -> float:
        return ps.step(model, engine="analytic", **PG_02, **fields).step_s

    grouped = step_s("pangu-pro-moe")
    # MoGE (8 groups, 2 whole groups per device at EP4) stays balanced under any skew: the time does not move
    assert step_s("pangu-pro-moe", routing="zipf:1.2") == grouped
    plain = _plain_top_8(tmp_path)
    assert step_s(plain, routing="zipf:1.2") > step_s(plain)


def test_the_all_to_all_carries_the_busiest_ranks_share(tmp_path):
    # the dispatch and combine buffers are the mean rank's tokens · top_k · hidden / ep bytes × max/mean
    # (456 tokens · 8 · 5120 / 4 · 1 byte (int8) = 4,669,440 bytes at the mean)
    plain = _plain_top_8(tmp_path)
    imbalance = busiest_load("zipf:1.2", 64, 8, 1, 4, 456)
    for routing, factor in ((None, 1.0), ("zipf:1.2", imbalance)):
        trace = build_trace(resolve(Scenario(model=plain, routing=routing, **PG_02)))
        sizes = {t.op.name: t.op.size_bytes for t in trace.ops if t.op.name in ("ep_dispatch", "ep_combine")}
        assert sizes == pytest.approx({"ep_dispatch": 4_669_440 * factor, "ep_combine": 4_669_440 * factor})
        experts = next(t.op for t in trace.ops if t.op.name == "experts")
        assert experts.imbalance == pytest.approx(factor)


@pytest.mark.parametrize(("fields", "needle"), [
    ({"routing": "zipf:1", "moe_imbalance": 1.5}, "give routing or moe_imbalance, not both"),
    ({"routing": "zipf:x"}, "'zipf:x' needs a finite exponent"),
    ({"routing": "zipf:-1"}, "'zipf:-1' needs a finite exponent"),
    ({"routing": "/nonexistent.csv"}, "is not uniform, zipf:S or a readable CSV trace file"),
])
def test_bad_routing_is_one_line(fields, needle):
    with pytest.raises(PerfsimError, match=needle.replace("(", r"\(")):
        ps.step("pangu-pro-moe", **PG_02, **fields)


@pytest.mark.parametrize(("content", "needle"), [
    ("0,1,2\n", "every row must hold 8 integers"),
    ("a,b\n", "non-integer or ragged row"),
    ("expert,count\n0,1\n64,2\n", "expert ids must lie in 0..63"),
    ("expert,count\n0,5\n", "needs ≥ 1 experts with a non-zero count"),
    (",".join(str(i) for i in range(8)) + "\n", "does not pick 1 expert(s) in each of the 8 groups"),
])
def test_bad_trace_files_are_one_line_at_the_cli(tmp_path, content, needle):
    path = tmp_path / "trace.csv"
    path.write_text(content)
    result = run_cli(["estimate", "--model", "pangu-pro-moe", "--hardware", "atlas-800i-a2", "--devices", "4",
                      "--ep", "4", "--batch", "4", "--routing", str(path)])
    assert result.code == 2 and needle in result.err and len(result.err.strip().splitlines()) == 1, result.err


def test_load_balance_plot_draws_grouped_routing_flat_at_one():
    from perfsim.analysis.routing_plots import plot_load_balance

    fig = plot_load_balance([0, 1.2], tokens=(64,))
    plain, grouped = fig.axes[0].lines[:2]
    assert list(grouped.get_ydata()) == [1.0, 1.0]  # 8 groups on 8 ranks: balanced by construction
    assert all(y > 1.0 for y in plain.get_ydata())  # 64 tokens · 8 pairs over 8 ranks fluctuate even uniformly


def test_routing_on_a_dense_model_is_refused(cli):
    result = cli("estimate", "--model", "llama-2-7b", "--hardware", "a100-sxm-80gb", "--routing", "uniform")
    assert result.code == 2
    assert result.err.strip() == "perfsim: error: --routing applies to MoE models; llama-2-7b is dense"
