"""Cost from a spec's price per device-hour: per hour for N chips, and per million tokens at a throughput.

A price given as a range in the spec ([1.65 USD/h, 6.88 USD/h]) stays a range: (low, high); a single price
is (p, p); no price is None. cost per million tokens = cost per hour / (tokens/s × 3600 s/h) × 1e6.
"""

from __future__ import annotations

from perfsim.hardware import Device, System
from perfsim.units import Span

Range = tuple[float, float]


def price_per_device_hour(spec: Device | System) -> Range | None:
    """(low, high) US dollars per chip-hour: the system's own price, else its chip's; None if neither has one."""
    price = spec.price if isinstance(spec, System) and spec.price is not None else spec.device.price
    if price is None:
        return None
    value = price.per_device_hour
    return (value.low, value.high) if isinstance(value, Span) else (float(value), float(value))


def per_hour(price: Range | None, chips: int) -> Range | None:
    """(low, high) US dollars per hour for `chips` chips."""
    return None if price is None else (price[0] * chips, price[1] * chips)


def per_million_tokens(hourly: Range | None, tokens_per_s: float | None) -> Range | None:
    """(low, high) US dollars per million tokens served at `tokens_per_s`."""
    if hourly is None or not tokens_per_s:
        return None
    return (hourly[0] / (tokens_per_s * 3600) * 1e6, hourly[1] / (tokens_per_s * 3600) * 1e6)


def columns(hourly: Range | None, tokens_per_s: float | None) -> dict[str, float | None]:
    """cost_per_hour_{low,high}_usd and cost_per_million_tokens_{low,high}_usd, for a tidy row."""
    million = per_million_tokens(hourly, tokens_per_s)
    return {"cost_per_hour_low_usd": hourly[0] if hourly else None,
            "cost_per_hour_high_usd": hourly[1] if hourly else None,
            "cost_per_million_tokens_low_usd": million[0] if million else None,
            "cost_per_million_tokens_high_usd": million[1] if million else None}


def shown(value: Range | None) -> float | list[float] | None:
    """A range as [low, high], a single price as one number (JSON)."""
    if value is None:
        return None
    return value[0] if value[0] == value[1] else [value[0], value[1]]
