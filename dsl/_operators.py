"""The language's operators and value limits: equality, comparison and arithmetic.

Kept apart from the evaluator because they are pure functions of two values: the
evaluator decides what to evaluate (and short-circuits `and`/`or`), this module decides
what `==`, `<`, `+`, `/` mean, and which results are out of bounds, so that every
bound is checked in one place and reported at the operator's position.
"""

from __future__ import annotations

from typing import Any, Protocol

from . import _ast as A
from ._errors import DslError
from ._values import Record, is_int, type_name

INT_MIN, INT_MAX = -(2**63), 2**63 - 1
MAX_STRING = 1_000_000


class Budget(Protocol):
    """What operators and builtins need from the evaluator: located errors, the step
    budget and the integer bounds (a protocol, so they never import the evaluator)."""

    def error(self, span: A.Span, summary: str, detail: str = "") -> DslError: ...

    def charge(self, steps: int, span: A.Span) -> None: ...

    def check_string(self, text: str, span: A.Span) -> None: ...

    def checked_int(self, value: int, span: A.Span) -> int: ...


def check_length(ev: Budget, length: int, span: A.Span) -> None:
    """Refuse a string of `length` past MAX_STRING, at `span` (asked before a
    concatenation builds it)."""
    if length > MAX_STRING:
        raise ev.error(span, f"string longer than {MAX_STRING:,} characters")


def binary(ev: Budget, expr: A.BinOp, left: Any, right: Any) -> Any:
    """`left op right` for every binary operator but the short-circuiting `and`/`or`."""
    op = expr.op
    if op == "==":
        return equal(left, right)
    if op == "!=":
        return not equal(left, right)
    both_int = is_int(left) and is_int(right)
    if op in ("<", "<=", ">", ">="):
        if not (both_int or (isinstance(left, str) and isinstance(right, str))):
            raise ev.error(expr.span, f"cannot compare {type_name(left)} {op} {type_name(right)}")
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
    if op == "+":
        return _add(ev, expr.span, left, right, both_int)
    if not both_int:
        raise ev.error(
            expr.span, f"{op} needs two ints, got {type_name(left)} and {type_name(right)}"
        )
    if op == "-":
        return ev.checked_int(left - right, expr.span)
    if op == "*":
        return ev.checked_int(left * right, expr.span)
    if right == 0:
        raise ev.error(expr.right.span, "division by zero")
    return ev.checked_int(left // right if op == "/" else left % right, expr.span)


def _add(ev: Budget, span: A.Span, left: Any, right: Any, both_int: bool) -> Any:
    if both_int:
        return ev.checked_int(left + right, span)
    if isinstance(left, str) and isinstance(right, str):
        check_length(ev, len(left) + len(right), span)
        return left + right
    if isinstance(left, tuple) and isinstance(right, tuple):
        ev.charge(len(left) + len(right), span)
        return left + right
    raise ev.error(span, f"cannot add {type_name(left)} and {type_name(right)}")


def show(value: Any) -> str:
    """A value as the language writes it (null, true, "text"), for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def equal(left: Any, right: Any) -> bool:
    """Structural equality where values of different types are never equal (1 != true)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, tuple):
        return len(left) == len(right) and all(
            equal(a, b) for a, b in zip(left, right, strict=True)
        )
    if isinstance(left, Record):
        return left.fields.keys() == right.fields.keys() and all(
            equal(value, right.fields[key]) for key, value in left.fields.items()
        )
    return left == right
