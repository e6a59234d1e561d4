"""How diagnostics look on a terminal: `file:line:col: error: summary`, the line, a caret.

Every error pveplan reports (from dsl, planner, and later store and executor) carries
the same fields, so this one renderer shows them all. Colour only on a terminal and
never when `NO_COLOR` is set; very long source lines are cut to a window around the
caret so a minified or fuzzed file cannot flood the screen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TextIO

WINDOW = 100


class Style:
    """ANSI styling that collapses to plain text when colour is off."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled else text

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def red(self, text: str) -> str:
        return self._wrap("1;31", text)

    def yellow(self, text: str) -> str:
        return self._wrap("1;33", text)

    def green(self, text: str) -> str:
        return self._wrap("32", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)


def color_enabled(stream: TextIO, env: Mapping[str, str], flag: bool | None = None) -> bool:
    """Colour if asked, else if `stream` is a terminal and NO_COLOR is unset (or empty)."""
    if flag is not None:
        return flag
    if env.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def render_diagnostic(diag: Any, style: Style) -> str:
    """One diagnostic as text lines (no trailing newline)."""
    severity = getattr(diag, "severity", "error")
    label = style.red("error") if severity == "error" else style.yellow("warning")
    location = getattr(diag, "location", None)
    head = f"{style.bold(str(location))}: " if location is not None else "pveplan: "
    lines = [f"{head}{label}: {_one_line(diag.summary)}"]
    if location is not None and location.source_line:
        text, caret = _window(location.source_line, location.col)
        lines.append("  " + text)
        lines.append("  " + " " * caret + style.red("^"))
    detail = getattr(diag, "detail", "")
    if detail:
        lines.extend("  " + style.dim("hint: ") + _one_line(part) for part in detail.splitlines())
    return "\n".join(lines)


def render_all(diagnostics: Iterable[Any], style: Style) -> str:
    return "\n".join(render_diagnostic(d, style) for d in diagnostics)


def _one_line(text: str) -> str:
    """Keep messages on one line, and keep terminal control characters out of them."""
    return "".join(ch if ch >= " " or ch == "\t" else "?" for ch in text.replace("\n", " "))


def _window(line: str, col: int) -> tuple[str, int]:
    """The part of `line` around 1-based `col`, with tabs as spaces; and the caret offset."""
    line = _one_line(line).replace("\t", " ")
    index = max(0, min(col - 1, len(line)))
    if len(line) <= WINDOW:
        return line, index
    start = max(0, index - WINDOW // 2)
    piece = line[start : start + WINDOW]
    prefix = "..." if start else ""
    suffix = "..." if start + WINDOW < len(line) else ""
    return prefix + piece + suffix, index - start + len(prefix)
