"""PlanError: the planner's root error, rendered by the CLI exactly like `dsl.DslError`.

It carries `dsl.Diagnostic`s (summary, detail, location), so one renderer serves both
and a site-config problem points at its file:line:col just as a manifest problem does.
"""

from __future__ import annotations

from collections.abc import Iterable

from dsl import Diagnostic, Location


class PlanError(Exception):
    """The manifest is valid on its own but cannot be planned (site config, references, ...)."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        diags = tuple(diagnostics)
        if not diags:
            raise ValueError("PlanError needs at least one diagnostic")
        self.diagnostics: tuple[Diagnostic, ...] = diags
        first = diags[0]
        self.summary = first.summary
        self.detail = first.detail
        self.location = first.location
        super().__init__(f"{first.location}: {first.summary}" if first.location else first.summary)

    @classmethod
    def at(cls, location: Location | None, summary: str, detail: str = "") -> PlanError:
        """An error with a single diagnostic."""
        return cls([Diagnostic(summary=summary, detail=detail, location=location)])
