"""Drift as an input of a plan: probe the host's live VMs, put what differs into the plan.

`plan` and `apply` without a plan file call `with_live_drift` after compiling: one listing
of the host's VMs (`executor.probe_live`) compared with what the store records as applied
(`planner.find_drift`), carried by the plan (`Plan.drift`, hashed), so a saved plan's
apply converges exactly the drift its reviewer saw. Nothing is probed with
`--refresh=false`, for a destroy, or when nothing is applied to the workspace (then there
is nothing to drift from, and a plan of a new lab never reaches for the host).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import msgspec

from pveplan.planner import PlanError, find_drift, with_drift

from ._session import driver_key, host_info, open_run_store, plan_hosts, run_trio
from ._state import applied_resources

if TYPE_CHECKING:
    from pveplan.planner import LiveHost, Plan, PlanFile, SiteConfig

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
    live = [  # one listing per host the plan's nodes are on
        probe_host(console, site, host, workspace)
        for host in plan_hosts(plan_file.plan, steps_only=True)
    ]
    steps = {s.address: s.hash for s in applied.steps} if applied is not None else None
    plan = with_drift(plan_file.plan, find_drift(plan_file.plan, live, resources, steps))
    if plan.hash == plan_file.plan.hash:
        return plan_file
    return msgspec.structs.replace(plan_file, plan=plan, hash=plan.hash)


def probe_host(console: Console, site: SiteConfig, host: str, workspace: str) -> LiveHost:
    """The live VMs of `host` (one listing); an unreachable host is a PlanError that
    says how to plan without it."""
    from pveplan.executor import ExecutorError, probe_live

    public = driver_key(console)[1]
    try:
        with open_run_store(console) as store:
            hosts = {host: host_info(console, site, host, public, store)}

            async def body(services: object) -> LiveHost:
                return await probe_live(services, host)  # type: ignore[arg-type]

            return run_trio(console, store, workspace, hosts, site, body)
    except (ExecutorError, OSError) as exc:
        raise PlanError.at(
            None,
            f"cannot probe the live state of {host}: {exc}",
            "reach the host, or plan offline from the store alone with --refresh=false",
        ) from None
