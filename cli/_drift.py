"""Drift as an input of a plan: probe the host's live VMs, put what differs into the plan.

`plan` and `apply` without a plan file call `with_live_drift` after compiling: one listing
of the host's VMs (`executor.probe_live`) compared with what the store records as applied
(`planner.find_drift`), carried by the plan (`Plan.drift`, hashed), so a saved plan's
apply converges exactly the drift its reviewer saw. Nothing is probed with
`--refresh=false`, for a destroy, or when nothing is applied to the workspace (then there
is nothing to drift from, and a plan of a new lab never reaches for the host).

`--refresh=full` (plan, apply, status) adds, in the same session, one config read per VM
the store records as applied (`executor.probe_configs`), compared by
`planner.find_config_drift`: the NIC's bridge, onboot and the cloud-init user and keys,
which no listing carries.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import msgspec

from pveplan.planner import (
    PlanError,
    config_targets,
    find_config_drift,
    find_drift,
    merged_drift,
    with_drift,
)

from ._session import driver_key, host_info, open_run_store, run_trio
from ._state import applied_resources

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from pveplan.planner import Drift, LiveHost, Plan, PlanFile, SiteConfig

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
    if not resources:
        return plan_file
    steps = {s.address: s.hash for s in applied.steps} if applied is not None else None
    full = full_refresh(args)
    _, found = live_drift(console, site, plan_file.plan, workspace, resources, steps, full=full)
    plan = with_drift(plan_file.plan, found)
    if plan.hash == plan_file.plan.hash:
        return plan_file
    return msgspec.structs.replace(plan_file, plan=plan, hash=plan.hash)


def live_drift(
    console: Console,
    site: SiteConfig,
    plan: Plan,
    workspace: str,
    resources: Mapping[str, Mapping[str, Any]],
    applied: Mapping[str, str] | None,
    *,
    full: bool = False,
) -> tuple[LiveHost, tuple[Drift, ...]]:
    """The live VMs of `plan`'s host (one listing) and their drift against what is
    `applied`; `full` adds one config read per applied VM, in the same session, and its
    drift. An unreachable host is a PlanError that says how to plan without it."""
    from pveplan.executor import ExecutorError, probe_configs, probe_live

    host = plan.host
    public = driver_key(console)[1]
    try:
        with open_run_store(console) as store:
            hosts = {host: host_info(console, site, host, public, store)}

            async def body(services: Any) -> tuple[LiveHost, tuple[Drift, ...]]:
                live = await probe_live(services, host)
                found = find_drift(plan, live, resources, applied)
                if full:
                    targets = config_targets(plan, live, resources)
                    configs, keys = await probe_configs(services, host, plan, targets)
                    config = find_config_drift(plan, configs, keys, applied)
                    found = merged_drift(plan, found, config)
                return live, found

            return run_trio(console, store, workspace, hosts, site, body)
    except (ExecutorError, OSError) as exc:
        raise PlanError.at(
            None,
            f"cannot probe the live state of {host}: {exc}",
            "reach the host, or plan offline from the store alone with --refresh=false",
        ) from None
