import pytest

from perfsim.dtypes import resolve_dtype, resolve_format
from perfsim.errors import PerfsimError


@pytest.mark.parametrize(
    ("name", "bits"),
    [("fp32", 32), ("tf32", 32), ("bf16", 16), ("fp16", 16), ("fp8_e4m3", 8), ("fp8_e5m2", 8), ("fp8", 8),
     ("int8", 8), ("int4", 4), ("int2", 2), ("ternary", 2), ("fp4_e2m1", 4), ("posit(4,1)", 4),
     ("posit8_0", 8), ("posit(16,1)", 16)],
)
def test_storage_bits(name, bits):
    assert resolve_dtype(name).storage_bits == bits


def test_float_field_widths():
    bf16 = resolve_dtype("bf16")
    assert (bf16.exponent_bits, bf16.mantissa_bits) == (8, 7)
    e5m2 = resolve_dtype("fp8_e5m2")
    assert 1 + e5m2.exponent_bits + e5m2.mantissa_bits == 8


def test_posit_names_agree():
    assert resolve_dtype("posit(16,1)") == resolve_dtype("posit16_1")
    assert resolve_dtype("posit16_1").es == 1


@pytest.mark.parametrize(
    ("scheme", "bits"),
    [("q4_0", 4 + 16 / 32), ("mxfp4", 4 + 8 / 32), ("q8_0", 8 + 16 / 32), ("int8", 8), ("ternary", 2)],
)
def test_effective_bits_per_weight(scheme, bits):
    # Q4_0: int4 + one fp16 scale per 32 = 4.5 bits; MXFP4: fp4 + one e8m0 scale per 32 = 4.25 bits
    assert resolve_format(scheme).bits_per_element == bits


@pytest.mark.parametrize("bad", ["fp12", "int3x", "posit(3,2)", "posit(80,1)", ""])
def test_unknown_dtype_is_rejected(bad):
    with pytest.raises(PerfsimError, match=r"dtype|posit"):
        resolve_format(bad)
