"""Reading spec files (hardware, models, cases): safe YAML in, one-line errors out.

Every failure becomes a PerfsimError of the form `FILE: FIELD: what is wrong`, with
the closest allowed field for a misspelling.
"""

from __future__ import annotations

import difflib
import functools
import stat
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from perfsim.errors import PerfsimError


def shown(path: Path) -> Path:
    """`path` relative to the working directory where it lies below it, for messages."""
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


MAX_FILE_BYTES = 16 * 2**20
"""Spec, scenario and case files are a few KiB; anything over 16 MiB is a wrong path (or /dev/zero)."""


MAX_DEPTH = 32
"""The deepest nesting a spec needs is about 6 (a system's member's compute unit's peak per dtype)."""
MAX_VALUES = 1_000_000
"""More values than a spec could mean: YAML aliases nested to expand into billions ("billion laughs")."""


def _check_shape(data: Any, path: Path) -> None:
    """Raise PerfsimError if lists and mappings in `data` nest deeper than MAX_DEPTH or hold over MAX_VALUES."""
    stack, values = [(data, 0)], 0
    while stack:
        item, level = stack.pop()
        values += 1
        if values > MAX_VALUES:
            raise PerfsimError(f"{path}: holds more than {MAX_VALUES:,} values (aliases expanding?)")
        if isinstance(item, dict | list):
            if level == MAX_DEPTH:
                raise PerfsimError(f"{path}: nested deeper than {MAX_DEPTH} levels")
            stack += [(child, level + 1) for child in (item.values() if isinstance(item, dict) else item)]


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """SafeLoader (libyaml's parser where PyYAML has it: ~10× faster) that refuses a key given twice in one mapping
    (YAML would silently keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, typing.Hashable):
                continue  # SafeLoader itself reports an unhashable key
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_text(path: Path) -> str:
    """The UTF-8 text of a regular file of at most MAX_FILE_BYTES; Raise PerfsimError otherwise."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise PerfsimError(f"{path}: not a regular file")
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise PerfsimError(f"{path}: cannot read ({err.strerror})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise PerfsimError(f"{path}: larger than {MAX_FILE_BYTES // 2**20} MiB, not a spec file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PerfsimError(f"{path}: not UTF-8 text (byte {err.start})") from None


def read_yaml(path: Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file; Raise PerfsimError if unreadable, malformed (a key given twice
    included), nested too deep or not a mapping."""
    path = shown(path)
    text = read_text(path)
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as err:
        if "nesting depth" in str(err):  # libyaml's own limit on flow nesting
            raise PerfsimError(f"{path}: nested deeper than {MAX_DEPTH} levels") from None
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise PerfsimError(f"{path}: malformed YAML{where}: {problem}") from None
    except RecursionError:
        raise PerfsimError(f"{path}: nested deeper than {MAX_DEPTH} levels") from None
    if not isinstance(data, dict):
        raise PerfsimError(f"{path}: expected a mapping of fields at the top level, got {type(data).__name__}")
    _check_shape(data, path)
    return data


def load_spec(path: Path, annotation: Any, data: dict[str, Any] | None = None) -> Any:
    """Validate the file at `path` (or `data` read from it) as `annotation`; its `name` must equal the file stem."""
    spec = validate(annotation, read_yaml(path) if data is None else data, str(shown(path)))
    if spec.name != path.stem:
        raise PerfsimError(f"{shown(path)}: name: '{spec.name}' must equal the file name '{path.stem}'")
    return spec


def validate(annotation: Any, data: Any, origin: str) -> Any:
    """Validate `data` against `annotation`; Raise PerfsimError naming `origin` and the field."""
    try:
        return adapter(annotation).validate_python(data)
    except ValidationError as err:
        raise PerfsimError(f"{origin}: {describe(err, annotation)}") from None


@functools.cache
def adapter(annotation: Any) -> TypeAdapter:
    """The pydantic TypeAdapter of `annotation`, built once (building one costs far more than validating)."""
    return TypeAdapter(annotation)


def describe(err: ValidationError, annotation: Any) -> str:
    """One line for the first error: the dotted field path and what is wrong with it."""
    errors = err.errors()
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = [part for part in first["loc"] if not _is_tag(annotation, first["loc"], part)]
    where = _path(loc)
    kind = first["type"]
    if kind == "extra_forbidden":
        allowed = _fields_at(annotation, first["loc"][:-1])
        field = str(loc[-1])
        close = difflib.get_close_matches(field, allowed, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"{where}: unknown field '{field}'{hint}; allowed: {', '.join(allowed)}"
    if kind == "missing":
        return f"{where}: missing required field"
    if kind == "union_tag_invalid":
        ctx = first.get("ctx", {})
        return f"{where or 'kind'}: unknown kind {ctx.get('tag')} (allowed: {ctx.get('expected_tags')})"
    if kind == "model_type":  # a mapping expected: name its fields rather than pydantic's type
        allowed = _fields_at(annotation, first["loc"])
        return f"{where}: expected a mapping" + (f" with fields {', '.join(allowed)}" if allowed else "")
    message = first["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return f"{where}: {message}" if where else message


def _path(loc: list[Any]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part == "[key]":
            text += " (key)"
        else:
            text += f".{part}" if text else str(part)
    return text


def _strip(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _options(annotation: Any) -> list[Any]:
    annotation = _strip(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [o for arg in typing.get_args(annotation) for o in _options(arg)]
    return [annotation]


def _step(annotation: Any, part: Any) -> Any:
    """The type found one location step below `annotation`, or None."""
    for option in _options(annotation):
        origin = typing.get_origin(option)
        if isinstance(option, type) and issubclass(option, BaseModel):
            if part in option.model_fields:
                return option.model_fields[part].annotation
            tag = option.model_fields.get("kind")
            if tag is not None and part in typing.get_args(tag.annotation):
                return option
        elif origin in (list, tuple) and isinstance(part, int):
            return typing.get_args(option)[0]
        elif origin is dict and isinstance(part, str):
            return typing.get_args(option)[1]
    return None


def _is_tag(annotation: Any, loc: tuple, part: Any) -> bool:
    """True if `part` in `loc` is a discriminated-union tag pydantic inserted, not a field."""
    current = annotation
    for step in loc:
        models = [o for o in _options(current) if isinstance(o, type) and issubclass(o, BaseModel)]
        if step == part and len(models) > 1 and any(
            "kind" in m.model_fields and part in typing.get_args(m.model_fields["kind"].annotation) for m in models
        ):
            return True
        current = _step(current, step)
        if current is None:
            return False
    return False


def _fields_at(annotation: Any, loc: tuple) -> list[str]:
    current = annotation
    for part in loc:
        current = _step(current, part)
    models = [o for o in _options(current) if isinstance(o, type) and issubclass(o, BaseModel)]
    return sorted(models[0].model_fields) if len(models) == 1 else []
