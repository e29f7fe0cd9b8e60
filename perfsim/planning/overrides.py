"""One field of a spec changed by dotted path, through pydantic validation: `array.rows`, `memory.hbm.bandwidth`,
`memory.1.capacity`, `member.interconnect.latency` (a system's chip through `member`).

A path part is a field name; inside a list, an index or the `name` of an item. The changed model and
every model above it are validated again, so units ("4 TB/s") are parsed and cross-field checks run.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from perfsim.errors import PerfsimError
from perfsim.specfile import validate


def with_field(spec: BaseModel, path: str, value: Any) -> Any:
    """`spec` with the field at dotted `path` set to `value`. Raise PerfsimError naming the path for an unknown
    field or a value the spec's validation refuses."""
    return _set(spec, path.split("."), value, path)


def _set(node: Any, parts: list[str], value: Any, path: str) -> Any:
    head, rest = parts[0], parts[1:]
    if isinstance(node, list):
        index = _index(node, head, path)
        return [*node[:index], _set(node[index], rest, value, path) if rest else value, *node[index + 1:]]
    if isinstance(node, dict):
        if head not in node:
            raise PerfsimError(f"{path}: no key '{head}' (keys: {', '.join(map(str, node))})")
        return {**node, head: _set(node[head], rest, value, path) if rest else value}
    if not isinstance(node, BaseModel):
        raise PerfsimError(f"{path}: '{head}' is inside a value that has no fields")
    fields = type(node).model_fields
    if head not in fields:
        raise PerfsimError(f"{path}: {type(node).__name__} has no field '{head}' (fields: {', '.join(fields)})")
    new = _set(getattr(node, head), rest, value, path) if rest else value
    data = {name: getattr(node, name) for name in fields if name in node.model_fields_set}
    return validate(type(node), {**data, head: new}, path)


def _index(items: list[Any], part: str, path: str) -> int:
    """The position of `part` in `items`: an index, or the item whose `name` it is."""
    if part.lstrip("-").isdigit() and -len(items) <= int(part) < len(items):
        return int(part) % len(items)
    names = [getattr(item, "name", None) for item in items]
    if part in names:
        return names.index(part)
    shown = ", ".join(str(n) for n in names if n is not None) or f"0 to {len(items) - 1}"
    raise PerfsimError(f"{path}: no item '{part}' in the list (items: {shown})")
