"""iac-driver's flags on homestak's verbs `create`, `destroy` and `test`.

iac-driver users type `--skip-preflight`, `--preflight`, `--self-addr ADDR`, `--depth N`,
`--timeout SECONDS`, `--skip PHASE`, `--list-phases`, `--vm-id NAME=VMID` and
`--context-file FILE`; each one here does what iac-driver's does, or says how and why it
differs with a hint naming docs/homestak-compat.md#flags. This module declares them
(`add_homestak_flags`), checks their values before anything runs (usage errors: exit 1),
and wraps the verbs' runs (`run_create`, `run_destroy`, `run_test`, the commands' entry
points): phases, readiness checks, the run's deadline, the context file. The runs
themselves are `_apply`'s.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import ipaddress
import json
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec

if TYPE_CHECKING:
    from pveplan.dsl import LoadedManifest
    from pveplan.planner import SiteConfig

    from . import Console

HINT = "(see docs/homestak-compat.md#flags)"
VMID_MIN, VMID_MAX = 100, 999_999_999
"""PVE's range of VM IDs (the manifest schema's `vmid` too)."""
DEFAULT_SERVER_PORT = 44443


class Phase(NamedTuple):
    """One phase of a verb, named as iac-driver's reports name it."""

    name: str
    what: str
    skippable: bool
    why_not: str = ""


PHASES: dict[str, tuple[Phase, ...]] = {
    "create": (
        Phase("preflight", "check the site config and the host (--skip-preflight)", True),
        Phase("create", "provision the manifest's nodes", False, "it is the whole run"),
    ),
    "destroy": (
        Phase("preflight", "check the site config and the host (--skip-preflight)", True),
        Phase("destroy", "destroy the manifest's nodes", False, "it is the whole run"),
    ),
    "test": (
        Phase("preflight", "check the site config and the host (--skip-preflight)", True),
        Phase(
            "create",
            "provision the manifest's nodes",
            False,
            "verify and destroy need the nodes it makes",
        ),
        Phase("verify", "SSH to every node with its pinned host key", True),
        Phase("destroy", "destroy the nodes (kept when skipped)", True),
    ),
}
"""iac-driver's `manifest test` reports phases create, verify, destroy; pveplan adds its
preflight in front (iac-driver runs it outside the phases)."""


class FlagError(Exception):
    """A flag's value is wrong: exit 1 with this message (and its hint)."""


def add_homestak_flags(cmd: argparse.ArgumentParser, verb: str) -> None:
    """The iac-driver flags of `verb` (create, destroy or test)."""
    cmd.add_argument(
        "--skip-preflight",
        action="store_true",
        help="do not check the site config and the host before the run",
    )
    cmd.add_argument(
        "--preflight",
        action="store_true",
        help="only run the checks (site config, node file, host, credentials): exit 0 or 1",
    )
    cmd.add_argument(
        "--self-addr",
        metavar="ADDR",
        help="the address pull nodes reach this machine's spec server at "
        "(else $HOMESTAK_SELF_ADDR, else site.yaml's server_url)",
    )
    cmd.add_argument(
        "--depth",
        type=int,
        metavar="N",
        help="only the manifest's first N nodes, as iac-driver takes them (N <= 0: all)",
    )
    cmd.add_argument(
        "-t",
        "--timeout",
        type=_positive_seconds,
        metavar="SECONDS",
        help="the run's deadline: stop there (finished steps stay recorded), exit 1",
    )
    cmd.add_argument(
        "-s",
        "--skip",
        action="append",
        default=[],
        metavar="PHASE",
        help="skip a phase (repeatable; --list-phases shows which can be skipped)",
    )
    cmd.add_argument("--list-phases", action="store_true", help="list this verb's phases and exit")
    cmd.add_argument(
        "--vm-id",
        action="append",
        default=[],
        metavar="NAME=VMID",
        help="use VMID for node NAME (repeatable): --vm-id test=99990",
    )
    cmd.add_argument(
        "-C",
        "--context-file",
        metavar="FILE",
        help="a JSON object read before the run (if the file exists) and written after it, "
        "with NODE_vm_id and NODE_ip of every node",
    )
    cmd.add_argument("--report-verb", help=argparse.SUPPRESS)  # `manifest apply` says "apply"


