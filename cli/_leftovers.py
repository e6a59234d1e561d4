"""`destroy` beyond the store's records, and `destroy --dry-run`.

A destroy removes what the store recorded, then what is left of the manifest on the host:
VMs tagged `pveplan-<manifest>`, and VMs at a node's pinned vmid that carry the node's name
(the executor's `_leftovers` has the rules and why a VM of another name is never taken).
`--discover` skips the recorded plan (a nested host is not asked to destroy its subtree:
it goes with its host's VM); the recorded resources are destroyed all the same. The search
is one listing of the host, made after the recorded destroy (for `--dry-run`, instead of it).

`--dry-run` makes that one listing and changes nothing: it prints each VM that would be
destroyed with its vmid, name and why it was found, the recorded plan's diff, and the VMs
left alone; `--json-output` lists every node as homestak's dry run does (`pending`), with
`found_by`. A simulated host whose simulator never ran here has no VMs: it is not started.

homestak's iac-driver destroys only what its per-VM tofu state files record (no state
file: "nothing to destroy", and the node is reported destroyed while the VM keeps
running); the name+vmid and tag search is pveplan's own, hence the hint to the compat doc.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pveplan.planner import Plan, PlanError

if TYPE_CHECKING:
    from pveplan.executor import Leftovers, NodeFinding, Services, Wanted
    from pveplan.planner import SiteConfig
    from pveplan.store import Store

    from . import Console
    from ._homestak_report import NodeResult

HINT = (
    "hint: homestak's iac-driver destroys only what its state files record; pveplan also "
    "finds unrecorded VMs by their pveplan tag and by name+vmid "
    "(see docs/homestak-compat.md#destroy)"
)
WHY = {
    "record": "recorded in the store",
    "tag": "by its pveplan tag",
    "name+vmid": "by name and vmid",
    "parent": "inside its parent",
}


class Search:
    """What a destroy looks for on its host: the manifest's VM nodes, minus the recorded."""

    def __init__(self, plan: Plan, destroy: Plan | None, resources: dict[str, Any]) -> None:
        """`destroy`: the recorded destroy plan the run executes (None or empty with
        `--discover`); `resources`: the workspace's recorded resources, which every destroy
        removes whatever its plan (`run_workspace`)."""
        from pveplan.executor import recorded_nodes, wanted_nodes

        self.host = plan.host
        self.manifest = plan.manifest
        self.wanted: list[Wanted] = wanted_nodes(plan)
        self.recorded = recorded_nodes(destroy, resources)
        # Each host the manifest's nodes are on (`host:`), the target host first: each is
        # searched with one listing, for its own nodes only (a node is never looked for
        # by name and vmid on a host it was not placed on).
        self.placed = {w.name: _on(plan, w) for w in self.wanted}
        self.hosts = tuple(dict.fromkeys([plan.host, *sorted(set(self.placed.values()))]))

    def wanted_on(self, host: str) -> list[Wanted]:
        return [w for w in self.wanted if self.placed[w.name] == host]


def _on(plan: Plan, wanted: Wanted) -> str:
    """The top-level host a wanted node is on (a nested one: its outermost host's)."""
    root = wanted.path[0] if wanted.path else wanted.name
    try:
        return plan.step(f"node.{root}.create").host
    except KeyError:
        return plan.host


class Swept:
    """What the search found and did after a destroy's recorded steps."""

    def __init__(self, search: Search, leftovers: Leftovers, failed: dict[int, str]) -> None:
        from pveplan.executor import node_findings

        self.leftovers = leftovers
        self.failed = failed
        self.findings: list[NodeFinding] = node_findings(
            search.wanted, search.recorded, leftovers, done="destroyed", failed=failed
        )

    @property
    def errors(self) -> list[str]:
        return list(self.failed.values())

    @property
    def destroyed(self) -> list[Any]:
        return [f for f in self.leftovers.found if f.vmid not in self.failed]


