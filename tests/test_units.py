import math

import pytest

from perfsim.units import Span, UnitError, parse_quantity


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("3.35 TB/s", "bandwidth", 3.35e12),
        ("2.039TB/s", "bandwidth", 2.039e12),
        ("400 Gb/s", "bandwidth", 400e9 / 8),
        ("64 GB/s", "bandwidth", 64e9),
        ("20 PB/s", "bandwidth", 20e15),
        ("192 GiB", "capacity", 192 * 2**30),
        ("48 KiB", "capacity", 48 * 1024),
        ("320 KiB", "capacity", 327680),
        ("50 MiB", "capacity", 50 * 2**20),
        (1024, "capacity", 1024),
        ("4096 B", "capacity", 4096),
        ("1.98 GHz", "frequency", 1.98e9),
        ("216 MHz", "frequency", 216e6),
        ("989.4 TFLOP/s", "flops", 989.4e12),
        ("280 TOPS", "flops", 280e12),
        ("15 kW", "power", 15e3),
        ("700 W", "power", 700.0),
        ("16.6 us", "time", 16.6e-6),
        ("16.6 µs", "time", 16.6e-6),
        ("2 ms", "time", 2e-3),
        ("5 ns", "time", 5e-9),
        ("0.464 nJ", "energy", 0.464e-9),
        (1.5e12, "bandwidth", 1.5e12),
    ],
)
def test_parses_to_si(text, kind, expected):
    assert parse_quantity(text, kind) == pytest.approx(expected, rel=1e-12)


def test_decimal_datasheet_numbers_stay_exact():
    # 66.9 * 1e12 in binary floating point is 66900000000000.01; the parser rounds to 15 digits
    assert parse_quantity("66.9 TFLOP/s", "flops") == 66.9e12


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ("80 GB", "capacity", "write GiB"),
        ("512 KB", "capacity", "write KiB"),
        ("16 MB", "capacity", "write MiB"),
        ("3.35 TB", "bandwidth", "not a bandwidth"),
        ("1.98 GHz", "bandwidth", "not a bandwidth"),
        ("1 GiB/s", "bandwidth", "not a bandwidth"),
        ("989 TFLOPs/s", "flops", "not a throughput"),
        ("fast", "frequency", "not a number"),
        ("-1 s", "time", "positive"),
        (0, "capacity", "positive"),
        (float("nan"), "bandwidth", "positive"),
        (True, "capacity", "not a capacity"),
        (None, "power", "not a power"),
        (["1 TB/s"], "bandwidth", "two"),
        (["2 TB/s", "1 TB/s"], "bandwidth", "low < high"),
        (5e-324, "bandwidth", "between 1e-18 and 1e\\+30"),  # subnormal: 1 / it overflows to inf
        ("1e-19 s", "time", "between 1e-18"),
        (float("inf"), "flops", "between"),
        ("1e400 TB/s", "bandwidth", "between"),
        (10**400, "capacity", "a number over 1e30"),  # float(10**400) would raise OverflowError
        ([1, 10**400], "capacity", "a number over 1e30"),
    ],
)
def test_rejects_with_hint(text, kind, message):
    with pytest.raises(UnitError, match=message):
        parse_quantity(text, kind)


def test_bounds_are_inclusive():
    assert parse_quantity(1e-18, "energy") == 1e-18
    assert parse_quantity("1e30 B", "capacity") == 1e30


def test_range_is_a_span_with_midpoint():
    span = parse_quantity(["280 TFLOP/s", "376 TFLOP/s"], "flops")
    assert isinstance(span, Span)
    assert (span.low, span.high, float(span)) == (280e12, 376e12, 328e12)
    assert math.isclose(span * 2, 656e12)
