"""planner: Manifest + site config -> Plan.

Owns the site config (discovery, loading, resolving a manifest's foreign keys), and,
as later issues land, steps, hashing, plan files, diffs and the CLI (the composition
root, `planner.cli`). Pure apart from reading the site-config files it is pointed at.
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
