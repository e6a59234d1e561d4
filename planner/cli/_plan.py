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

from dsl import Diagnostic, load_manifest, load_yaml, manifest_from_data

from .._destroy import destroy_plan
from .._diff import Change, diff_plans, summarize
from .._errors import PlanError
from .._hashing import plan_hash
from .._plan import Plan, PlanSettings
from .._planfile import PlanFile, encode_plan_file, read_plan_file
from .._planning import build_plan_file, workspace_name
from .._render import changes_json, render_changes
from ._fmt import write_atomic
from ._select import SiteCache, host_name, manifest_paths, site_root
from ._state import applied_plan, applied_resources

if TYPE_CHECKING:
    from ..siteconfig import SiteConfig
    from . import Console


class Planned(NamedTuple):
    """A compiled plan file, the plan applied to its workspace (None if none), the site."""

    plan_file: PlanFile
    old: Plan | None
    site: SiteConfig


def make_plan(args: argparse.Namespace, console: Console) -> Planned:
    """Load, check, resolve and compile the one manifest the arguments name; with the
    plan the store records as applied to its workspace (None if nothing is)."""
    from ..siteconfig import resolve_manifest

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
    resolved = resolve_manifest(loaded, site, host)
    console.diagnostics([*loaded.warnings, *resolved.warnings])
    workspace = workspace_name(resolved.name, host)
    old = applied_plan(console, workspace)
    plan_file = build_plan_file(
        loaded, resolved, site, host, planned_against=old.hash if old else None
    )
    return Planned(plan_file, old, site)


def destroy_plan_file(plan_file: PlanFile, old: Plan | None, console: Console) -> PlanFile:
    """The destroy plan for the workspace `plan_file` belongs to, from what the store holds."""
    if old is None:
        empty = Plan(
            manifest=plan_file.plan.manifest,
            host=plan_file.plan.host,
            action="destroy",
            hash=plan_hash(
                plan_file.plan.manifest, plan_file.plan.host, "destroy", PlanSettings(), []
            ),
        )
        return msgspec.structs.replace(plan_file, plan=empty, hash=empty.hash)
    plan = destroy_plan(old, applied_resources(console, plan_file.header.workspace))
    header = msgspec.structs.replace(plan_file.header, sources={})
    return PlanFile(hash=plan.hash, plan=plan, header=header)


def plan_and_changes(
    plan_file: PlanFile, old: Plan | None, destroy: bool, console: Console
) -> tuple[PlanFile, list[Change]]:
    """The plan to show (the destroy plan, when destroying) and its changes against `old`."""
    if not destroy:
        return plan_file, diff_plans(plan_file.plan, old, plan_file.header.sources)
    plan_file = destroy_plan_file(plan_file, old, console)
    if old is None:
        return plan_file, []
    nothing = Plan(manifest=old.manifest, host=old.host, hash="")
    return plan_file, diff_plans(nothing, old)  # every applied step: destroy


def run_plan(args: argparse.Namespace, console: Console) -> int:
    plan_file, old, _ = make_plan(args, console)
    if args.check:
        return _check(plan_file, Path(args.check), console)
    plan_file, changes = plan_and_changes(plan_file, old, args.destroy, console)
    summary = summarize(changes)
    if args.out:
        try:
            write_atomic(Path(args.out), encode_plan_file(plan_file).decode())
        except OSError as exc:
            raise PlanError.at(
                None, f"cannot write the plan file {args.out}: {exc.strerror or exc}"
            ) from None
    if args.json:
        console.print(
            json.dumps(changes_json(plan_file, changes, summary), indent=2, sort_keys=True)
        )
    else:
        title = (
            f"pveplan: {plan_file.plan.manifest} on {plan_file.plan.host} (plan {plan_file.hash})"
        )
        console.print(console.style.bold(title))
        console.print()
        console.print(render_changes(changes, summary, console.style))
        if args.out:
            console.print(f"\nSaved the plan to {args.out}.")
    if args.detailed_exitcode and summary.changes:
        return 2
    return 0


def _check(plan_file: PlanFile, path: Path, console: Console) -> int:
    """Is the committed plan at `path` what the manifest compiles to now?"""
    saved = read_plan_file(path)
    current = msgspec.json.format(msgspec.json.encode(plan_file.plan, order="sorted"), indent=2)
    before = msgspec.json.format(msgspec.json.encode(saved.plan, order="sorted"), indent=2)
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
    plan_file, old, _ = make_plan(args, console)
    plan_file, changes = plan_and_changes(plan_file, old, args.command == "destroy", console)
    summary = summarize(changes)
    if args.json_output:
        report = changes_json(plan_file, changes, summary)
        report.update({"verb": args.command, "dry_run": True, "success": True})
        console.print(json.dumps(report, indent=2, sort_keys=True))
        return 0
    console.print(
        console.style.bold(
            f"{args.command} --dry-run: {plan_file.plan.manifest} on {plan_file.plan.host}"
        )
    )
    console.print()
    console.print(render_changes(changes, summary, console.style))
    return 0
