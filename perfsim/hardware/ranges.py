"""Specs that hold ranges: the same spec at the low or the high end of every range, for prediction bands."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from perfsim.units import Span

End = Literal["low", "high"]


def has_ranges(spec: Any) -> bool:
    return _at(spec, "low") is not spec


def at_end(spec: Any, end: End) -> Any:
    """`spec` with every Span replaced by its `end`; the same object when it holds no range."""
    return _at(spec, end)


def _at(value: Any, end: End) -> Any:
    if isinstance(value, Span):
        return getattr(value, end)
    if isinstance(value, BaseModel):
        updates = {name: _at(getattr(value, name), end) for name in type(value).model_fields}
        changed = {k: v for k, v in updates.items() if v is not getattr(value, k)}
        return value.model_copy(update=changed) if changed else value
    if isinstance(value, dict):
        items = {k: _at(v, end) for k, v in value.items()}
        return items if any(items[k] is not value[k] for k in value) else value
    if isinstance(value, list):
        items = [_at(v, end) for v in value]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    return value
