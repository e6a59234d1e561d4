"""`pveplan import -M X -H HOST NODE=VMID ... | --discover`: adopt existing VMs into the store.

VMs made outside pveplan (`qm create`, another tool, a store that was lost) become the
manifest's nodes without being made again. The command parses the pairs, compiles the
plan, then in one session with the host: one listing (the VMs; `--discover` proposes
pairs from it), the rules of `executor.match_claims`, and for each VM its config and,
through the guest agent, its SSH host key and address (`executor.establish`). Any pair
refused refuses the whole import (exit 1, nothing recorded): a half-imported lab is
worse than none. Otherwise it shows each VM, the drift the next apply will converge (in
plan's form), and records what it established (`executor.record_import`) under the
workspace's lock, as apply takes it. `--dry-run` shows the same and records nothing.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pveplan.planner import PlanError

if TYPE_CHECKING:
    from pveplan.executor import Adopted, Claim, ImportRefusal
    from pveplan.planner import Plan, SiteConfig

    from . import Console

WHY = {
    "given": "named",
    "tag": "by its pveplan tag",
    "name+vmid": "by name and pinned vmid",
    "name+range": "by name, in --vmid-range",
}


MANIFEST_SUFFIXES = (".pvp", ".yaml", ".yml")


def split_words(words: list[str]) -> tuple[list[str], list[str]]:
    """The positional words as (manifest files, NODE=VMID pairs): a word ending like a
    manifest file or holding a `/` is a file; every other word must be a pair."""
    files = [w for w in words if w.endswith(MANIFEST_SUFFIXES) or "/" in w]
    return files, [w for w in words if w not in files]


class ImportUsage(ValueError):
    """A command line import cannot act on: the message says what to write instead."""


def parse_import_args(
    pairs: list[str], *, discover: bool, vmid_range: str | None
) -> tuple[tuple[Claim, ...], tuple[int, int] | None]:
    """The NODE=VMID pairs and the range; ImportUsage naming the fault and the fix."""
    from pveplan.executor import parse_claim, parse_vmid_range

    try:
        claims = tuple(parse_claim(text) for text in pairs)
        span = parse_vmid_range(vmid_range) if vmid_range is not None else None
    except ValueError as exc:
        raise ImportUsage(str(exc)) from None
    if span is not None and not discover:
        raise ImportUsage("--vmid-range narrows --discover: add --discover, or name NODE=VMID")
    if not claims and not discover:
        raise ImportUsage(
            "nothing to import: name each VM as NODE=VMID (e.g. db=120), or let --discover "
            "find them by the manifest's tag, node names and --vmid-range"
        )
    return claims, span


class Outcome:
    """What the session with the host found (read inside it, shown and recorded after)."""

    def __init__(self) -> None:
        self.vms: list[dict[str, Any]] = []
        self.adopted: tuple[Adopted, ...] = ()
        self.refused: tuple[ImportRefusal, ...] = ()
        self.host_steps: dict[str, dict[str, Any]] = {}


def run_import(args: argparse.Namespace, console: Console) -> int:
    from pveplan.executor import record_import, recorded_nodes

    from ._plan import make_plan

    args.files, pairs = split_words(list(args.words))
    try:
        claims, span = parse_import_args(pairs, discover=args.discover, vmid_range=args.vmid_range)
    except ImportUsage as exc:
        console.error(f"error: {exc}")
        return 1
    plan_file, _, site = make_plan(args, console)
    plan = plan_file.plan
    if plan.action != "apply":
        raise PlanError.at(None, "import adopts VMs into a manifest to apply, not a destroy")
    workspace = plan_file.header.workspace
    style = console.style
    console.print(style.bold(f"pveplan import: {plan.manifest} on {plan.host} ({workspace})"))
    with _session_store(console, site, workspace, plan.hash, args) as (store, run_console):
        recorded = recorded_nodes(None, {r.address: r.outputs for r in store.resources(workspace)})
        found = _probe(run_console, site, store, plan, workspace, claims, span, recorded, args)
        _show(console, plan, found)
        if found.refused:
            for item in found.refused:
                pair = f"{item.node}={item.vmid}" if item.vmid is not None else item.node
                console.error(f"error: {pair}: {item.reason}")
            console.error("Nothing was imported: fix the above, or leave those VMs out.")
            return 1
        if not found.adopted:
            console.print("No VM to import: --discover found none (see its rules in --help).")
            return 0
        if args.dry_run:
            console.print(f"Would import {len(found.adopted)} VM(s) (--dry-run: nothing recorded).")
            return 0
        done = record_import(store, workspace, plan, found.adopted, found.host_steps)
    rest = [s.address for s in plan.steps if s.address not in set(done)]
    console.print(f"Imported {len(found.adopted)} VM(s) into {workspace}.")
    console.print(f"Recorded as done ({len(done)}): {', '.join(done)}.")
    if rest:
        console.print(
            f"Not established by import, so the next apply runs them ({len(rest)}): "
            f"{', '.join(rest)}."
        )
    console.print("`pveplan plan` shows what the next apply does, drift included.")
    return 0


@contextlib.contextmanager
def _session_store(
    console: Console, site: SiteConfig, workspace: str, plan_hash: str, args: argparse.Namespace
) -> Iterator[Any]:
    """The store under the workspace's lock, as apply holds it (import writes it); for
    `--dry-run`, the store only read (none is created)."""
    from ._leftovers import _read_store
    from ._session import open_run_store
    from ._state import lock_timeout

    if args.dry_run:
        with _read_store(console) as found:
            yield found
        return
    wait = lock_timeout(site, args.lock_timeout)
    with (
        open_run_store(console) as store,
        store.lock_workspace(workspace, plan=plan_hash, wait=wait),
    ):
        yield store, console


def _probe(
    console: Console,
    site: SiteConfig,
    store: Any,
    plan: Plan,
    workspace: str,
    claims: tuple[Claim, ...],
    span: tuple[int, int] | None,
    recorded: dict[str, int | None],
    args: argparse.Namespace,
) -> Outcome:
    """One session with the host: the listing, the rules, then what each VM establishes."""
    from pveplan.executor import (
        ExecutorError,
        discover_claims,
        establish,
        establish_host_steps,
        match_claims,
        wanted_nodes,
    )
    from pveplan.planner import node_names

    from ._session import driver_key, host_info, run_trio

    wanted = wanted_nodes(plan)
    outcome = Outcome()
    if site.host(plan.host).sim and not _sim_ran(console, store):
        vms: list[dict[str, Any]] = []  # never started here: no VM, and not started to say so
        proposed, ambiguous = (
            discover_claims(wanted, vms, plan.manifest, recorded=recorded, vmid_range=span)
            if args.discover
            else ((), ())
        )
        matched = match_claims(
            wanted,
            (*claims, *proposed),
            vms,
            plan.manifest,
            host=plan.host,
            nodes=node_names(plan),
            recorded=recorded,
        )
        outcome.refused = (*ambiguous, *matched.refused)
        return outcome
    public = driver_key(console)[1]
    hosts = {plan.host: host_info(console, site, plan.host, public, store)}

    async def body(services: Any) -> Outcome:
        pve = await services.pve(plan.host)
        vms = [vm for vm in await pve.vms() if vm.get("node") in (None, pve.node)]
        outcome.vms = vms
        proposed, ambiguous = ((), ())
        if args.discover:
            proposed, ambiguous = discover_claims(
                wanted, vms, plan.manifest, recorded=recorded, vmid_range=span
            )
        given = {c.node for c in claims}
        extra = tuple(c for c in proposed if c.node not in given)
        matched = match_claims(
            wanted,
            (*claims, *extra),
            vms,
            plan.manifest,
            host=plan.host,
            nodes=node_names(plan),
            recorded=recorded,
        )
        adopted, unreadable = await establish(services, plan, matched.adopt)
        outcome.adopted = adopted
        outcome.refused = (*ambiguous, *matched.refused, *unreadable)
        if adopted and not outcome.refused:
            outcome.host_steps = await establish_host_steps(services, plan, adopted, lambda e: None)
        return outcome

    try:
        return run_trio(console, store, workspace, hosts, site, body)
    except ExecutorError as exc:
        raise PlanError.at(
            None,
            f"cannot read the VMs on {plan.host}: {exc}",
            f"check that the host is reachable (`pveplan preflight -M {plan.manifest} "
            f"-H {plan.host}`)",
        ) from None


def _sim_ran(console: Console, store: Any) -> bool:
    """Whether the simulator of this store has ever run (so it may hold VMs)."""
    from pveplan.sim import SimRoot

    from ._session import sim_root

    return SimRoot(sim_root(console, store.local_dir)).state.exists()


def _show(console: Console, plan: Plan, found: Outcome) -> None:
    """Each VM to adopt (how it was found, its key, its address), then the drift."""
    from pveplan.executor import live_vm
    from pveplan.planner import LiveHost, drift_line, find_drift

    from ._outputs import key_fingerprint

    if not found.adopted:
        return
    console.print(f"Found on {plan.host}:")
    for item in found.adopted:
        key = key_fingerprint(str(item.outputs.get("host_key", ""))) or "-"
        state = "running" if item.running else "stopped"
        console.print(
            f"  {item.node} = VM {item.vmid}  ({WHY.get(item.found_by, item.found_by)}; "
            f"{state}; host key {key}; address {item.ip or '-'})"
        )
    live = LiveHost(host=plan.host, vms=tuple(live_vm(vm) for vm in found.vms))
    resources = {a.address: {"vm_id": a.vmid} for a in found.adopted}
    drift = find_drift(plan, live, resources)
    if drift:
        console.print("Drift the next apply converges:")
        for item in drift:
            console.print(f"  {drift_line(item)}")
    else:
        console.print("Each matches the manifest in every field the probe compares.")