def after_destroy(search: Search) -> Any:
    """An `execute_run` hook: one listing of the host, then destroy what it selected."""

    async def after(services: Services, report: Any) -> Swept:
        from pveplan.executor import Leftovers, destroy_leftovers, find_leftovers

        found: list[Any] = []
        refused: list[Any] = []
        failed: dict[int, str] = {}
        for host in search.hosts:  # one listing per host
            on = await find_leftovers(
                services, host, search.wanted_on(host), search.manifest, search.recorded
            )
            failed.update(await destroy_leftovers(services, host, on.found, lambda e: None))
            found += on.found
            refused += on.refused
        return Swept(search, Leftovers(found=tuple(found), refused=tuple(refused)), failed)

    return after


def warn_refused(console: Console, leftovers: Leftovers) -> None:
    for refused in leftovers.refused:
        console.error(f"warning: left alone: {refused.reason}")


def print_swept(console: Console, swept: Swept, host: str) -> None:
    """The VMs destroyed without a record, each with why it was taken, then the hint."""
    done = swept.destroyed
    if done:
        console.print(f"Also destroyed {len(done)} VM(s) on {host} that the store did not record:")
        for hit in done:
            console.print(f"  {hit.vmid} {hit.vm_name}: found {WHY[hit.found_by]}")
    if done or swept.leftovers.refused:
        console.error(HINT)


def with_findings(nodes: Sequence[NodeResult], findings: Sequence[NodeFinding]) -> list[NodeResult]:
    """The destroy report's nodes with what the search found of each: how (`found_by`),
    its vmid when the store had none, and a node whose vmid holds a VM of another name
    left `pending` (never tried) with the reason as its error."""
    import msgspec

    by_name = {finding.name: finding for finding in findings}
    out = []
    for node in nodes:
        finding = by_name.get(node.name)
        if finding is None:
            out.append(msgspec.structs.replace(node, found_by="record"))
            continue
        changes: dict[str, Any] = {"found_by": finding.found_by}
        if node.vm_id is None and finding.vmid is not None:
            changes["vm_id"] = finding.vmid
        if finding.status == "left alone":
            changes.update(status="pending", error=finding.note)
        elif finding.status == "failed":
            changes.update(status="failed", error=finding.note or node.error)
        out.append(msgspec.structs.replace(node, **changes))
    return out


# --- destroy --dry-run ----------------------------------------------------------------


def run_destroy_dry_run(args: argparse.Namespace, console: Console) -> int:
    """`destroy --dry-run`: what would be destroyed, from the records and one listing."""
    from pveplan.executor import node_findings
    from pveplan.planner import plan_changes, render_changes, summarize

    from ._plan import make_plan, rehearsal_note, workspace_destroy
    from ._state import applied_resources

    started = time.time()
    plan_file, old, site = make_plan(args, console)
    destroy = workspace_destroy(plan_file, old, console)
    discover = bool(getattr(args, "discover", False))
    resources = applied_resources(console, destroy.header.workspace)
    search = Search(plan_file.plan, None if old is None or discover else destroy.plan, resources)
    leftovers, note = list_leftovers(console, site, search, destroy.header.workspace)
    findings = node_findings(search.wanted, search.recorded, leftovers)
    changes = plan_changes(destroy.plan, old, destroy.header.sources)
    if args.json_output:
        from ._homestak_report import create_order, manifest_order

        rank = {name: i for i, name in enumerate(create_order(manifest_order(args, console) or []))}
        findings = sorted(findings, key=lambda f: rank.get(f.name, len(rank)))
        nodes = [
            {
                "name": f.name,
                "status": "pending",
                "vm_id": f.vmid,
                "ip": None,
                "duration": 0.0,
                "error": None,
                "found_by": f.found_by,
                "would_destroy": f.status == "would destroy",
                **({"note": f.note} if f.note else {}),
            }
            for f in findings
        ]
        report = {
            "verb": "destroy",
            "dry_run": True,
            "success": True,
            "duration_seconds": round(time.time() - started, 3),
            "workspace": destroy.header.workspace,
            "nodes": nodes,
            "context": {},
            "error": None,
            "changes": [c.address for c in changes if c.action != "unchanged"],
        }
        if note:
            report["note"] = note
        console.print(json.dumps(report, indent=2, sort_keys=True))
        warn_refused(console, leftovers)
        return 0
    console.print(
        console.style.bold(f"destroy --dry-run: {plan_file.plan.manifest} on {plan_file.plan.host}")
    )
    rehearsal_note(plan_file.plan.host, console)
    summary = summarize(changes)
    if summary.changes:
        console.print(f"Recorded in the store for {destroy.header.workspace}:")
        console.print(render_changes(changes, summary, console.style))
    else:
        console.print(f"The store records nothing applied to {destroy.header.workspace}.")
    console.print()
    console.print(render_findings(findings, ", ".join(search.hosts), note))
    warn_refused(console, leftovers)
    if any(f.found_by not in (None, "record") for f in findings) or leftovers.refused:
        console.error(HINT)
    return 0


