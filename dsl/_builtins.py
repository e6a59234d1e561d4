"""The functions every .pvp program sees: range, len, str, join, keys, has, min, max.

Each takes the span of its call first, so its errors point at the call. They are pure,
and the ones that build collections charge the evaluator's step budget for their size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _ast as A
from ._operators import Budget
from ._values import Builtin, Record, is_int, type_name

MAX_COLLECTION = 1_000_000


def make_builtins(ev: Budget) -> list[Builtin]:
    """The functions every program sees. Each takes the call's span first, for errors."""

    def want_int(span: A.Span, value: Any, what: str) -> int:
        if not is_int(value):
            raise ev.error(span, f"{what} must be an int, got {type_name(value)}")
        return value

    def range_(span: A.Span, *args: Any) -> tuple[int, ...]:
        ints = [want_int(span, a, "range()'s arguments") for a in args]
        if len(ints) == 3 and ints[2] == 0:
            raise ev.error(span, "range() step must not be zero")
        result = range(*ints)
        if len(result) > MAX_COLLECTION:
            raise ev.error(
                span, f"range() of {len(result):,} items is larger than {MAX_COLLECTION:,}"
            )
        ev.charge(len(result), span)
        return tuple(result)

    def len_(span: A.Span, value: Any) -> int:
        if isinstance(value, (tuple, str)):
            return len(value)
        if isinstance(value, Record):
            return len(value.fields)
        raise ev.error(span, f"len() needs a list, string or record, got {type_name(value)}")

    def str_(span: A.Span, value: Any) -> str:
        if isinstance(value, str):
            return value
        if is_int(value):
            return str(value)
        if isinstance(value, bool):
            return "true" if value else "false"
        raise ev.error(span, f"str() needs an int, bool or string, got {type_name(value)}")

    def join(span: A.Span, items: Any, sep: Any) -> str:
        if not isinstance(items, tuple) or not all(isinstance(i, str) for i in items):
            raise ev.error(span, "join() needs a list of strings")
        if not isinstance(sep, str):
            raise ev.error(span, "join()'s separator must be a string")
        text = sep.join(items)
        ev.check_string(text, span)
        return text

    def keys(span: A.Span, record: Any) -> tuple[str, ...]:
        if not isinstance(record, Record):
            raise ev.error(span, f"keys() needs a record, got {type_name(record)}")
        return tuple(record.fields)

    def has(span: A.Span, record: Any, key: Any) -> bool:
        if not isinstance(record, Record) or not isinstance(key, str):
            raise ev.error(span, "has() needs a record and a string")
        return key in record.fields

    def extremum(pick: Callable[..., int], name: str) -> Callable[..., int]:
        def run(span: A.Span, *args: Any) -> int:
            values = args[0] if len(args) == 1 and isinstance(args[0], tuple) else args
            if not values or not all(is_int(v) for v in values):
                raise ev.error(span, f"{name}() needs ints (or one non-empty list of ints)")
            return pick(values)

        return run

    return [
        Builtin("range", range_, 1, 3),
        Builtin("len", len_, 1, 1),
        Builtin("str", str_, 1, 1),
        Builtin("join", join, 2, 2),
        Builtin("keys", keys, 1, 1),
        Builtin("has", has, 2, 2),
        Builtin("min", extremum(min, "min"), 1, 64),
        Builtin("max", extremum(max, "max"), 1, 64),
    ]
