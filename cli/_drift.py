"""Drift as an input of a plan: probe the host's live VMs, put what differs into the plan.

`plan` and `apply` without a plan file call `with_live_drift` after compiling: one listing
of the host's VMs (`executor.probe_live`) compared with what the store records as applied
(`planner.find_drift`), carried by the plan (`Plan.drift`, hashed), so a saved plan's
apply converges exactly the drift its reviewer saw. Nothing is probed with
`--refresh=false`, for a destroy, or when nothing is applied to the workspace (then there
is nothing to drift from, and a plan of a new lab never reaches for the host).

Nested levels are probed by their own executors (`executor.probe_nested`: one listing per
host at every level), and their drift joins the plan's under their host (`Drift.path`).
A nested host that does not answer, or whose executor is too old to know the probe, is a
warning: the plan goes on without that level's drift.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import msgspec

from pveplan.planner import PlanError, find_drift, level_warning, nested_drift, with_drift

from ._session import driver_key, host_info, open_run_store, plan_hosts, run_trio
from ._state import applied_resources

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from pveplan.planner import LevelProbe, LiveHost, Plan, PlanFile, SiteConfig

    from . import Console


def refresh_wanted(args: argparse.Namespace) -> bool:
    """Probe unless `--refresh=false` (None, the default, probes too)."""
    return getattr(args, "refresh", None) is not False


def with_live_drift(
    args: argparse.Namespace,
    console: Console,
    plan_file: PlanFile,
    site: SiteConfig,
    applied: Plan | None,
) -> PlanFile:
    """`plan_file` with the drift the live probe found (as is when not probing), against
    what is `applied` (a step the plan changes anyway has only its existence and status
    compared: its sizes are the plan's change)."""
    if not refresh_wanted(args) or plan_file.plan.action != "apply":
        return plan_file
    workspace = plan_file.header.workspace
    resources = applied_resources(console, workspace)
    if not resources:
        return plan_file
    live, levels = probe_all(console, site, plan_file.plan, workspace, resources)
    warn_levels(console, levels)
    steps = {s.address: s.hash for s in applied.steps} if applied is not None else None
    found = find_drift(plan_file.plan, live, resources, steps) + nested_drift(levels)
    plan = with_drift(plan_file.plan, found)
    if plan.hash == plan_file.plan.hash:
        return plan_file
    return msgspec.structs.replace(plan_file, plan=plan, hash=plan.hash)


def warn_levels(console: Console, levels: tuple[LevelProbe, ...]) -> None:
    """One warning for each nested level that could not be probed."""
    for level in levels:
        if (warning := level_warning(level)) is not None:
            console.error(f"warning: {warning}")


def probe_host(console: Console, site: SiteConfig, host: str, workspace: str) -> LiveHost:
    """The live VMs of `host` (one listing); an unreachable host is a PlanError that
    says how to plan without it."""
    return _probe(console, site, host, workspace, None, {})[0]


def probe_all(
    console: Console,
    site: SiteConfig,
    plan: Plan,
    workspace: str,
    resources: Mapping[str, Mapping[str, Any]],
) -> tuple[list[LiveHost], tuple[LevelProbe, ...]]:
    """One listing of each host the plan's steps are on (a `--target-host` run probes only
    its hosts), and the nested levels below the plan's own host; a host that does not
    answer is a PlanError naming it."""
    live: list[LiveHost] = []
    levels: tuple[LevelProbe, ...] = ()
    for host in plan_hosts(plan, steps_only=True):
        if host == plan.host:
            one, levels = probe_tree(console, site, plan, workspace, resources)
        else:
            one = probe_host(console, site, host, workspace)
        live.append(one)
    return live, levels


def probe_tree(
    console: Console,
    site: SiteConfig,
    plan: Plan,
    workspace: str,
    resources: Mapping[str, Mapping[str, Any]],
) -> tuple[LiveHost, tuple[LevelProbe, ...]]:
    """The live VMs of `plan`'s host (one listing), and every nested level as its own
    executor probed it (unreachable or too old ones say so; never an error here)."""
    return _probe(console, site, plan.host, workspace, plan, resources)


def _probe(
    console: Console,
    site: SiteConfig,
    host: str,
    workspace: str,
    plan: Plan | None,
    resources: Mapping[str, Mapping[str, Any]],
) -> tuple[LiveHost, tuple[LevelProbe, ...]]:
    from pveplan.executor import ExecutorError, probe_live, probe_nested

    public = driver_key(console)[1]
    try:
        with open_run_store(console) as store:
            hosts = {host: host_info(console, site, host, public, store)}

            async def body(services: object) -> tuple[LiveHost, tuple[LevelProbe, ...]]:
                live = await probe_live(services, host)  # type: ignore[arg-type]
                if plan is None or not plan.subplans:
                    return live, ()
                return live, await probe_nested(services, plan, resources)  # type: ignore[arg-type]

            return run_trio(console, store, workspace, hosts, site, body)
    except (ExecutorError, OSError) as exc:
        raise PlanError.at(
            None,
            f"cannot probe the live state of {host}: {exc}",
            "reach the host, or plan offline from the store alone with --refresh=false",
        ) from None
