"""Spec models as rows (field, value, unit) for tables, and the ranges they hold."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from perfsim.units import Span, Unit


def spec_rows(spec: BaseModel) -> list[dict[str, Any]]:
    """Every leaf field of `spec`: {"field": "memory[1].capacity", "value": 85899345920, "unit": "B"}."""
    rows = [{"field": path, "value": value, "unit": unit.symbol if unit else ""}
            for path, value, unit in _walk(spec, [], "") if value is not None and value != ""]
    return sorted(rows, key=lambda row: row["field"] not in ("name", "kind"))


def spans(spec: BaseModel) -> dict[str, list[float]]:
    """Fields given as a range in the spec file: {"compute[0].peak.fp16": [low, high]}."""
    return {path: [value.low, value.high] for path, value, _ in _walk(spec, [], "") if isinstance(value, Span)}


def _inner(annotation: Any) -> tuple[Any, list[Any]]:
    """(bare type, Annotated metadata) of an annotation."""
    if typing.get_origin(annotation) is typing.Annotated:
        bare, *metadata = typing.get_args(annotation)
        return bare, metadata
    return annotation, []


def _unit(metadata: list[Any]) -> Unit | None:
    return next((m for m in metadata if isinstance(m, Unit)), None)


def _walk(value: Any, metadata: list[Any], path: str, annotation: Any = None) -> Iterator[tuple[str, Any, Unit | None]]:
    if isinstance(value, BaseModel) and path.endswith(("member", "host")):
        yield path, value.name, None  # a system's member (and host) is shown by its own name
    elif isinstance(value, BaseModel):
        for name, field in type(value).model_fields.items():
            yield from _walk(getattr(value, name), field.metadata, f"{path}.{name}" if path else name, field.annotation)
    elif isinstance(value, dict):
        inner, inner_meta = _inner(_value_type(annotation, 1))
        for key, item in value.items():
            yield from _walk(item, inner_meta, f"{path}.{key}", inner)
    elif isinstance(value, list) and value and isinstance(value[0], BaseModel):
        for i, item in enumerate(value):
            yield from _walk(item, [], f"{path}[{i}]")
    else:
        unit = _unit(metadata) or next((u for option in typing.get_args(annotation)
                                        if (u := _unit(_inner(option)[1]))), None)
        yield path, ", ".join(map(str, value)) if isinstance(value, list) else value, unit


def _value_type(annotation: Any, index: int) -> Any:
    """The value type of a dict annotation (possibly inside Optional)."""
    for option in typing.get_args(annotation) or [annotation]:
        if typing.get_origin(option) is dict:
            return typing.get_args(option)[index]
    return None