def render_findings(findings: Sequence[NodeFinding], host: str, note: str = "") -> str:
    """One line per node: what would become of it, and why."""
    doomed = [f for f in findings if f.status == "would destroy"]
    lines = [f"Would destroy {len(doomed)} VM(s) on {host} (nothing is changed by --dry-run):"]
    for f in findings:
        where = " › ".join((*f.path, f.name))
        vmid = f.vmid if f.vmid is not None else "-"
        if f.status == "would destroy":
            why = WHY[f.found_by] if f.found_by else ""
            extra = f" ({f.note})" if f.note else ""
            lines.append(f"  - {vmid} {where}: found {why}{extra}")
        elif f.status == "left alone":
            lines.append(f"  ! {vmid} {where}: left alone: {f.note}")
        else:
            lines.append(f"    {vmid} {where}: not on {host}")
    if note:
        lines.append(f"({note})")
    return "\n".join(lines)


def list_leftovers(
    console: Console, site: SiteConfig, search: Search, workspace: str
) -> tuple[Leftovers, str]:
    """One listing of each host the manifest's nodes are on, matched; (nothing, why) for
    simulated hosts whose simulator never ran here, which is not started just to show it
    has no VMs."""
    from pveplan.executor import ExecutorError, Leftovers, find_leftovers

    from ._session import driver_key, hosts_info, run_trio, sim_root
    from ._state import store_location

    location = store_location(console)
    if all(site.host(host).sim for host in search.hosts):
        from pveplan.sim import SimRoot

        if not SimRoot(sim_root(console, location.local_dir)).state.exists():
            named = ", ".join(search.hosts)
            return Leftovers(), f"the simulator has never run here, so {named} has no VMs"
    with _read_store(console) as (store, run_console):
        public = driver_key(run_console)[1]
        hosts = hosts_info(run_console, site, search.hosts, public, store)

        async def body(services: Services) -> Leftovers:
            found: list[Any] = []
            refused: list[Any] = []
            for host in search.hosts:
                on = await find_leftovers(
                    services, host, search.wanted_on(host), search.manifest, search.recorded
                )
                found += on.found
                refused += on.refused
            return Leftovers(found=tuple(found), refused=tuple(refused))

        try:
            return run_trio(run_console, store, workspace, hosts, site, body), ""
        except ExecutorError as exc:
            raise PlanError.at(
                None,
                f"cannot list the VMs on {', '.join(search.hosts)}: {exc}",
                "check that the host is reachable (`pveplan preflight -M NAME -H HOST`)",
            ) from None


@contextlib.contextmanager
def _read_store(console: Console) -> Iterator[tuple[Store, Console]]:
    """The store, for a session that only reads: the real one when it exists, else a
    throwaway one (a dry run creates no store), with the simulator's directory kept where
    the real store would have it."""
    from pveplan.store import open_store

    from ._session import open_run_store, sim_root
    from ._state import store_exists, store_location

    location = store_location(console)
    if store_exists(location):
        with open_run_store(console) as store:
            yield store, console
        return
    env = {**console.env, "PVEPLAN_SIM_DIR": str(sim_root(console, location.local_dir))}
    with (
        tempfile.TemporaryDirectory(prefix="pveplan-dry-run-") as tmp,
        open_store(Path(tmp)) as store,
    ):
        yield store, dataclasses.replace(console, env=env)
