"""PerObject: a value worked out once per live object (a hardware spec), freed when the object is collected."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class PerObject(Generic[K, V]):
    """`make(obj)`, remembered per object by identity until `obj` is garbage-collected.

    Keyed by `id`, not by value: spec models are frozen pydantic models, hashable only by value (and not at all
    where a field is a list), and two equal specs are distinct objects a caller may price apart; a modified copy
    (`model_copy(update=...)`) is a new object and gets its own value. A weakref.finalize drops the entry while
    the object is being freed, before its id can be reused. A value must not hold `obj` strongly, else `obj`
    never dies.
    """

    def __init__(self, make: Callable[[K], V]) -> None:
        self._make = make
        self._values: dict[int, V] = {}

    def __call__(self, obj: K) -> V:
        key = id(obj)
        try:
            return self._values[key]
        except KeyError:
            pass
        value = self._values[key] = self._make(obj)
        weakref.finalize(obj, self._values.pop, key, None)
        return value

    def __len__(self) -> int:
        """Objects with a value held now."""
        return len(self._values)
