"""PlanError: the planner's root error, rendered by the CLI exactly like `dsl.DslError`.

Both are `dsl.DiagnosticError`s carrying `dsl.Diagnostic`s (summary, detail, location),
so one renderer serves both and a site-config problem points at its file:line:col just
as a manifest problem does.
"""

from __future__ import annotations

from pveplan.dsl import DiagnosticError


class PlanError(DiagnosticError):
    """The manifest is valid on its own but cannot be planned (site config, references, ...)."""
