"""planner: Manifest + site config -> Plan.

Owns the site config (discovery, loading, resolving a manifest's foreign keys), steps,
hashing, plan files, diffs and their rendering. Pure apart from reading the site-config
files it is pointed at; the CLI (`pveplan.cli`, the composition root) is its caller.
"""

from ._errors import PlanError
from ._hashing import canonical, digest
from ._plan import Plan, PlanSettings, SecretUse, Step
from ._version import __version__

__all__ = [
    "Plan",
    "PlanError",
    "PlanSettings",
    "SecretUse",
    "Step",
    "__version__",
    "canonical",
    "digest",
]