def _positive_seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("give a number of seconds above 0")
    return value


# ---- values ---------------------------------------------------------------------------


def parse_vm_ids(values: Iterable[str]) -> dict[str, int]:
    """`NAME=VMID` pairs as iac-driver checks them (a name, an integer), and in PVE's range."""
    found: dict[str, int] = {}
    for value in values:
        name, eq, number = value.partition("=")
        if not eq:
            raise FlagError(f"invalid --vm-id {value!r}: expected NAME=VMID (e.g. test=99990)")
        if not name:
            raise FlagError(f"invalid --vm-id {value!r}: the node name is empty")
        try:
            vmid = int(number)
        except ValueError:
            raise FlagError(f"invalid --vm-id {value!r}: VMID must be an integer") from None
        if not VMID_MIN <= vmid <= VMID_MAX:
            raise FlagError(
                f"invalid --vm-id {value!r}: PVE's VM IDs are {VMID_MIN} to {VMID_MAX} {HINT}"
            )
        if name in found and found[name] != vmid:
            raise FlagError(f"--vm-id gives node {name!r} two VM IDs: {found[name]} and {vmid}")
        found[name] = vmid
    return found


def check_skips(verb: str, skips: Iterable[str]) -> frozenset[str]:
    """The phases to skip, each a phase of `verb` that can be skipped."""
    phases = {p.name: p for p in PHASES[verb]}
    chosen = set(skips)
    for name in sorted(chosen):
        phase = phases.get(name)
        if phase is None:
            raise FlagError(
                f"--skip {name}: `{verb}` has no phase {name!r}; its phases: "
                f"{', '.join(phases)} (iac-driver ignored an unknown phase) {HINT}"
            )
        if not phase.skippable:
            raise FlagError(f"--skip {name}: `{verb}` cannot skip {name} ({phase.why_not}) {HINT}")
    return frozenset(chosen)


def self_addr(args: argparse.Namespace, env: Mapping[str, str]) -> str | None:
    """--self-addr, else $HOMESTAK_SELF_ADDR (iac-driver's order); a loopback is refused."""
    addr = getattr(args, "self_addr", None) or env.get("HOMESTAK_SELF_ADDR", "").strip() or None
    if addr is None:
        return None
    source = "--self-addr" if getattr(args, "self_addr", None) else "HOMESTAK_SELF_ADDR"
    loopback = addr == "localhost"
    with contextlib.suppress(ValueError):  # a name, not an address
        loopback = loopback or ipaddress.ip_address(addr).is_loopback
    if loopback or not addr or any(c in addr for c in "/ @?#"):
        raise FlagError(
            f"{source} {addr!r} is not a routable address of this machine: pull nodes "
            "could not reach the spec server there; give an address the VMs can reach"
        )
    return addr


def check_flags(args: argparse.Namespace, console: Console) -> None:
    """Every iac-driver flag's value, before anything is read or run."""
    args.vm_ids = parse_vm_ids(getattr(args, "vm_id", None) or ())
    args.skips = check_skips(args.command, getattr(args, "skip", None) or ())
    if getattr(args, "depth", None) is not None and args.depth > 0 and args.command == "destroy":
        raise FlagError(
            "destroy --depth: pveplan destroys a workspace whole (what its store records); "
            f"to remove the nodes past the first N, run `create --depth N` {HINT}"
        )
    self_addr(args, console.env)


# ---- the manifest and the site, as the flags change them --------------------------------


