"""planner: Manifest + site config -> Plan.

Owns the site config (discovery, loading, resolving a manifest's foreign keys), and,
as later issues land, steps, hashing, plan files, diffs and the CLI (the composition
root, `planner.cli`). Pure apart from reading the site-config files it is pointed at.
"""

from ._errors import PlanError
from ._version import __version__

__all__ = ["PlanError", "__version__"]
