"""Drift as an input of a plan: probe the hosts' live VMs, put what differs into the plan.

`plan` and `apply` without a plan file call `with_live_drift` after compiling: one listing
of each host's VMs (`executor.probe_live`; a plan whose nodes sit on several hosts lists
each of them once) compared with what the store records as applied
(`planner.find_drift`), carried by the plan (`Plan.drift`, hashed), so a saved plan's
apply converges exactly the drift its reviewer saw. Nothing is probed with
`--refresh=false`, for a destroy, or when nothing is applied to the workspace (then there
is nothing to drift from, and a plan of a new lab never reaches for the host).

`--refresh=full` (plan, apply, status) adds, in the same session, one config read per VM
the store records as applied (`executor.probe_configs`), compared by
`planner.find_config_drift`: the NIC's bridge, onboot and the cloud-init user and keys,
which no listing carries.

Nested levels are probed by their own executors (`executor.probe_nested`: one listing per
host at every level), and their drift joins the plan's under their host (`Drift.path`).
A nested host that does not answer, or whose executor is too old to know the probe, is a
warning: the plan goes on without that level's drift.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, NamedTuple

import msgspec

from pveplan.planner import (
    PlanError,
    config_targets,
    find_config_drift,
    find_drift,
    level_warning,
    merged_drift,
    nested_drift,
    with_drift,
)

from ._session import driver_key, host_info, open_run_store, plan_hosts, run_trio
from ._state import applied_resources

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from pveplan.planner import Drift, LevelProbe, LiveHost, Plan, PlanFile, SiteConfig

    from . import Console


def refresh_wanted(args: argparse.Namespace) -> bool:
    """Probe unless `--refresh=false` (None, the default, probes too)."""
    return getattr(args, "refresh", None) is not False


def full_refresh(args: argparse.Namespace) -> bool:
    """`--refresh=full`: read each applied VM's config too."""
    return getattr(args, "refresh", None) == "full"


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
    if not resources:  # nothing recorded: nothing to drift from (a new lab, or a destroyed one)
        return plan_file
    steps = {s.address: s.hash for s in applied.steps} if applied is not None else None
    probed = probe_all(
        console, site, plan_file.plan, workspace, resources, steps, full=full_refresh(args)
    )
    warn_levels(console, probed.levels)
    plan = with_drift(plan_file.plan, probed.drift + nested_drift(probed.levels))
    if plan.hash == plan_file.plan.hash:
        return plan_file
    return msgspec.structs.replace(plan_file, plan=plan, hash=plan.hash)


def warn_levels(console: Console, levels: tuple[LevelProbe, ...]) -> None:
    """One warning for each nested level that could not be probed."""
    for level in levels:
        if (warning := level_warning(level)) is not None:
            console.error(f"warning: {warning}")


class Probed(NamedTuple):
    """What probing a plan's hosts found: each answering host's listing, the drift of
    their VMs (in plan order), the nested levels below the plan's own host, and a line
    for each host that did not answer (only when asked to go on without it)."""

    live: list[LiveHost]
    drift: tuple[Drift, ...]
    levels: tuple[LevelProbe, ...]
    failures: list[str]


def probe_all(
    console: Console,
    site: SiteConfig,
    plan: Plan,
    workspace: str,
    resources: Mapping[str, Mapping[str, Any]],
    applied: Mapping[str, str] | None,
    *,
    full: bool = False,
    keep_going: bool = False,
) -> Probed:
    """One listing of each host the plan's steps are on (a `--target-host` run probes only
    its hosts), its VMs' drift (`full`: and their configs'), and the nested levels below
    the plan's own host. A host that does not answer is a PlanError naming it, or with
    `keep_going` a line in `failures` (status names it and goes on)."""
    live: list[LiveHost] = []
    drift: list[Drift] = []
    levels: tuple[LevelProbe, ...] = ()
    failures: list[str] = []
    for host in plan_hosts(plan, steps_only=True):
        try:
            one, found, below = _probe(
                console, site, host, workspace, plan, resources, applied, full=full
            )
        except PlanError as exc:
            if not keep_going:
                raise
            failures.append(exc.summary)
            continue
        live.append(one)
        drift.extend(found)
        levels = levels + below
    return Probed(live, merged_drift(plan, drift), levels, failures)


def _probe(
    console: Console,
    site: SiteConfig,
    host: str,
    workspace: str,
    plan: Plan,
    resources: Mapping[str, Mapping[str, Any]],
    applied: Mapping[str, str] | None,
    *,
    full: bool,
) -> tuple[LiveHost, tuple[Drift, ...], tuple[LevelProbe, ...]]:
    """One host in one session: its listing, its VMs' drift (and configs' with `full`),
    and, on the plan's own host, the nested levels through their executors."""
    from pveplan.executor import ExecutorError, probe_configs, probe_live, probe_nested

    public = driver_key(console)[1]
    try:
        with open_run_store(console) as store:
            hosts = {host: host_info(console, site, host, public, store)}

            async def body(
                services: Any,
            ) -> tuple[LiveHost, tuple[Drift, ...], tuple[LevelProbe, ...]]:
                live = await probe_live(services, host)
                found = find_drift(plan, live, resources, applied)
                if full:
                    targets = config_targets(plan, live, resources)
                    configs, keys = await probe_configs(services, host, plan, targets)
                    config = find_config_drift(plan, configs, keys, applied)
                    found = merged_drift(plan, found, config)
                levels: tuple[LevelProbe, ...] = ()
                if host == plan.host and plan.subplans:
                    levels = await probe_nested(services, plan, resources)
                return live, found, levels

            return run_trio(console, store, workspace, hosts, site, body)
    except (ExecutorError, OSError) as exc:
        raise PlanError.at(
            None,
            f"cannot probe the live state of {host}: {exc}",
            "reach the host, or plan offline from the store alone with --refresh=false",
        ) from None
