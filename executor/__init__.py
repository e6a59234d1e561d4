"""executor: Plan -> effects (trio scheduler, drivers, remote executors).

`run_workspace` runs a plan against a workspace of the store; `execute` is the scheduler
alone; `run_session` gives a run its trio side (bridge loop, SSH pool, bundle), and
`serve_stdio` is a nested host's remote executor. The CLI reaches the executor through
these names only. Step kinds (`kinds/`) act through the PVE driver (`pve/`) and command
channels (`channels`): local processes, and SSH with pinned host keys driven from trio
through one bridge module (`_bridge`). The simulator of PVE hosts is a package of its own
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
    "ApiAccess": "._hosts",
    "ApplyResult": ".pull._node_apply",
    "Bundle": ".remote",
    "Catalog": ".specserver",
    "CatalogError": ".specserver",
    "DeadlineExpired": "._deadline",
    "ChannelError": ".channels",
    "Event": "._model",
    "ExecutorError": "._errors",
    "Found": "._leftovers",
    "HostInfo": "._hosts",
    "Leftovers": "._leftovers",
    "Limits": ".specserver",
    "LiveDisplay": "._display",
    "NodeError": ".pull._node",
    "NodeFinding": "._leftovers",
    "NodeRow": "._results",
    "Outcome": "._model",
    "PlainDisplay": "._display",
    "PreflightReport": "._preflight",
    "PublishedSpec": ".specserver",
    "Refused": "._leftovers",
    "RunReport": "._model",
    "Services": "._context",
    "SiteHostAccess": "._hosts",
    "SpecServerRef": "._context",
    "SshTarget": ".channels",
    "StepContext": "._context",
    "StepFailed": "._model",
    "StepKind": "._kinds",
    "Wanted": "._leftovers",
    "config_apply": ".pull._node_apply",
    "current_bundle": ".remote._bundle",
    "destroy_leftovers": "._leftovers",
    "with_deadline": "._deadline",
    "execute": "._scheduler",
    "find_leftovers": "._leftovers",
    "generate_ed25519": "._keys",
    "kind_for": "._kinds",
    "load_or_create_certificate": ".pull",
    "match_leftovers": "._leftovers",
    "node_findings": "._leftovers",
    "node_rows": "._results",
    "node_spec_get": ".pull._node",
    "node_table": "._results",
    "preflight": "._preflight",
    "probe_live": "._live",
    "probe_configs": "._live",
    "with_level_drift": "._live",
    "live_vm": "._live",
    "probe_node_ssh": "._verify",
    "public_line": "._keys",
    "published_specs": ".pull._client",
    "NON_HEX_KEY_HINT": ".pull._tokens",
    "TokenInspection": ".pull._tokeninspect",
    "TokenRefused": ".pull._tokens",
    "inspect_token": ".pull._tokeninspect",
    "signing_key_is_hex": ".pull._tokens",
    "recorded_nodes": "._leftovers",
    "register": "._kinds",
    "run_key": "._scheduler",
    "run_session": "._session",
    "run_ssh_command": "._session",
    "run_workspace": "._run",
    "serve_specs": ".specserver",
    "serve_stdio": ".remote._home",
    "summary": "._display",
    "wanted_nodes": "._leftovers",
    "with_nested": "._results",
}

__all__ = [
    "NON_HEX_KEY_HINT",
    "TIERS",
    "ApiAccess",
    "ApplyResult",
    "Bundle",
    "Catalog",
    "CatalogError",
    "ChannelError",
    "DeadlineExpired",
    "Event",
    "ExecutorError",
    "Found",
    "HostInfo",
    "Leftovers",
    "Limits",
    "LiveDisplay",
    "NodeError",
    "NodeFinding",
    "NodeRow",
    "Outcome",
    "PlainDisplay",
    "PreflightReport",
    "PublishedSpec",
    "Refused",
    "RunReport",
    "Services",
    "SiteHostAccess",
    "SpecServerRef",
    "SshTarget",
    "StepContext",
    "StepFailed",
    "StepKind",
    "TokenInspection",
    "TokenRefused",
    "Wanted",
    "config_apply",
    "current_bundle",
    "destroy_leftovers",
    "execute",
    "find_leftovers",
    "generate_ed25519",
    "inspect_token",
    "kind_for",
    "live_vm",
    "load_or_create_certificate",
    "match_leftovers",
    "node_findings",
    "node_rows",
    "node_spec_get",
    "node_table",
    "preflight",
    "probe_configs",
    "probe_live",
    "probe_node_ssh",
    "public_line",
    "published_specs",
    "recorded_nodes",
    "register",
    "run_key",
    "run_session",
    "run_ssh_command",
    "run_workspace",
    "serve_specs",
    "serve_stdio",
    "signing_key_is_hex",
    "summary",
    "wanted_nodes",
    "with_deadline",
    "with_level_drift",
    "with_nested",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'executor' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
