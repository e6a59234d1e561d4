"""`pveplan preflight -M NAME -H HOST`: before an apply, check the host and the access.

Plans the manifest as `apply` would (nothing is asked, nothing changes), then calls the
executor's `preflight` for the plan's host: over the API, reachability, the certificate
(pinned or CA), the token, and each privilege the plan's steps need (named with its path
and the step); over SSH, SSH with the pinned key and `pvesh`. Exit 0 when everything is
there, 1 when anything is missing (each named).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

import msgspec

from ._plan import make_plan
from ._session import driver_key, host_info, open_run_store, plan_hosts, run_trio

if TYPE_CHECKING:
    from pveplan.executor import PreflightReport
    from pveplan.planner import Plan, PlanFile, SiteConfig

    from . import Console


def run_preflight(args: argparse.Namespace, console: Console) -> int:
    plan_file, old, site = make_plan(args, console)
    ok = True
    # Each host the plan's nodes are on (`host:`), in turn: the plan seen from that host
    # (its `host`), so each is checked for the steps it runs, with its own access.
    for host in plan_hosts(plan_file.plan, old):
        view = plan_file
        if host != plan_file.plan.host:
            seen = msgspec.structs.replace(plan_file.plan, host=host)
            view = msgspec.structs.replace(plan_file, plan=seen)
        report = host_report(console, view, _as_host(old, host), site)
        render(console, plan_file.plan.manifest, report)
        ok = ok and report.ok
    return 0 if ok else 1


def _as_host(plan: Plan | None, host: str) -> Plan | None:
    """`plan` as seen from `host` (preflight checks the steps that run on its plan's host)."""
    return msgspec.structs.replace(plan, host=host) if plan is not None else None


def host_report(
    console: Console,
    plan_file: PlanFile,
    old: Plan | None,
    site: SiteConfig,
    *,
    nested: bool = False,
) -> PreflightReport:
    """The executor's preflight of `plan_file`'s host (and, with `nested`, its nested
    virtualization); shared with the homestak verbs' readiness checks (`_readiness`)."""
    from pveplan.executor import preflight

    plan = plan_file.plan
    with open_run_store(console) as store:
        public = driver_key(console)[1]
        hosts = {plan.host: host_info(console, site, plan.host, public, store)}

        async def body(services: Any) -> PreflightReport:
            return await preflight(services, plan, applied=old, nested=nested)

        return run_trio(console, store, plan_file.header.workspace, hosts, site, body)


def render(console: Console, manifest: str, report: PreflightReport) -> None:
    style = console.style
    via = "its HTTPS API" if report.transport == "api" else "pvesh over SSH"
    console.print(f"pveplan preflight: {manifest} on {report.host}, through {via}")
    for check in report.checks:
        mark = style.green("ok  ") if check.ok else style.red("FAIL")
        console.print(f"  {mark} {check.name}: {check.detail}")
    for need in report.missing:
        console.print(f"       missing {need.text()}  (for {need.why})")
    if report.missing:
        console.print(
            '  grant them to the token (docs/transports.md, "Least privilege": the role'
            " PVEPlan and `pveum acl modify`), then run preflight again"
        )
    console.print(
        style.green("ready") if report.ok else style.red("not ready: see FAIL and missing above")
    )
