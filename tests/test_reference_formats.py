"""The number-format references: every registered format check passes, and hand-worked values hold."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import perfsim.reference.formats as fm
from perfsim.reference.registry import CHECKS

VARIANTS = {"bf16", "fp16", "fp8_e4m3", "fp8_e5m2", "int4", "fp4_e2m1", "mxfp4", "posit8_0", "posit16_1",
            "posit4_1", "fp16_simd_training"}
FORMAT_CHECKS = [c for c in CHECKS if c.op == "format"]


def test_every_variant_is_registered_once():
    assert sorted(c.variant for c in FORMAT_CHECKS) == sorted(VARIANTS)
    assert all(c.name == f"format-{c.variant}" for c in FORMAT_CHECKS)


@pytest.mark.parametrize("c", FORMAT_CHECKS, ids=lambda c: c.name)
def test_format_check_passes(c):
    outcome = c.run()
    assert outcome.passed, outcome.detail
    assert outcome.counts_match is None


def q(name, x):
    return fm.FLOAT_FORMATS[name].quantize(x)


def test_fp8_e4m3_saturates_at_448():
    assert q("fp8_e4m3", [449.0, 464.0, 1e6, np.inf, -500.0]).tolist() == [448.0, 448.0, 448.0, 448.0, -448.0]
    assert q("fp8_e4m3", [2.0**-10, 3 * 2.0**-10, 2.0**-9]).tolist() == [0.0, 2.0**-8, 2.0**-9]  # subnormal ties


def test_fp8_e5m2_and_fp16_overflow_to_inf_at_the_tie():
    assert q("fp8_e5m2", [57344.0, 61439.0, 61440.0]).tolist() == [57344.0, 57344.0, np.inf]
    assert q("fp16", [65504.0, 65519.0, 65520.0, -70000.0]).tolist() == [65504.0, 65504.0, np.inf, -np.inf]


def test_bf16_ties_to_even():
    assert q("bf16", [1 + 2.0**-8, 1 + 3 * 2.0**-8, 1 + 2.0**-8 + 2.0**-20]).tolist() == [1.0, 1 + 2.0**-6, 1 + 2.0**-7]


def test_fp4_e2m1_values_and_ties():
    assert fm.FP4.values().tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
    assert q("fp4_e2m1", [0.25, 0.75, 2.5, 3.5, 5.0, 7.0, -100.0]).tolist() == [0.0, 1.0, 2.0, 4.0, 4.0, 6.0, -6.0]


def test_int4_and_mxfp4_by_hand():
    codes, scale = fm.quantize_int4(np.array([7.0, -3.5, 0.5, 2.5] * 8) / 8, group_size=32)
    assert scale[0, 0] == 0.125
    assert codes[0, :4].tolist() == [7, -4, 0, 2]  # -3.5 -> -4 and 0.5 -> 0 (ties to even), 2.5 -> 2
    block = np.zeros(32)
    block[:3] = [40.0, 10.0, -3.0]  # max 40: X = 2**(5 - 2) = 8; 40/8 = 5 -> 4 (tie), 1.25 -> 1, -0.375 -> -0.5
    elems, scales = fm.quantize_mxfp4(block)
    assert scales[0, 0] == 8.0
    assert elems[0, :3].tolist() == [4.0, 1.0, -0.5]


def test_posit_decode_known_patterns():
    assert fm.posit_decode([0x40, 0x7F, 0x01, 0xC0, 0xFF, 0x00], 8, 0).tolist() == [1.0, 64.0, 1 / 64, -1.0,
                                                                                    -1 / 64, 0.0]
    assert np.isnan(fm.posit_decode(0x80, 8, 0))
    assert fm.posit_decode(np.arange(1, 8), 4, 1).tolist() == [1 / 16, 1 / 4, 1 / 2, 1.0, 2.0, 4.0, 16.0]
    assert fm.posit_decode([0x7FFF, 0x0001, 0x4000, 0x5000], 16, 1).tolist() == [2.0**28, 2.0**-28, 1.0, 2.0]


def test_posit_encode_rounds_the_bit_string():
    enc8 = fm.posit_encode([48.0, 49.0, 1 + 2.0**-6, 1 + 3 * 2.0**-6, 1e6, 1e-9, -1e-9, 0.0], 8, 0)
    assert enc8.tolist() == [0x7E, 0x7F, 0x40, 0x42, 0x7F, 0x01, 0xFF, 0x00]
    # posit4_1: 8 is the bit-string midpoint of 4 (0x6) and 16 (0x7), not the arithmetic one (10)
    assert fm.posit_encode([8.0, 9.0, 10.0 - 1e-9], 4, 1).tolist() == [0x6, 0x7, 0x7]
    assert fm.posit_encode([np.nan, np.inf, -np.inf], 16, 1).tolist() == [0x8000] * 3


def test_fp16_simd_matmul_rounds_each_lane():
    a = np.array([[1.0, 1.0, 2.0**-11, 2.0**-11]])
    # lanes: 1 + 2**-11 -> 1 (tie to even), twice; then 1 + 1 = 2. Exact answer 2 + 2**-10.
    assert fm.simd_matmul_f16(a, np.ones((4, 1))).tolist() == [[2.0]]


@given(st.sampled_from(sorted(fm.FLOAT_FORMATS)), st.integers(0, 2**16 - 1), st.booleans())
def test_float_representable_values_round_trip(name, i, negative):
    values = fm.FLOAT_FORMATS[name].values()
    v = values[i % values.size] * (-1 if negative else 1)
    assert q(name, v) == v


@given(st.floats(allow_nan=False, width=32))
def test_fp16_matches_numpy_and_is_idempotent(x):
    once = q("fp16", x)
    with np.errstate(over="ignore"):
        assert once == np.float64(np.float16(x))
    assert q("fp16", once) == once


@given(st.sampled_from([(8, 0), (16, 1), (4, 1)]), st.integers(0, 2**16 - 1))
def test_posit_patterns_round_trip(n_es, p):
    n, es = n_es
    p %= 1 << n
    assert fm.posit_encode(fm.posit_decode(p, n, es), n, es) == p


@given(st.integers(-8, 7), st.integers(-30, 30))
def test_int4_codes_round_trip(code, k):
    scale = 2.0**k
    assert fm.int4_codes(code * scale, scale) == code
