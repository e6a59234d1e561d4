"""What the store says is applied, for `plan` to diff against (read-only).

Planning never writes: with no store yet, or nothing applied to the workspace, the
previous plan is None and everything is new. The applied plan is read back from its
content-addressed object and verified like any plan file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pveplan.dsl import Diagnostic
from pveplan.planner import Plan, PlanError, decode_applied_plan

if TYPE_CHECKING:
    from . import Console


def store_location(console: Console) -> Path:
    from pveplan.store import store_path

    return store_path(console.env)


def applied_plan(console: Console, workspace: str) -> Plan | None:
    """The plan last applied to `workspace`, or None (no store, nothing applied)."""
    from pveplan.store import StoreError, open_store

    path = store_location(console)
    if not (path / "store.sqlite").exists():
        return None
    try:
        with open_store(path) as store:
            state = store.applied(workspace)
            if state is None:
                return None
            object_hash = store.plan_object(state.plan_hash)
            if object_hash is None:
                raise PlanError.at(
                    None,
                    f"the store records plan {state.plan_hash} as applied but does not hold it",
                    "run `pveplan store verify`",
                )
            data = store.get_object(object_hash)
    except StoreError as exc:
        raise PlanError([_as_diagnostic(d) for d in exc.diagnostics]) from None
    return decode_applied_plan(data, state.plan_hash)


def applied_resources(console: Console, workspace: str) -> dict[str, dict[str, object]]:
    """The live resources the store records for `workspace`: address -> outputs."""
    from pveplan.store import StoreError, open_store

    path = store_location(console)
    if not (path / "store.sqlite").exists():
        return {}
    try:
        with open_store(path) as store:
            return {r.address: dict(r.outputs) for r in store.resources(workspace)}
    except StoreError as exc:
        raise PlanError([_as_diagnostic(d) for d in exc.diagnostics]) from None


def _as_diagnostic(diag: object) -> Diagnostic:
    return Diagnostic(
        summary=getattr(diag, "summary", str(diag)),
        detail=getattr(diag, "detail", ""),
        severity=getattr(diag, "severity", "error"),
    )
