"""Runtime values of the DSL: records that remember where their fields were written, functions.

Integers, strings, booleans and null are Python's own; lists are tuples (immutable).
A `Record` keeps, per field, the position of its key and value, so that a node built by
spreading a record defined in another file still reports errors at the right line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Pos = tuple[str, int, int]


class Record:
    """An immutable mapping from names to values, with each field's source positions."""

    __slots__ = ("fields", "key_pos", "value_pos")

    def __init__(
        self,
        fields: dict[str, Any],
        key_pos: dict[str, Pos] | None = None,
        value_pos: dict[str, Pos] | None = None,
    ) -> None:
        self.fields = fields
        self.key_pos = key_pos if key_pos is not None else {}
        self.value_pos = value_pos if value_pos is not None else {}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Record) and self.fields == other.fields

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "{ " + ", ".join(f"{k} = {v!r}" for k, v in self.fields.items()) + " }"


class Closure:
    """A function value: parameters, body, and the scope (and file) it was written in."""

    __slots__ = ("body", "file", "name", "params", "scope")

    def __init__(
        self, params: tuple[str, ...], body: Any, scope: Any, file: str, name: str = ""
    ) -> None:
        self.params = params
        self.body = body
        self.scope = scope
        self.file = file
        self.name = name

    def __repr__(self) -> str:
        return f"<function {self.name or 'fn'}({', '.join(self.params)})>"


class Builtin:
    """A function provided by the language (`range`, `len`, ...)."""

    __slots__ = ("fn", "max_args", "min_args", "name")

    def __init__(self, name: str, fn: Callable[..., Any], min_args: int, max_args: int) -> None:
        self.name = name
        self.fn = fn
        self.min_args = min_args
        self.max_args = max_args

    def __repr__(self) -> str:
        return f"<builtin {self.name}>"


def type_name(value: Any) -> str:
    """The DSL's name for the type of a value, as error messages show it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, str):
        return "string"
    if isinstance(value, tuple):
        return "list"
    if isinstance(value, Record):
        return "record"
    if isinstance(value, (Closure, Builtin)):
        return "function"
    return type(value).__name__


def is_int(value: Any) -> bool:
    """An int that is not a bool (Python's bool is an int; the language's is not)."""
    return isinstance(value, int) and not isinstance(value, bool)
