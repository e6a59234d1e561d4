"""`pveplan spec get` and `pveplan config apply`: what a pull-mode node runs on itself.

The bootstrap (and later the converge timer) runs them on the node as root, from the
installed bundle: `spec get` fetches the node's spec from the spec server into spec.yaml,
`config apply` converges the node on it, writes the state marker and reports back. Both
print one clear line per failure and exit 1, never a traceback; the logic lives in
the executor's pull mode (`node_spec_get`, `config_apply`), this module only reads flags
and prints.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ._parser import add_action, add_command

if TYPE_CHECKING:
    from pveplan.executor import ApplyResult

    from . import Console


def add_node_parsers(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The `spec` and `config` commands (run on pull-mode nodes)."""
    examples = (
        "pveplan spec get   # on the node, as root, as its bootstrap and timer do",
        "pveplan spec get --timeout 60 --server https://10.0.0.1:44443 --fingerprint HEX",
    )
    spec = add_command(
        commands,
        "spec",
        help="fetch this node's spec from the spec server (pull-mode nodes)",
        description="On a pull-mode node: fetch the node's spec from the spec server named "
        "in /root/.pveplan/pull/pull.json, pinning its certificate, and save it as "
        "/root/.pveplan/state/spec.yaml. Retries an unreachable server until --timeout; "
        "a refusal is final. The flags override pull.json (for use by hand).",
        examples=examples,
    )
    spec_verbs = spec.add_subparsers(dest="spec_command", metavar="ACTION", required=True)
    get = add_action(spec_verbs, "spec", "get", help="fetch and save the spec", examples=examples)
    get.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="S",
        help="seconds to keep retrying an unreachable server (default: 300)",
    )
    get.add_argument("--server", metavar="URL", help="the spec server (https://HOST:PORT)")
    get.add_argument("--fingerprint", metavar="FP", help="SHA-256 of its certificate")
    get.add_argument("--identity", metavar="NAME", help="this node's name")
    get.add_argument("--instance", metavar="ID", help="this VM's instance id")
    get.add_argument("--token-file", metavar="FILE", help="the node's token (default: pull's)")

    examples = (
        "pveplan config apply   # on the node, as root, after `pveplan spec get`",
        "pveplan config apply -v --no-report",
        "pveplan config apply --spec /tmp/spec.yaml --no-report",
    )
    config = add_command(
        commands,
        "config",
        help="converge this node on its saved spec (pull-mode nodes)",
        description="On a pull-mode node: converge it on /root/.pveplan/state/spec.yaml "
        "(users, keys, sudo, packages, services, timezone, posture) with pveplan's executor "
        "and the node's own store, repairing only what drifted; write complete.json or "
        "failure.json and report the outcome to the spec server.",
        examples=examples,
    )
    config_verbs = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    apply = add_action(
        config_verbs, "config", "apply", help="converge on the saved spec", examples=examples
    )
    apply.add_argument("--spec", metavar="FILE", help="another spec document (YAML)")
    apply.add_argument(
        "--no-report", action="store_true", help="do not report the outcome to the server"
    )
    apply.add_argument("-v", "--verbose", action="store_true", help="show every step and log")


def run_spec(args: argparse.Namespace, console: Console) -> int:
    from pveplan.executor import NodeError, node_spec_get

    def log(line: str) -> None:
        console.error(f"pveplan spec get: {line}")

    try:
        document = node_spec_get(
            timeout=max(0.0, args.timeout),
            log=log,
            server=args.server,
            fingerprint=args.fingerprint,
            identity=args.identity,
            instance=args.instance,
            token_file=Path(args.token_file) if args.token_file else None,
        )
    except NodeError as exc:
        console.error(f"error: {exc}")
        return 1
    console.print(
        f"{document.identity}: fetched spec {document.spec_name} ({document.spec_hash[:8]})"
    )
    return 0


def run_config(args: argparse.Namespace, console: Console) -> int:
    from pveplan.executor import NodeError, PlainDisplay, config_apply

    display = PlainDisplay(console.err, verbose=True) if args.verbose else None
    try:
        result = config_apply(
            spec_file=Path(args.spec) if args.spec else None,
            report=not args.no_report,
            display=display,
        )
    except NodeError as exc:
        console.error(f"error: {exc}")
        return 1
    _summary(result, console)
    return 0 if result.status == "converged" else 1


def _summary(result: ApplyResult, console: Console) -> None:
    """`edge: converged on spec base (a1b2c3d4): 1 changed`, then what was repaired."""
    name = result.identity or "this node"
    spec = f"spec {result.spec_name} ({result.spec_hash[:8]})" if result.spec_hash else "its spec"
    verb = "converged on" if result.status == "converged" else "failed to converge on"
    console.print(f"{name}: {verb} {spec}: {len(result.changed)} changed")
    for line in result.repairs:
        address, _, what = line.partition(": ")
        console.print(f"  repaired: {what} ({address})")
    for warning in result.warnings:
        console.error(f"warning: {warning}")
    for failure in result.failures or ([result.error] if result.error else []):
        console.error(f"error: {failure}")
