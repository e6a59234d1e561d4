"""The argument parser and command dispatch.

argparse (standard library) keeps start-up fast and the help text honest. Each
sub-command maps to one `run_*` function; `run` turns the errors users can cause into
rendered diagnostics and exit code 1. The commands' parsers live in `_parser_review`,
`_parser_run` and `_node`, built on `_parser`; `build_parser` puts them together.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
from typing import TYPE_CHECKING

from pveplan.planner import __version__

from ._environment import environment_section
from ._node import add_node_parsers
from ._parser import PveplanParser
from ._parser_import import add_import_parser
from ._parser_outputs import add_output_parser
from ._parser_review import add_review_parsers
from ._parser_run import add_run_parsers
from ._parser_scenario import add_scenario_parser
from ._parser_token import add_token_parser

if TYPE_CHECKING:
    from . import Console

DESCRIPTION = """\
pveplan: a Nix-like plan/apply orchestrator for Proxmox VE, nested PVE labs included.

Describe a tree of VMs and nested PVE hosts in a manifest (the .pvp language, or
homestak's YAML v2), check it, plan it, review the plan, and apply it."""

EPILOG = """\
examples:
  pveplan plan -M n2-tiered -H sim --site-config examples/site-config -o plans/n2.json
  pveplan show plans/n2.json
  pveplan show --format markdown plans/n2.json --parts-dir comments/
  pveplan sign plans/n2.json --key ~/.config/pveplan/approver
  pveplan apply plans/n2.json --require-signature approver.pub
  pveplan validate examples/site-config/manifests/n2-tiered.pvp
  pveplan validate -M n3-deep --site-config examples/site-config
  pveplan fmt --check examples/
  source <(pveplan completion bash)

`pveplan COMMAND --help` shows a command's flags, examples and the variables it reads.

""" + environment_section(None)


# Each command's module is imported only when it runs, so start-up stays fast.
COMMANDS = {
    "validate": ("._validate", "run_validate"),
    "fmt": ("._fmt", "run_fmt"),
    "plan": ("._plan", "run_plan"),
    "show": ("._show", "run_show"),
    "graph": ("._show", "run_graph"),
    "store": ("._store", "run_store"),
    "apply": ("._apply", "run_apply"),
    "preflight": ("._preflight", "run_preflight"),
    "status": ("._status", "run_status"),
    "import": ("._import", "run_import"),
    "create": ("._homestak_flags", "run_create"),
    "destroy": ("._homestak_flags", "run_destroy"),
    "test": ("._homestak_flags", "run_test"),
    "runs": ("._runs", "run_runs"),
    "output": ("._outputs_cmd", "run_output"),
    "sim": ("._sim", "run_sim"),
    "executor": ("._executor", "run_executor"),
    "spec": ("._node", "run_spec"),
    "config": ("._node", "run_config"),
    "serve": ("._serve", "run_serve"),
    "keygen": ("._keys", "run_keygen"),
    "sign": ("._keys", "run_sign"),
    "schema": ("._schema", "run_schema"),
    "completion": ("._completion", "run_completion"),
    "token": ("._token", "run_token"),
    "scenario": ("._scenario", "run_scenario"),
}

# Commands that build large, long-lived, acyclic data (a manifest, its plan) in one go:
# the cyclic collector's default thresholds walked that data over and over while it
# grew (about a tenth of `plan`'s CPU on 10,000 nodes) and found nothing to free.
ALLOCATING = frozenset({"plan", "validate", "show", "graph"})


def quiet_collector() -> None:
    """Fewer cyclic-GC passes for a short command that allocates much and frees little:
    what start-up made is frozen out of every later pass, and young objects are swept
    per 100,000 allocations rather than per 700. Memory still returns when a command
    drops its data (reference counting frees acyclic objects at once)."""
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


# homestak's retired scenario names, and the verb that replaced each.
RETIRED = {
    "vm-constructor": "create",
    "vm-destructor": "destroy",
    "vm-roundtrip": "test",
    "nested-pve-constructor": "create",
    "nested-pve-destructor": "destroy",
    "nested-pve-roundtrip": "test",
    "recursive-pve-constructor": "create",
    "recursive-pve-destructor": "destroy",
    "recursive-pve-roundtrip": "test",
}


def retired(name: str) -> str | None:
    """The verb replacing a retired scenario name (any `recursive-pve-*` too), or None."""
    if name in RETIRED:
        return RETIRED[name]
    if name.startswith("recursive-pve-"):
        return "test"
    return None


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: every command, its flags, its help with examples and the
    environment it reads. Built per run (a few milliseconds) from the group modules."""
    parser = PveplanParser(prog="pveplan", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"pveplan {__version__}")
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour diagnostics (default: auto, off when NO_COLOR is set or not a terminal)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_review_parsers(commands)  # validate, fmt, plan, show, graph, keygen, sign, schema
    add_run_parsers(commands)  # apply, create, destroy, test, runs, store, sim, serve, ...
    add_output_parser(commands)  # output: the store's records for the next tool
    add_import_parser(commands)  # import: adopt existing VMs into the store
    add_node_parsers(commands)  # `spec get`, `config apply`: run on pull-mode nodes
    add_token_parser(commands)  # `token inspect`
    add_scenario_parser(commands)  # homestak's scenarios (`--scenario NAME` too)
    return parser


def run(args: argparse.Namespace, console: Console) -> int:
    from pveplan.dsl import DiagnosticError

    if args.command == "retired":  # set by main() for a retired scenario name
        console.error(
            f"error: {args.name!r} is a retired homestak scenario; use `pveplan {args.verb} "
            "-M MANIFEST -H HOST` instead"
        )
        return 1
    if args.command is None:
        build_parser().print_help(console.out)
        return 0
    console.site_flag = getattr(args, "site_config", None)
    try:
        module, function = COMMANDS[args.command]
        if args.command in ALLOCATING:
            quiet_collector()
        run_command = getattr(importlib.import_module(module, __package__), function)
        return run_command(args, console)
    except DiagnosticError as exc:  # dsl and planner
        console.diagnostics(exc.diagnostics)
        return 1
    except Exception as exc:
        # Every other package's error root, each looked up only if that package was
        # loaded at all (they load lazily; the store and the simulator import nothing of
        # ours, so their roots are classes of their own). Anything else is a bug and keeps
        # its traceback.
        store = _loaded_root("pveplan.store", "StoreError")
        if store is not None and isinstance(exc, store):
            console.diagnostics(exc.diagnostics)
            return 1
        roots = [
            _loaded_root(p, n)
            for p, n in (("pveplan.executor", "ExecutorError"), ("pveplan.sim", "SimError"))
        ]
        if any(root is not None and isinstance(exc, root) for root in roots):
            console.error(f"error: {exc}")
            return 1
        raise


def _loaded_root(package: str, name: str) -> type[BaseException] | None:
    """`package`'s error root if the package was imported in this run, else None."""
    module = sys.modules.get(package)
    return getattr(module, name) if module is not None else None
