"""planner: Manifest + site config -> Plan.

Owns the site config (discovery, loading, resolving a manifest's foreign keys), steps,
hashing, plan files, diffs and their rendering, signatures, and the pull-mode specs a
plan carries. Pure apart from reading the site-config files it is pointed at; the CLI
(`pveplan.cli`, the composition root) is its caller, and reaches it through these names
only.

The plan model and its hashing load with the package (the executor needs little else);
every other export loads lazily (PEP 562), so `pveplan --version` never pays for the DSL,
YAML or the site config.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._errors import PlanError
from ._hashing import canonical, digest
from ._plan import Plan, PlanSettings, SecretUse, Step
from ._version import __version__

_EXPORTS = {
    "MANIFEST_SUFFIXES": "._pullnodes",
    "MIN_MAX_CHARS": "._markdown",
    "Change": "._diff",
    "HostConfig": ".siteconfig",
    "PlanFile": "._planfile",
    "PulledSpec": "._pullspec",
    "SecretRef": ".siteconfig",
    "SiteConfig": ".siteconfig",
    "Summary": "._diff",
    "build_plan_file": "._planning",
    "changes_json": "._render",
    "decode_applied_plan": "._planfile",
    "destroy_plan": "._destroy",
    "destroy_plan_file": "._destroy",
    "diff_plans": "._diff",
    "discover_site_config": ".siteconfig",
    "encode_plan_file": "._planfile",
    "fingerprint": "._signing",
    "generate_key_pair": "._signing",
    "host_of": "._nodesummary",
    "load_private_key": "._signing",
    "load_site_config": ".siteconfig",
    "moved_inputs": "._provenance",
    "node_changes": "._nodesummary",
    "plan_changes": "._diff",
    "plan_hash": "._hashing",
    "plan_json": "._render",
    "plan_pulled_specs": "._pullnodes",
    "plan_to_dot": "._graph",
    "pull_identities": "._pullnodes",
    "read_plan_file": "._planfile",
    "relative_to": "._planfile",
    "render_changes": "._render",
    "render_markdown": "._markdown",
    "render_plan": "._render",
    "require_signature": "._signing",
    "resolve_manifest": ".siteconfig",
    "sign": "._signing",
    "site_pulled_specs": "._pullnodes",
    "summarize": "._diff",
    "trusted_keys": "._signing",
    "verify_plan": "._hashing",
    "workspace_name": "._planning",
}
"""Name -> the module it loads from, on first use."""

__all__ = [
    "MANIFEST_SUFFIXES",
    "MIN_MAX_CHARS",
    "Change",
    "HostConfig",
    "Plan",
    "PlanError",
    "PlanFile",
    "PlanSettings",
    "PulledSpec",
    "SecretRef",
    "SecretUse",
    "SiteConfig",
    "Step",
    "Summary",
    "__version__",
    "build_plan_file",
    "canonical",
    "changes_json",
    "decode_applied_plan",
    "destroy_plan",
    "destroy_plan_file",
    "diff_plans",
    "digest",
    "discover_site_config",
    "encode_plan_file",
    "fingerprint",
    "generate_key_pair",
    "host_of",
    "load_private_key",
    "load_site_config",
    "moved_inputs",
    "node_changes",
    "plan_changes",
    "plan_hash",
    "plan_json",
    "plan_pulled_specs",
    "plan_to_dot",
    "pull_identities",
    "read_plan_file",
    "relative_to",
    "render_changes",
    "render_markdown",
    "render_plan",
    "require_signature",
    "resolve_manifest",
    "sign",
    "site_pulled_specs",
    "summarize",
    "trusted_keys",
    "verify_plan",
    "workspace_name",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
