"""How `plan` and `show` print a diff: text, JSON, or markdown parts for PR comments."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from pveplan.planner import PlanError

from ._fmt import write_atomic

if TYPE_CHECKING:
    from pveplan.planner import Change, PlanFile, Summary

    from . import Console


def output_format(args: argparse.Namespace) -> str:
    """`--json` is kept as the short form of `--format json`."""
    return "json" if getattr(args, "json", False) else getattr(args, "format", "text")


def print_markdown(
    args: argparse.Namespace,
    console: Console,
    plan_file: PlanFile,
    changes: list[Change],
    summary: Summary,
) -> None:
    """The diff as markdown parts: on stdout one after another, or one file per part in
    `--parts-dir` (older parts of the same plan's workspace removed, so none is stale)."""
    from pveplan.planner import MIN_MAX_CHARS, render_markdown

    if args.max_chars < MIN_MAX_CHARS:
        raise PlanError.at(
            None,
            f"--max-chars {args.max_chars} is too small to hold one step",
            f"use at least {MIN_MAX_CHARS} (GitHub comments hold 65536)",
        )
    parts = render_markdown(plan_file, changes, summary, max_chars=args.max_chars)
    if not args.parts_dir:
        console.out.write("\n".join(parts))
        return
    folder = Path(args.parts_dir)
    host = plan_file.plan.host.replace(":", "-")  # a rehearsal's sim:HOST; ':' upsets CI artifacts
    prefix = f"{plan_file.plan.manifest}-{host}-part-"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob(f"{prefix}*.md"):
            old.unlink()
        for number, part in enumerate(parts, 1):
            write_atomic(folder / f"{prefix}{number:02d}.md", part)
    except OSError as exc:
        raise PlanError.at(
            None, f"cannot write the markdown parts to {folder}: {exc.strerror or exc}"
        ) from None
    console.print(f"Wrote {len(parts)} markdown part(s) to {folder}/{prefix}NN.md.")
