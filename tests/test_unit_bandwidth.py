"""Per-unit bandwidth: a kernel with a of C units busy streams a level at min(sustained, a × unit_bandwidth).

H100: 132 SMs, HBM 3.35 TB/s × 0.8866 (CAL-HBM-H100) = 2.970 TB/s, L2 12 TB/s × 0.8 (default) = 9.6 TB/s, and one SM
draws up to 231 GB/s from either (calibration.core_bandwidth: te42kyfo/gpu-benches gpu-cache, 126.2 B/clk × 1.83 GHz).
"""

from itertools import pairwise

import pytest

import perfsim as ps
from perfsim.cost import cost
from perfsim.cost.derating import rates
from perfsim.ops import Gemm, MoE

H100 = ps.hardware("h100-sxm")
HBM = 3.35e12 * 0.8866
SM_DRAW = 231e9
SM_BF16 = 989.4e12 * 0.7009 / 132  # one SM's sustained tensor rate (CAL-GEMM-H100)


def test_eight_of_132_sms_stream_at_their_own_rate():
    # 1 MB from HBM with 8 of 132 SMs busy: 8 × 231 GB/s = 1.848 TB/s (< 2.970 TB/s), so 1e6 / 1.848e12 = 0.541 µs;
    # the 1/cores share would have given 1e6 / (2.970e12 × 8/132) = 5.56 µs, ten times slower.
    seconds = rates(H100).memory_seconds({"hbm": 1e6}, 8 / 132)
    assert seconds == {"memory:hbm": pytest.approx(0.5411e-6, rel=1e-4)}
    # 13 SMs draw 3.003 TB/s, above HBM: the level's sustained bandwidth binds
    assert rates(H100).memory_seconds({"hbm": 1e6}, 13 / 132)["memory:hbm"] == pytest.approx(1e6 / HBM)


def test_a_gemm_of_eight_tiles():
    # 256 × 1024 × 64 bf16: 2 × 4 tiles of 128 × 256, one K step (no split), 8 units in one wave on 8 SMs. Each operand
    # is read once (one wave covers the whole 2 × 4 grid): A 256·64·2 = 32,768 B, B 64·1024·2 = 131,072 B,
    # C 256·1024·2 = 524,288 B, 688,128 B from HBM at 8 × 231 GB/s = 0.3724 µs; the 8 SMs compute one tile each,
    # 2·128·256·64 FLOP / (989.4 TFLOP/s × 0.7009 / 132) = 0.798 µs, which binds.
    c = cost(Gemm(m=256, n=1024, k=64, dtype="bf16"), H100)
    assert c.bytes_per_level == {"hbm": 688_128}
    assert c.resource_s["memory:hbm"] == pytest.approx(688_128 / (8 * SM_DRAW))
    assert c.resource_s["compute:bf16"] == pytest.approx(2 * 128 * 256 * 64 / SM_BF16)


def test_all_units_busy_stream_at_the_sustained_bandwidth():
    # 132 SMs × 231 GB/s = 30.5 TB/s, above HBM and L2: a full kernel streams each at its sustained rate, as before
    seconds = rates(H100).memory_seconds({"hbm": 1e9, "l2": 1e9})
    assert seconds == {"memory:hbm": pytest.approx(1e9 / HBM), "memory:l2": pytest.approx(1e9 / (12e12 * 0.8))}


def test_a_spec_without_core_bandwidth_keeps_the_1_over_cores_share():
    # A40 gives no core_bandwidth: each of its 84 SMs draws its 1/84 share of the sustained GDDR6 bandwidth, so 8 busy
    # SMs stream at 8/84 of it (the meaning every spec had before core_bandwidth)
    a40 = ps.hardware("a40")
    chip = rates(a40)
    assert not a40.calibration.core_bandwidth
    sustained = chip.bandwidth["gddr6"]
    assert chip.memory_seconds({"gddr6": 1e6}, 8 / 84)["memory:gddr6"] == pytest.approx(1e6 / (sustained * 8 / 84))


CHIPS = ("h100-sxm", "a100-sxm-80gb", "mi300x")
SIZES = (1024, 2048, 4096, 8192, 16384)
KNOWN_INVERSIONS = {("mi300x", 1024, 1024, m) for m in (64, 128, 192)}
"""m → m+1 steps where a GEMM gets faster, each explained. MI300X 1024 × 1024 × 1024 bf16 at m = 64j → 64j + 1
(j = 1, 2, 3): the short 64 × 256 × 64 tile (the spec's 256 × 256 tile cut to 64 rows, for at most 256 rows) gives
4j → 4j + 4 tiles, and K's 16 steps cap split-K at 16, so 64j → 64j + 64 CUs carry the partial sums at 126 GB/s
each: a limit of pricing tiles of one width (a library could cut n or K finer), not of the per-unit bandwidth.
The launch binds all of them (1.88 µs against under 1.1 µs of work)."""


def _inversions(chip: str) -> set[tuple[str, int, int, int]]:
    device = ps.hardware(chip)
    found = set()
    for n in SIZES:
        for k in SIZES:
            times = [cost(Gemm(m=m, n=n, k=k, dtype="bf16"), device).time_s for m in range(1, 513)]
            found |= {(chip, n, k, m) for m, (t, later) in enumerate(pairwise(times), 1) if later < t * (1 - 1e-9)}
    return found


@pytest.mark.parametrize("chip", CHIPS)
def test_gemm_time_never_falls_as_m_grows(chip):
    assert _inversions(chip) == {case for case in KNOWN_INVERSIONS if case[0] == chip}


MOES = (dict(hidden=4096, expert_ffn=14336, experts=8, top_k=2),  # Mixtral-8x7B-like
        dict(hidden=2048, expert_ffn=768, experts=128, top_k=8),  # Qwen3-30B-A3B-like
        dict(hidden=7168, expert_ffn=2048, experts=256, top_k=8))  # DeepSeek-V3-like
TOKENS = (1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 2048, 4096)


@pytest.mark.parametrize("chip", CHIPS)
def test_moe_time_never_falls_as_tokens_grow(chip):
    # Before per-unit bandwidth, MI300X ran the Mixtral-like op under EP8 in 142.1 µs for 64 tokens and 110.6 µs for
    # 96: one more tile row per expert filled more CUs, each streaming only its 1/304 share of HBM
    device = ps.hardware(chip)
    for shape in MOES:
        for ep in (1, 2, 4, 8):
            times = [cost(MoE(tokens=t, ep=ep, **shape), device).time_s for t in TOKENS]
            assert all(later >= t for t, later in pairwise(times)), (shape, ep, times)


def test_each_gemv_unit_takes_in_the_whole_input_vector():
    # MI300X GEMV, 1 × 4096 bf16 input (8,192 B), one CU per output column at its 126 GB/s draw. With n = 2 columns,
    # each CU reads the whole input beside its column (8,192 B) and output (2 B): (8,192 + (16,384 + 4) / 2) B /
    # 126 GB/s = 130.05 ns, more than the 24,580 B over 2 CUs' 252 GB/s (97.5 ns) a shared input would take; n = 1
    # gives (8,192 + 8,194) B / 126 GB/s, the same: one more column is never faster
    mi300x = ps.hardware("mi300x")
    one, two = (cost(Gemm(m=1, n=n, k=4096, dtype="bf16"), mi300x) for n in (1, 2))
    assert two.resource_s["memory:hbm"] == pytest.approx((8192 + (16384 + 4) / 2) / 126e9)
    assert one.resource_s["memory:hbm"] == pytest.approx((8192 + 8194) / 126e9)
    assert two.time_s >= one.time_s
