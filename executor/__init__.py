"""executor: Plan -> effects (trio scheduler, drivers, remote executors, simulator).

`run_workspace` runs a plan against a workspace of the store; `execute` is the scheduler
alone. Step kinds (`kinds/`) act through the PVE driver (`pve/`) and command channels
(`channels`): local processes, and SSH with pinned host keys driven from trio through
one bridge module (`_bridge`). `sim/` is the simulator of PVE hosts. The executor imports
the planner's plan model and the store, nothing else of pveplan's.
"""

from ._context import Services, StepContext
from ._display import LiveDisplay, PlainDisplay, summary
from ._hosts import HostInfo, SiteHostAccess
from ._kinds import TIERS, StepKind, kind_for, register
from ._keys import generate_ed25519, public_line
from ._model import Event, Outcome, RunReport, StepFailed
from ._run import run_workspace
from ._scheduler import execute, run_key

__all__ = [
    "TIERS",
    "Event",
    "HostInfo",
    "LiveDisplay",
    "Outcome",
    "PlainDisplay",
    "RunReport",
    "Services",
    "SiteHostAccess",
    "StepContext",
    "StepFailed",
    "StepKind",
    "execute",
    "generate_ed25519",
    "kind_for",
    "public_line",
    "register",
    "run_key",
    "run_workspace",
    "summary",
]
