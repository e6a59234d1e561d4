"""String literals: escapes (JSON's, plus `\\$`) and `${...}` interpolation.

The lexer hands over a whole STRING token; this module turns its text into literal parts
and parsed interpolations, reporting a bad escape at its exact column.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from . import _ast as A
from ._errors import DslError


class Builder(Protocol):
    """What string decoding needs from the parser's tree builder: an error at a column of
    a token, and parsing an interpolation (a protocol, so this module does not import the
    parser back)."""

    def error(self, token: Any, offset: int, summary: str, detail: str = "") -> DslError: ...

    def sub_expr(self, source: str, line: int, col: int) -> A.Expr: ...


# --- strings -----------------------------------------------------------------------------

# JSON's escapes, so every JSON string literal is also a .pvp string, plus `\$`.
_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
    "/": "/",
    '"': '"',
    "\\": "\\",
    "$": "$",
}
_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")
_HEX_BRACED = re.compile(r"\{([0-9A-Fa-f]{1,6})\}")


def _unicode_escape(raw: str, i: int) -> tuple[int | None, int]:
    """The code point of the `\\u` escape at raw[i] (\\u{hex} or \\uXXXX, surrogate pairs
    joined) and where the escape ends; None for a malformed or lone-surrogate escape."""
    braced = _HEX_BRACED.match(raw, i + 2)
    if braced:
        code, end = int(braced.group(1), 16), braced.end()
    elif _HEX4.match(raw, i + 2):
        code, end = int(raw[i + 2 : i + 6], 16), i + 6
        if 0xD800 <= code < 0xDC00 and raw[end : end + 2] == "\\u" and _HEX4.match(raw, end + 2):
            low = int(raw[end + 2 : end + 6], 16)
            if 0xDC00 <= low < 0xE000:
                code, end = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00), end + 6
    else:
        return None, i + 2
    if 0xD800 <= code < 0xE000 or code > 0x10FFFF:
        return None, end
    return code, end


def string_parts(token: Any, builder: Builder) -> tuple[str | A.Expr, ...]:
    """Split a STRING token into literal text and parsed `${...}` expressions."""
    raw = str(token)[1:-1]
    parts: list[str | A.Expr] = []
    buf: list[str] = []
    i = 0
    while i < len(raw):
        char = raw[i]
        if char == "\\":
            nxt = raw[i + 1]
            if nxt in _ESCAPES:
                buf.append(_ESCAPES[nxt])
                i += 2
                continue
            if nxt == "u":
                code, end = _unicode_escape(raw, i)
                if code is None:
                    raise builder.error(
                        token,
                        i + 1,
                        f"bad unicode escape {raw[i:end]}",
                        "write \\u{hex} (1-6 digits) or \\uXXXX; surrogates only as a pair",
                    )
                buf.append(chr(code))
                i = end
                continue
            raise builder.error(
                token,
                i + 1,
                f"unknown escape \\{nxt}",
                'use \\\\ \\" \\/ \\b \\f \\n \\r \\t \\$, \\uXXXX or \\u{hex}',
            )
        if char == "$" and raw[i + 1 : i + 2] == "{":
            end = raw.find("}", i)
            if end < 0:
                raise builder.error(
                    token,
                    i + 1,
                    "unterminated ${ in string",
                    "an interpolation may not contain quotes or braces",
                )
            if buf:
                parts.append("".join(buf))
                buf = []
            source = raw[i + 2 : end]
            if not source.strip():
                raise builder.error(token, i + 1, "empty interpolation ${}")
            parts.append(builder.sub_expr(source, token.line, token.column + 1 + i + 2))
            i = end + 1
            continue
        buf.append(char)
        i += 1
    if buf or not parts:
        parts.append("".join(buf))
    return tuple(parts)


def string_value(token: Any, builder: Builder) -> str:
    parts = string_parts(token, builder)
    if len(parts) != 1 or not isinstance(parts[0], str):
        raise builder.error(token, 0, "an import path cannot use ${...} interpolation")
    return parts[0]
