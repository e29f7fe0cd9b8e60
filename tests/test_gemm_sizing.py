"""GEMM sizing against compute units (the MI300X study): tiles fill whole waves only at some hidden sizes."""

import pytest

from perfsim.analysis.gemm_sweep import hidden_size_sweep


def test_hidden_sizes_that_fill_the_last_wave_run_faster():
    # MI300X: 304 CUs, bf16 tiles 256 × 256 (hipBLASLt MT256x256x64). 8192 tokens → 32 tile rows.
    # h = 4864: 32 · 19 = 608 tiles = 2 waves of 304, every CU busy in both;
    # h = 5120: 32 · 20 = 640 tiles → 3 waves, the last with 32 tiles: 640 / 912 = 0.7018 of the CU-waves busy.
    frame = hidden_size_sweep("mi300x", [4864, 5120], tokens=8192).set_index("hidden")
    assert (frame.loc[4864, "tiles"], frame.loc[4864, "waves"], frame.loc[4864, "wave_fill"]) == (608, 2, 1.0)
    assert (frame.loc[5120, "tiles"], frame.loc[5120, "waves"]) == (640, 3)
    assert frame.loc[5120, "wave_fill"] == pytest.approx(640 / 912)
    # 5120 does 1.108× the FLOPs of 4864 in 1.5× the waves: slower per FLOP
    assert frame.loc[4864, "tflop_per_s"] > frame.loc[5120, "tflop_per_s"]
