"""Op strings: values reach the IR typed (ints, booleans, floats), and sizes stay exact in floats."""

import pytest

from perfsim.errors import PerfsimError
from perfsim.ops import MAX_INT, Gemm, parse_op


def test_values_are_typed_by_yaml_and_text_fields_stay_text():
    op = parse_op("gemm m=4096 n=8 k=16 weight_shared=false name=1 dtype=fp8_e4m3")
    assert (op.m, op.weight_shared, op.name, op.dtype) == (4096, False, "1", "fp8_e4m3")
    assert type(op.m) is int and op.weight_shared is False
    assert parse_op("attention heads=4 q_len=1 kv_len=3 causal=false").causal is False
    # YAML 1.1 leaves 1e9 a string; it is read as the float it spells
    assert parse_op("all_reduce bytes=1e9 group=2").size_bytes == 1e9


def test_sizes_are_bounded_to_exact_floats():
    assert MAX_INT == 2**53 and float(MAX_INT) == MAX_INT and float(MAX_INT + 1) == MAX_INT  # the last exact one
    assert Gemm(m=MAX_INT, n=1, k=1).m == MAX_INT
    huge = "1" + "0" * 309  # ≥ 1e309: would overflow float arithmetic
    with pytest.raises(PerfsimError, match=r"m: Input should be less than or equal to 9007199254740992") as err:
        parse_op(f"gemm m={huge} n=1 k=1")
    assert "\n" not in str(err.value)
    with pytest.raises(PerfsimError, match="bytes: Input should be a finite number"):
        parse_op("all_reduce bytes=1e309")
    with pytest.raises(PerfsimError, match="padding: Input should be less than or equal to"):
        parse_op(f"conv2d in_channels=1 out_channels=1 height=4 width=4 padding={huge}")


def test_a_value_that_is_not_a_number_names_its_field():
    with pytest.raises(PerfsimError, match="op 'gemm m=abc n=1 k=1': m: "):
        parse_op("gemm m=abc n=1 k=1")


def test_rope_and_kv_append_parse_with_their_elementwise_view_derived():
    rope = parse_op("rope tokens=2 heads=4 kv_heads=2 head_dim=64 rotary_dim=32")
    # 2 tokens · (4 + 2) heads · 32 rotated dims = 384 elements, 3 FLOP each; bf16 read and written + 2 rows of 32
    assert (rope.elements, rope.flops, rope.bytes) == (384, 1152, 384 * 2 * 2 + 2 * 32 * 2)
    append = parse_op("kv_append tokens=2 kv_heads=2 head_dim=64 kv_dtype=fp8_e4m3")
    assert (append.elements, append.flops, append.bytes) == (512, 512, 512 * 2 + 512)  # 2 · 2 · 2 · 64 elements
    assert parse_op("norm rows=1 cols=8 residual=post_norm").residual == "post_norm"
    with pytest.raises(PerfsimError, match="elements: derived from the shape, not given"):
        parse_op("rope tokens=1 heads=1 kv_heads=1 elements=5")
    with pytest.raises(PerfsimError, match="rotary_dim"):
        parse_op("rope tokens=1 heads=1 kv_heads=1 head_dim=64 rotary_dim=65")
    with pytest.raises(PerfsimError, match=r"head_dim \(3\) must be even"):
        parse_op("rope tokens=4 heads=32 kv_heads=8 head_dim=3")
    # a dumped op reads back: its derived fields, given equal, are accepted (1 · (1 + 1) · 128 = 256 elements)
    assert parse_op("rope tokens=1 heads=1 kv_heads=1 elements=256").elements == 256
    rope = parse_op("rope tokens=1 heads=32 kv_heads=8")
    assert type(rope).model_validate(rope.model_dump()) == rope
    # a copy with a new shape derives afresh: 1024 tokens · 40 heads · 128 dims = 5,242,880 elements, 3 FLOP each
    longer = rope.model_copy(update={"tokens": 1024})
    assert (longer.elements, longer.flops) == (5_242_880, 3 * 5_242_880)
    with pytest.raises(PerfsimError, match="kv_heads: missing"):
        parse_op("kv_append tokens=1")
