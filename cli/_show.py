"""`pveplan show FILE` (for people, or --json for machines) and `pveplan graph` (Graphviz DOT)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from pveplan.planner import plan_json, plan_to_dot, read_plan_file, render_plan

from ._output import output_format, print_markdown

if TYPE_CHECKING:
    from . import Console


def run_show(args: argparse.Namespace, console: Console) -> int:
    plan_file = read_plan_file(Path(args.file))
    form = output_format(args)
    if form == "json":
        console.print(json.dumps(plan_json(plan_file), indent=2, sort_keys=True))
    elif form == "markdown":
        from pveplan.planner import plan_changes, summarize

        from ._plan import against_plan
        from ._state import applied_plan

        workspace = plan_file.header.workspace
        old = (
            against_plan(Path(args.against), workspace)
            if args.against
            else applied_plan(console, workspace)
        )
        changes = plan_changes(plan_file.plan, old, plan_file.header.sources)
        print_markdown(args, console, plan_file, changes, summarize(changes))
    else:
        console.print(render_plan(plan_file, console.style))
    return 0


def run_graph(args: argparse.Namespace, console: Console) -> int:
    if args.file:
        plan = read_plan_file(Path(args.file)).plan
    else:
        from ._plan import make_plan

        plan = make_plan(args, console)[0].plan
    console.out.write(plan_to_dot(plan))
    return 0
