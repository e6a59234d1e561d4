"""`pveplan output`: what the next tool needs about a workspace's nodes, from the store.

Reads the workspace's applied plan, its live resources and the step results recorded for
that plan, and prints every node's vmid, address, pinned host key, status and parent, as
a table, JSON, an Ansible inventory or an ssh_config include (with the known_hosts file
the last two point at). No host is contacted: these are the records of the last runs, so
run `plan` to see drift first when something may have changed by hand. The one thing
read besides the store is the simulator's daemon.json, for the port its VMs answer on.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pveplan.planner import PlanError, rehearsed_host

from ._fmt import write_atomic
from ._outputs import NodeOutput, collect_nodes
from ._outputs_render import (
    OutputError,
    reachable,
    render_ansible_inventory,
    render_json,
    render_known_hosts,
    render_ssh_config,
    render_table,
)

if TYPE_CHECKING:
    from pveplan.planner import Plan, SiteConfig
    from pveplan.store import Store

    from . import Console

FORMATS = ("table", "json", "ansible-inventory", "ssh-config")


def run_output(args: argparse.Namespace, console: Console) -> int:
    from pveplan.store import open_store

    from ._plan import make_plan
    from ._state import store_exists, store_location

    fmt = "json" if args.json else args.format
    planned = make_plan(args, console)
    workspace = planned.plan_file.header.workspace
    applied = planned.old
    where = store_location(console)
    if applied is None or not store_exists(where):
        raise PlanError.at(
            None,
            f"nothing is applied to {workspace}: the store has no nodes to report",
            "apply the manifest first (`pveplan apply ...`), then ask again",
        )
    with open_store(where) as store:
        nodes = collect_nodes(
            applied,
            {r.address: r.outputs for r in store.resources(workspace)},
            _applied_results(store, applied),
            port=_vm_port(console, planned.site, applied.host, store),
        )
    title = f"{applied.manifest} on {applied.host} (plan {applied.hash[:12]})"
    try:
        text = _render(args, fmt, nodes, workspace, applied, title, console)
    except OutputError as exc:
        raise PlanError.at(None, str(exc), "the store's records were not written out") from None
    _write(args.out, text, console)
    if fmt != "json":
        console.error(
            f"From the store's records of {workspace} (no host contacted; "
            "`pveplan plan` shows what changed since)."
        )
    return 0


def _render(
    args: argparse.Namespace,
    fmt: str,
    nodes: list[NodeOutput],
    workspace: str,
    applied: Plan,
    title: str,
    console: Console,
) -> str:
    if fmt == "json":
        about = {
            "workspace": workspace,
            "manifest": applied.manifest,
            "host": applied.host,
            "plan": applied.hash,
            "source": "store",
        }
        return render_json(nodes, about)
    if fmt == "table":
        return render_table(nodes)
    known_hosts = _known_hosts_path(args, console, workspace)
    identity = str((console.cwd / args.identity_file).resolve()) if args.identity_file else None
    skipped = reachable(nodes)[1]
    if skipped:
        names = ", ".join(n.name for n in skipped)
        console.error(
            f"warning: left out {len(skipped)} node(s) with no recorded address or host key "
            f"(or whose host has none): {names}"
        )
    render = render_ssh_config if fmt == "ssh-config" else render_ansible_inventory
    text = render(nodes, str(known_hosts), identity=identity, title=title)
    try:
        known_hosts.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(known_hosts, render_known_hosts(nodes))
    except OSError as exc:
        raise PlanError.at(None, f"cannot write {known_hosts}: {exc.strerror or exc}") from None
    console.error(f"Wrote the pinned host keys to {known_hosts}.")
    return text


def _known_hosts_path(args: argparse.Namespace, console: Console, workspace: str) -> Path:
    """`--known-hosts`, else FILE.known_hosts beside `-o FILE`, else one per workspace
    in the store's directory (stable, so an Include'd config keeps pointing at it)."""
    if args.known_hosts:
        return (console.cwd / args.known_hosts).resolve()
    if args.out:
        out = (console.cwd / args.out).resolve()
        return out.with_name(out.name + ".known_hosts")
    from ._state import store_location

    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in workspace)
    return store_location(console).local_dir / "known_hosts" / f"{safe}.known_hosts"


def _write(out: str | None, text: str, console: Console) -> None:
    if not out:
        console.out.write(text)
        return
    path = console.cwd / out
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise PlanError.at(None, f"cannot write {path}: {exc.strerror or exc}") from None
    console.error(f"Wrote {out}.")


def _applied_results(store: Store, plan: Plan) -> dict[str, dict[str, Any]]:
    """Address -> outputs of the newest successful result recorded for the step hash the
    plan applied (steps with none are left out)."""
    wanted = {s.address: s.hash for s in plan.steps}
    best: dict[str, Any] = {}
    for result in store.results_for(wanted).values():
        if result.status != "ok" or wanted.get(result.address) != result.step_hash:
            continue
        current = best.get(result.address)
        if current is None or result.finished > current.finished:
            best[result.address] = result
    return {address: dict(result.outputs) for address, result in best.items()}


def _vm_port(console: Console, site: SiteConfig, host: str, store: Store) -> int | None:
    """The SSH port the target host's VMs answer on: the node file's `vm_ssh_port`, or a
    simulated host's daemon port (None, with a warning, when the simulator is down)."""
    from pveplan.dsl import DiagnosticError

    name = rehearsed_host(host) or host
    try:
        config = site.host(name)
    except DiagnosticError:
        return None
    if not (config.sim or rehearsed_host(host)):
        return config.vm_ssh_port
    from pveplan.sim import SimRoot, daemon_info

    from ._session import sim_root

    info = daemon_info(SimRoot(sim_root(console, store.local_dir)))
    if info is None:
        console.error(
            "warning: the simulator is not running, so its VMs' SSH port is unknown "
            "(start it with `pveplan sim up`)"
        )
        return None
    return int(info["port"])
