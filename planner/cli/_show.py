"""`pveplan show FILE` (for people, or --json for machines) and `pveplan graph` (Graphviz DOT)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from .._graph import plan_to_dot
from .._planfile import read_plan_file
from .._render import plan_json, render_plan

if TYPE_CHECKING:
    from . import Console


def run_show(args: argparse.Namespace, console: Console) -> int:
    plan_file = read_plan_file(Path(args.file))
    if args.json:
        console.print(json.dumps(plan_json(plan_file), indent=2, sort_keys=True))
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
