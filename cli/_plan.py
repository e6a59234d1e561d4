"""`pveplan plan` (and homestak's `create|destroy|test --dry-run`): compile, diff, save, check.

Exit codes: 0 success; 1 an error (or `--check` found the file stale); with
`--detailed-exitcode`, 2 when the plan has changes.
"""

from __future__ import annotations

import argparse
import difflib
import json
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import msgspec

from pveplan.dsl import Diagnostic, load_manifest, load_yaml, manifest_from_data
from pveplan.planner import (
    Change,
    Plan,
    PlanError,
    PlanFile,
    Summary,
    build_plan_file,
    changes_json,
    destroy_plan_file,
    diff_plans,
    encode_plan_file,
    plan_changes,
    read_plan_file,
    rehearsed_host,
    relative_to,
    render_changes,
    summarize,
    with_drift,
    workspace_name,
)

from ._drift import with_live_drift
from ._fmt import write_atomic
from ._output import output_format, print_markdown
from ._select import SiteCache, host_name, manifest_paths, plan_host, simulating, site_root
from ._state import applied_plan, applied_resources
from ._targets import (
    cut_destroy,
    cut_plan_file,
    destroyed_considered,
    host_targets,
    old_view,
    target_hosts_of,
    targets_of,
)

if TYPE_CHECKING:
    from pveplan.planner import SiteConfig

    from . import Console


class Planned(NamedTuple):
    """A compiled plan file, the plan applied to its workspace (None if none), the site."""

    plan_file: PlanFile
    old: Plan | None
    site: SiteConfig


def make_plan(args: argparse.Namespace, console: Console) -> Planned:
    """Load, check, resolve and compile the one manifest the arguments name; with the
    plan the store records as applied to its workspace (None if nothing is)."""
    from pveplan.planner import resolve_manifest

    host = host_name(args)
    if host is None:
        raise PlanError.at(
            None, "a plan needs a target host", "name it with -H HOST (a file in nodes/ or hosts/)"
        )
    if getattr(args, "manifest_json", None):
        data, smap = load_yaml(args.manifest_json, "<manifest-json>")
        loaded = manifest_from_data(data, smap)
        path = None
    else:
        paths = manifest_paths(args, console)
        if len(paths) != 1:
            raise PlanError.at(None, f"plan takes one manifest, got {len(paths)}")
        path = paths[0]
        loaded = load_manifest(path)
    site = SiteCache().get(site_root(args, console, path))
    if args.command in ("create", "destroy", "test"):  # iac-driver's --depth, --vm-id, --self-addr
        from ._homestak_flags import adjust_manifest, adjust_site

        loaded = adjust_manifest(loaded, args)
        adjust_site(site, args, console.env)
    host = plan_host(args, console, site) or host
    resolved = resolve_manifest(loaded, site, host, rehearse=simulating(args, console))
    console.diagnostics([*loaded.warnings, *resolved.warnings])
    workspace = workspace_name(resolved.name, host)
    against = getattr(args, "against", None)
    old = against_plan(Path(against), workspace) if against else applied_plan(console, workspace)
    plan_file = build_plan_file(
        loaded, resolved, site, host, planned_against=old.hash if old else None
    )
    named = targets_of(args)  # -target, and --target-host's nodes
    on_hosts = host_targets(plan_file.plan, target_hosts_of(args), console)
    targets = tuple(dict.fromkeys((*named, *on_hosts)))
    plan_file = cut_plan_file(plan_file, targets, console, announce=bool(named))
    return Planned(plan_file, old, site)


def rehearsal_note(host: str, console: Console) -> None:
    """Under a plan's title: say so when it is a rehearsal (`--simulate`)."""
    real = rehearsed_host(host)
    if real is not None:
        console.print(
            f"Rehearsal (--simulate): {real} is simulated; nothing here runs on {real} itself."
        )


def against_plan(path: Path, workspace: str) -> Plan:
    """The plan in the file at `path`, as the one to diff against (same workspace only)."""
    other = read_plan_file(path)
    if other.header.workspace != workspace:
        raise PlanError.at(
            None,
            f"--against {path} is a plan for {other.header.workspace}, not {workspace}",
            "diff against an earlier plan of the same manifest and host",
        )
    return other.plan


def workspace_destroy(plan_file: PlanFile, old: Plan | None, console: Console) -> PlanFile:
    """The destroy plan for the workspace `plan_file` belongs to, from what the store holds."""
    workspace = plan_file.header.workspace
    resources = applied_resources(console, workspace) if old is not None else None
    return cut_destroy(destroy_plan_file(plan_file, old, resources), plan_file.plan.targets)


def plan_and_changes(
    plan_file: PlanFile, old: Plan | None, destroy: bool, console: Console
) -> tuple[PlanFile, list[Change]]:
    """The plan to show (the destroy plan, when destroying) and its changes against `old`
    (as much of it as the plan's -targets consider)."""
    targets = plan_file.plan.targets
    view = old_view(old, targets, destroy=destroy)
    if destroy:
        plan_file = workspace_destroy(plan_file, old, console)
        return plan_file, destroyed_considered(plan_changes(plan_file.plan, view), targets)
    return plan_file, plan_changes(plan_file.plan, view, plan_file.header.sources)


def summarize_with_drift(changes: list[Change], plan: Plan) -> Summary:
    """The counts of `changes`, and of the drift `plan` carries."""
    summary = summarize(changes)
    return msgspec.structs.replace(summary, drift=len(plan.drift)) if plan.drift else summary


