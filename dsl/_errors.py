"""Diagnostics: what went wrong, where, and what to do about it.

Every failure a manifest author can cause ends as one or more `Diagnostic`s inside a
`DslError`. A diagnostic carries a one-line `summary`, an optional `detail` (the hint a
user can act on: "did you mean ...", "presets that exist: ..."), and a `Location`
with the offending source line so the CLI can draw a caret without re-reading files.

The planner and store define errors with the same three fields, so the CLI renders
all of them the same way; this module imports nothing of ours.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Self

import msgspec


class Location(msgspec.Struct, frozen=True, kw_only=True):
    """A 1-based position in a source file, with the text of that line for carets."""

    file: str
    line: int
    col: int
    source_line: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class Diagnostic(msgspec.Struct, frozen=True, kw_only=True):
    """One problem: a summary line, an optional actionable detail, and where it is."""

    summary: str
    detail: str = ""
    location: Location | None = None
    severity: str = "error"  # "error" or "warning"


class DiagnosticError(Exception):
    """An error made of diagnostics: what every pveplan package raises for user mistakes.

    Holds every diagnostic found, errors first, so `validate` can report them all at
    once; `summary`, `detail` and `location` are those of the first, which is what a
    caller that only wants one message shows. Each package subclasses it (`DslError`,
    `PlanError`, ...) so callers can tell where a problem was found.
    """

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        diags = tuple(diagnostics)
        if not diags:
            raise ValueError(f"{type(self).__name__} needs at least one diagnostic")
        self.diagnostics: tuple[Diagnostic, ...] = diags
        first = diags[0]
        self.summary = first.summary
        self.detail = first.detail
        self.location = first.location
        super().__init__(f"{first.location}: {first.summary}" if first.location else first.summary)

    @classmethod
    def at(cls, location: Location | None, summary: str, detail: str = "") -> Self:
        """An error with a single diagnostic."""
        return cls([Diagnostic(summary=summary, detail=detail, location=location)])


class DslError(DiagnosticError):
    """A manifest (or a file it reads) cannot become a valid `Manifest`."""


def location_in_text(file: str, text: str, line: int, col: int) -> Location:
    """A `Location` whose source line is taken from `text` (1-based line and column)."""
    lines = text.split("\n")
    source_line = lines[line - 1] if 0 < line <= len(lines) else ""
    return Location(file=file, line=line, col=col, source_line=source_line)


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice a typo most likely meant, or None when nothing is close."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(word: str, choices: Iterable[str], what: str) -> str:
    """A detail line: the closest choice if any, then every choice that exists.

    `what` names the kind of thing ("presets", "keys"), so the user learns what exists
    even when the typo is too far from any of them for a suggestion.
    """
    options = sorted(set(choices))
    guess = closest(word, options)
    listing = ", ".join(options) if options else "(none)"
    if guess is not None:
        return f"did you mean {guess!r}? {what} that exist: {listing}"
    return f"{what} that exist: {listing}"
