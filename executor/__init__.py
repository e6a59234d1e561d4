"""executor: Plan -> effects (trio scheduler, drivers, remote executors).

`run_workspace` runs a plan against a workspace of the store; `execute` is the scheduler
alone. Step kinds (`kinds/`) act through the PVE driver (`pve/`) and command channels
(`channels`): local processes, and SSH with pinned host keys driven from trio through
one bridge module (`_bridge`). The simulator of PVE hosts is a package of its own
(`pveplan.sim`, the repository's `sim/`). The executor imports the planner's plan model
and the store, nothing else of pveplan's.

Exports load lazily (PEP 562): the simulator imports `generate_ed25519` from here in a
process that runs one simulated command, which must not pay for trio and asyncssh.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TIERS": "._kinds",
    "Event": "._model",
    "ExecutorError": "._errors",
    "HostInfo": "._hosts",
    "LiveDisplay": "._display",
    "NodeRow": "._results",
    "Outcome": "._model",
    "PlainDisplay": "._display",
    "RunReport": "._model",
    "Services": "._context",
    "SiteHostAccess": "._hosts",
    "SpecServerRef": "._context",
    "StepContext": "._context",
    "StepFailed": "._model",
    "StepKind": "._kinds",
    "execute": "._scheduler",
    "generate_ed25519": "._keys",
    "kind_for": "._kinds",
    "node_rows": "._results",
    "node_table": "._results",
    "public_line": "._keys",
    "register": "._kinds",
    "run_key": "._scheduler",
    "run_workspace": "._run",
    "summary": "._display",
    "sweep_tagged": "._run",
    "with_nested": "._results",
}

__all__ = [
    "TIERS",
    "Event",
    "ExecutorError",
    "HostInfo",
    "LiveDisplay",
    "NodeRow",
    "Outcome",
    "PlainDisplay",
    "RunReport",
    "Services",
    "SiteHostAccess",
    "SpecServerRef",
    "StepContext",
    "StepFailed",
    "StepKind",
    "execute",
    "generate_ed25519",
    "kind_for",
    "node_rows",
    "node_table",
    "public_line",
    "register",
    "run_key",
    "run_workspace",
    "summary",
    "sweep_tagged",
    "with_nested",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'executor' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