def run_plan(args: argparse.Namespace, console: Console) -> int:
    if args.check:
        return _check_all(args, console)
    plan_file, old, site = make_plan(args, console)
    if not args.destroy:
        plan_file = with_live_drift(args, console, plan_file, site, old)
    plan_file, changes = plan_and_changes(plan_file, old, args.destroy, console)
    summary = summarize_with_drift(changes, plan_file.plan)
    if args.sign and not args.out:
        raise PlanError.at(None, "--sign signs the saved plan file", "add -o FILE")
    if args.out:
        where = relative_to(site.root, (console.cwd / args.out).parent)
        header = msgspec.structs.replace(plan_file.header, site_config=where)
        plan_file = msgspec.structs.replace(plan_file, header=header)
        if args.sign:
            from pveplan.planner import load_private_key, sign

            plan_file = sign(plan_file, load_private_key(Path(args.sign)))
        try:
            write_atomic(Path(args.out), encode_plan_file(plan_file).decode())
        except OSError as exc:
            raise PlanError.at(
                None, f"cannot write the plan file {args.out}: {exc.strerror or exc}"
            ) from None
    form = output_format(args)
    if form == "json":
        console.print(
            json.dumps(changes_json(plan_file, changes, summary), indent=2, sort_keys=True)
        )
    elif form == "markdown":
        print_markdown(args, console, plan_file, changes, summary)
    else:
        title = (
            f"pveplan: {plan_file.plan.manifest} on {plan_file.plan.host} (plan {plan_file.hash})"
        )
        console.print(console.style.bold(title))
        rehearsal_note(plan_file.plan.host, console)
        console.print()
        verbose = getattr(args, "verbose", False)  # list each summed-up dependent step
        drift = plan_file.plan.drift
        console.print(render_changes(changes, summary, console.style, verbose=verbose, drift=drift))
        if args.out:
            signed = " (signed)" if args.sign else ""
            console.print(f"\nSaved the plan to {args.out}{signed}.")
    if args.detailed_exitcode and summary.changes:
        return 2
    return 0


def _check_all(args: argparse.Namespace, console: Console) -> int:
    """`plan --check FILE...`: each saved plan against what its manifest compiles to
    now. The manifest and host come from the file (its name in the site config, its
    host) unless the command line names them; every file is checked, and any stale one
    makes the exit code 1."""
    explicit = bool(
        getattr(args, "files", None) or getattr(args, "manifest", None) or args.manifest_file
    )
    if explicit and len(args.check) > 1:
        raise PlanError.at(
            None,
            "with a manifest named, --check takes one plan file",
            "or leave out -M / FILE: each plan file names its manifest and host",
        )
    stale = 0
    for name in args.check:
        path = Path(name)
        saved = read_plan_file(path)
        per_file = argparse.Namespace(**vars(args))
        if not explicit:
            per_file.manifest = saved.plan.manifest
        real = rehearsed_host(saved.plan.host)
        per_file.host = args.host or real or saved.plan.host
        per_file.simulate = bool(real) or getattr(args, "simulate", False)
        per_file.target = list(saved.plan.targets) or getattr(args, "target", None)
        plan_file = make_plan(per_file, console).plan_file
        stale += _check(plan_file, saved, path, console)
    return 1 if stale else 0


def _check(plan_file: PlanFile, saved: PlanFile, path: Path, console: Console) -> int:
    """Is the committed plan at `path` what the manifest compiles to now? (1 if not)"""
    # The drift a saved plan recorded is what its probe saw, not what its inputs compile to.
    offline = with_drift(saved.plan, ())
    current = msgspec.json.format(msgspec.json.encode(plan_file.plan, order="sorted"), indent=2)
    before = msgspec.json.format(msgspec.json.encode(offline, order="sorted"), indent=2)
    if current == before:
        console.print(f"{path}: up to date (plan {plan_file.hash})")
        return 0
    changes = [
        c
        for c in diff_plans(plan_file.plan, saved.plan, plan_file.header.sources)
        if c.action != "unchanged"
    ]
    console.diagnostics(
        [
            Diagnostic(
                summary=f"{path} is stale: it holds plan {saved.hash}, the manifest now compiles to {plan_file.hash}",
                detail=f"{len(changes)} step(s) differ; re-run `pveplan plan ... -o {path}` and commit the result",
            )
        ]
    )
    diff = difflib.unified_diff(
        before.decode().splitlines(keepends=True),
        current.decode().splitlines(keepends=True),
        f"{path}",
        "now",
    )
    console.out.writelines(diff)
    return 1


def run_dry_run_verb(args: argparse.Namespace, console: Console) -> int:
    """homestak's `create|destroy|test -M NAME -H HOST --dry-run`: the plan diff."""
    manifest_plan, old, _ = make_plan(args, console)
    plan_file, changes = plan_and_changes(manifest_plan, old, args.command == "destroy", console)
    summary = summarize(changes)
    if args.json_output:  # homestak's report, every node `pending`, then the diff
        from ._homestak_report import dry_run_report

        diff = changes_json(plan_file, changes, summary)
        report = dry_run_report(args, console, manifest_plan.plan, diff)
        console.print(json.dumps(report, indent=2))
        return 0
    console.print(
        console.style.bold(
            f"{args.command} --dry-run: {plan_file.plan.manifest} on {plan_file.plan.host}"
        )
    )
    rehearsal_note(plan_file.plan.host, console)
    console.print()
    verbose = getattr(args, "verbose", False)
    console.print(render_changes(changes, summary, console.style, verbose=verbose))
    return 0