def adjust_manifest(loaded: LoadedManifest, args: argparse.Namespace) -> LoadedManifest:
    """The manifest as --depth and --vm-id change it (the planner sees only the result).

    --depth N keeps the first N nodes in manifest order, as iac-driver's `load_manifest`
    does (N <= 0 or N >= the count: all). --vm-id NAME=VMID sets a node's vmid; a name
    that is no node of the (cut) manifest is an error, not silently ignored."""
    manifest = loaded.manifest
    nodes = manifest.nodes
    depth = getattr(args, "depth", None)
    if depth is not None and 0 < depth < len(nodes):
        nodes = nodes[:depth]
        args.depth_note = (
            f"note: --depth {depth}: the first {depth} of {len(manifest.nodes)} nodes, in the "
            f"same workspace as the whole manifest (iac-driver named it {manifest.name}[:{depth}]) "
            f"{HINT}"
        )
    vm_ids: dict[str, int] = getattr(args, "vm_ids", None) or parse_vm_ids(
        getattr(args, "vm_id", None) or ()
    )
    names = {node.name for node in nodes}
    unknown = sorted(set(vm_ids) - names)
    if unknown:
        from pveplan.planner import PlanError

        raise PlanError.at(
            None,
            f"--vm-id names no node of manifest {manifest.name!r}: {', '.join(unknown)}",
            "its nodes: " + ", ".join(sorted(names)) + f" {HINT}",
        )
    if vm_ids:
        nodes = tuple(
            msgspec.structs.replace(n, vmid=vm_ids[n.name]) if n.name in vm_ids else n
            for n in nodes
        )
    if nodes is manifest.nodes:
        return loaded
    return msgspec.structs.replace(loaded, manifest=msgspec.structs.replace(manifest, nodes=nodes))


def adjust_site(site: SiteConfig, args: argparse.Namespace, env: Mapping[str, str]) -> None:
    """--self-addr: pull nodes reach the spec server at https://ADDR:PORT (the port of
    site.yaml's server_url, else 44443), and the run's spec server listens there."""
    from urllib.parse import urlsplit

    addr = self_addr(args, env)
    if addr is None:
        return
    defaults = site.site.defaults
    port = urlsplit(defaults.server_url).port if defaults.server_url else None
    host = f"[{addr}]" if ":" in addr else addr
    url = f"https://{host}:{port or DEFAULT_SERVER_PORT}"
    if defaults.server_url and urlsplit(defaults.server_url).hostname != addr:
        args.self_addr_note = (
            f"note: pull nodes reach the spec server at {url}, not site.yaml's "
            f"{defaults.server_url} (iac-driver used the address only for a loopback server) {HINT}"
        )
    site.site = msgspec.structs.replace(
        site.site, defaults=msgspec.structs.replace(defaults, server_url=url)
    )


# ---- the context file -----------------------------------------------------------------


def read_context(path: str | None) -> dict[str, Any]:
    """The context file's object (an absent file: empty, as iac-driver starts)."""
    if path is None or not Path(path).exists():
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise FlagError(f"cannot read context file {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise FlagError(f"invalid JSON in context file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise FlagError(f"context file {path} holds no JSON object")
    return data


def context_after(
    loaded: Mapping[str, Any], node_names: Iterable[str], resources: Mapping[str, Mapping]
) -> dict[str, Any]:
    """The context to write: what was read, with each node's `NAME_vm_id` and `NAME_ip`
    (iac-driver's keys) as the store now records them; a node no longer there loses its."""
    context = dict(loaded)
    by_name = {str(out.get("name")): out for out in resources.values() if out.get("name")}
    for name in node_names:
        out = by_name.get(name)
        for key, field in ((f"{name}_vm_id", "vm_id"), (f"{name}_ip", "ip")):
            value = out.get(field) if out else None
            if value is None:
                context.pop(key, None)
            else:
                context[key] = value
    return context


def write_context(path: str, context: Mapping[str, Any]) -> None:
    from ._fmt import write_atomic

    write_atomic(Path(path), json.dumps(context, indent=2, sort_keys=True, default=str) + "\n")


# ---- the verbs ------------------------------------------------------------------------


def list_phases(verb: str, console: Console) -> int:
    console.print(f"Phases of {verb}:")
    for phase in PHASES[verb]:
        skip = "can be skipped" if phase.skippable else f"cannot be skipped: {phase.why_not}"
        console.print(f"  {phase.name:<10} {phase.what}  ({skip})")
    console.error(f"hint: iac-driver runs its preflight outside the phases {HINT}")
    return 0


def run_create(args: argparse.Namespace, console: Console) -> int:
    return _run_verb(args, console, "run_create")


def run_destroy(args: argparse.Namespace, console: Console) -> int:
    return _run_verb(args, console, "run_destroy")


def run_test(args: argparse.Namespace, console: Console) -> int:
    return _run_verb(args, console, "run_test")


def _run_verb(args: argparse.Namespace, console: Console, function: str) -> int:
    from . import _apply

    try:
        check_flags(args, console)
        if args.list_phases:
            return list_phases(args.command, console)
        context = read_context(args.context_file)
    except FlagError as exc:
        console.error(f"pveplan {args.command}: error: {exc}")
        return 1
    if args.preflight or not (
        args.skip_preflight or "preflight" in args.skips or args.dry_run or _refused(args, console)
    ):
        from ._readiness import readiness

        ok = readiness(args, console, only=args.preflight)
        if args.preflight or not ok:
            return 0 if ok else 1
    run: Callable[[argparse.Namespace, Console], int] = getattr(_apply, function)
    if any(not k.endswith(("_vm_id", "_ip")) for k in context):  # more than pveplan writes
        console.error(
            f"note: {args.context_file} is read and written back with each node's vm_id and "
            f"ip; pveplan's store, not the context, carries what a run needs {HINT}"
        )
    started = time.time()
    console.deadline = started + args.timeout if args.timeout else None
    try:
        code = run(args, console)
    except _deadline_error() as exc:
        console.error(f"error: {exc} {HINT}")
        _say_recorded(args, console, started)
        code = 1
    finally:
        console.deadline = None
    if args.context_file and not args.dry_run:
        _save_context(args, console, context)
    for note in (getattr(args, "depth_note", None), getattr(args, "self_addr_note", None)):
        if note:
            console.error(note)
    return code


def _refused(args: argparse.Namespace, console: Console) -> bool:
    """A destroy that will be refused for want of consent (no --yes, no terminal): it
    refuses before touching anything, so its checks would only start what it never uses."""
    import sys

    return (
        args.command == "destroy"
        and not args.yes
        and not (sys.stdin.isatty() and console.out.isatty())
    )


def _deadline_error() -> type[BaseException]:
    from pveplan.executor import DeadlineExpired

    return DeadlineExpired


def _say_recorded(args: argparse.Namespace, console: Console, since: float) -> None:
    """After a deadline: the runs this command recorded, and what each recorded."""
    from ._session import open_run_store

    try:
        with open_run_store(console) as store:
            runs = [r for r in store.runs(None, limit=20) if r.started >= since - 1]
            for record in sorted(runs, key=lambda r: r.id):
                events = store.run_events(record.id)
                ended = {e.address for e in events if e.kind in ("finished", "cached", "failed")}
                cut = sorted({e.address for e in events if e.kind == "started"} - ended)
                done = sum(1 for e in events if e.kind in ("finished", "cached"))
                console.error(
                    f"  run {record.id} ({record.verb} of {record.workspace}) recorded as "
                    f"{record.status}: {done} finished step(s) kept"
                    + (f", cut off: {', '.join(cut)}" if cut else "")
                    + f"; `pveplan runs show {record.id}` lists them; run the same command "
                    "again to resume"
                )
    except Exception as exc:  # the report of a report: never hide the deadline itself
        console.error(f"  (could not read the store's run records: {exc})")


def _save_context(args: argparse.Namespace, console: Console, loaded: dict[str, Any]) -> None:
    from pveplan.dsl import DiagnosticError
    from pveplan.planner import PlanError

    from ._plan import make_plan
    from ._state import applied_resources

    quiet = dataclasses.replace(console, err=io.StringIO())  # the run printed its warnings
    try:
        plan_file, _, _ = make_plan(args, quiet)
        resources = applied_resources(console, plan_file.header.workspace)
        addresses = [s.address for s in plan_file.plan.steps] + list(resources)
        names = sorted({a.split(".")[1] for a in addresses if a.startswith("node.")})
        write_context(args.context_file, context_after(loaded, names, resources))
    except (PlanError, DiagnosticError, OSError) as exc:
        console.error(f"warning: could not write context file {args.context_file}: {exc}")
