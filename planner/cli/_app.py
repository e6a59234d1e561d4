"""The argument parser and command dispatch.

argparse (standard library) keeps start-up fast and the help text honest. Each
sub-command maps to one `run_*` function; `run` turns the errors users can cause into
rendered diagnostics and exit code 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import TYPE_CHECKING

from .._version import __version__
from ._node import add_node_parsers

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

environment:
  HOMESTAK_SITE_CONFIG   site config directory (the --site-config flag wins)
  NO_COLOR               disable colour"""


# Each command's module is imported only when it runs, so start-up stays fast.
COMMANDS = {
    "validate": ("._validate", "run_validate"),
    "fmt": ("._fmt", "run_fmt"),
    "plan": ("._plan", "run_plan"),
    "show": ("._show", "run_show"),
    "graph": ("._show", "run_graph"),
    "store": ("._store", "run_store"),
    "apply": ("._apply", "run_apply"),
    "create": ("._apply", "run_create"),
    "destroy": ("._apply", "run_destroy"),
    "test": ("._apply", "run_test"),
    "runs": ("._runs", "run_runs"),
    "sim": ("._sim", "run_sim"),
    "executor": ("._executor", "run_executor"),
    "spec": ("._node", "run_spec"),
    "config": ("._node", "run_config"),
    "serve": ("._serve", "run_serve"),
    "keygen": ("._keys", "run_keygen"),
    "sign": ("._keys", "run_sign"),
    "schema": ("._schema", "run_schema"),
}

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
    parser = argparse.ArgumentParser(
        prog="pveplan",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pveplan {__version__}")
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour diagnostics (default: auto, off when NO_COLOR is set or not a terminal)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    validate = commands.add_parser(
        "validate",
        help="check manifests: schema, tree rules, and every site-config reference",
        description="Check manifests (.pvp or YAML v2): the schema, the tree rules (unique "
        "names and vmids, parents that exist, no cycles), and that every foreign key "
        "(spec, preset, posture, ssh key, image, host) resolves in the site config. "
        "Exit 0 when valid, 1 otherwise, with each problem at its file:line:col.",
    )
    validate.add_argument("files", nargs="*", metavar="FILE", help="manifest files (.pvp, .yaml)")
    add_manifest_options(validate)
    validate.add_argument(
        "--no-site-config",
        action="store_true",
        help="check the manifest alone, without resolving references in a site config",
    )
    validate.add_argument("--json", action="store_true", help="print results as JSON on stdout")

    fmt = commands.add_parser(
        "fmt",
        help="rewrite .pvp files in the canonical layout",
        description="Rewrite .pvp files (or every .pvp file under a directory) in the "
        "canonical layout, keeping comments. With --check, change nothing and exit 1 if "
        "any file would change. '-' formats standard input to standard output.",
    )
    fmt.add_argument("files", nargs="+", metavar="FILE", help=".pvp files or directories, or -")
    fmt.add_argument("--check", action="store_true", help="only report files that would change")
    fmt.add_argument("--diff", action="store_true", help="show what would change as a unified diff")
    plan = commands.add_parser(
        "plan",
        help="compile a manifest to a plan and show what would change",
        description="Compile a manifest for a target host into a content-addressed plan, and "
        "show how it differs from what the store records as applied to that workspace "
        "(manifest x host): + create, ~ update, -/+ replace, - destroy, and why.",
    )
    plan.add_argument("files", nargs="*", metavar="FILE", help="the manifest (.pvp, .yaml)")
    add_manifest_options(plan)
    plan.add_argument(
        "-o", "--out", metavar="FILE", help="save the plan file (canonical JSON, for review)"
    )
    plan.add_argument(
        "--sign", metavar="KEYFILE", help="sign the saved plan with this ed25519 key (with -o)"
    )
    plan.add_argument(
        "--check",
        nargs="+",
        metavar="PLANFILE",
        help="exit 1 if a saved plan is not what its manifest compiles to now "
        "(manifest and host from the file unless -M / -H name them)",
    )
    plan.add_argument(
        "--against",
        metavar="PLANFILE",
        help="diff against this plan (the one last applied, e.g. as committed) instead of the store",
    )
    add_format_options(plan)
    plan.add_argument(
        "--destroy",
        action="store_true",
        help="plan the destruction of what the store says is applied",
    )
    plan.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 2 when there are changes (0 none, 1 error)",
    )

    show = commands.add_parser(
        "show",
        help="render a saved plan file",
        description="Render a plan file: its steps (text, --json), or, with --format "
        "markdown, its diff against what the store records as applied (or --against "
        "another plan file) for a pull-request comment.",
    )
    show.add_argument("file", metavar="FILE")
    show.add_argument(
        "--against", metavar="PLANFILE", help="markdown: diff against this plan, not the store"
    )
    add_format_options(show)

    graph = commands.add_parser(
        "graph",
        help="the plan DAG as Graphviz DOT",
        description="Print a plan's steps and their dependencies as Graphviz DOT (subplans as clusters), "
        "from a plan file or from a manifest.",
    )
    graph.add_argument("files", nargs="*", metavar="FILE", help="the manifest")
    graph.add_argument(
        "--plan", dest="file", metavar="PLANFILE", help="a saved plan file instead of a manifest"
    )
    add_manifest_options(graph)

    store_cmd = commands.add_parser(
        "store",
        help="check or clean the local store",
        description="The local store ($PVEPLAN_STORE, else the XDG state directory): "
        "`verify` re-hashes every object and checks the database; `gc` removes what no "
        "applied state, resource or recent run needs.",
    )
    store_verbs = store_cmd.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    store_verbs.add_parser("verify", help="re-hash every object; report damage")
    gc = store_verbs.add_parser("gc", help="remove objects nothing reachable needs")
    gc.add_argument(
        "--keep-runs", type=int, default=10, metavar="N", help="keep the plans of the last N runs"
    )

    apply = commands.add_parser(
        "apply",
        help="apply a manifest or a saved plan file to its host",
        description="Bring the host to the plan: run only the steps whose inputs changed "
        "(the rest is cached in the store), destroy nodes the manifest no longer has. "
        "Without a plan file it plans first, shows the diff and asks (on a terminal) "
        "unless --yes; a saved plan file (FILE.json) is refused when it is stale.",
    )
    apply.add_argument(
        "files", nargs="*", metavar="FILE", help="a manifest, or a plan file (.json)"
    )
    add_manifest_options(apply)
    add_run_options(apply)
    apply.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    apply.add_argument(
        "--require-signature",
        action="append",
        metavar="PUBKEY",
        help="refuse a plan file not signed by this key (an ssh-ed25519 line, or a file of "
        "them; repeatable; site.yaml's trusted_plan_keys count too)",
    )

    keygen = commands.add_parser(
        "keygen",
        help="make an ed25519 key pair for signing plans",
        description="Write a new ed25519 private key to FILE (0600, OpenSSH format) and its "
        "public key to FILE.pub. Reviewers sign approved plan files with the private key; "
        "`apply --require-signature FILE.pub` (or site.yaml's trusted_plan_keys) accepts "
        "only plans it signed. Never overwrites.",
    )
    keygen.add_argument("file", metavar="FILE", help="where to write the private key")
    keygen.add_argument(
        "-C", "--comment", default="pveplan-plan-signing", help="comment on the public key"
    )
    sign = commands.add_parser(
        "sign",
        help="sign a saved plan file (after review)",
        description="Add your ed25519 signature over the plan's hash and body to the plan "
        "file's header. The plan and its hash do not change; an older signature by the "
        "same key is replaced.",
    )
    sign.add_argument("file", metavar="PLANFILE")
    sign.add_argument("--key", required=True, metavar="KEYFILE", help="your private key")
    schema = commands.add_parser(
        "schema",
        help="print the JSON Schema of YAML manifests (for editors)",
        description="Print the JSON Schema (draft 2020-12) of YAML v2 manifests, generated "
        "from pveplan's own model, for YAML language servers: completion, hover "
        "descriptions and inline errors. See docs/manifest.md.",
    )
    schema.add_argument("document", choices=("manifest",), help="which schema")

    runs = commands.add_parser(
        "runs", help="list recorded runs, or show one's events", description="Runs in the store."
    )
    runs_verbs = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    runs_list = runs_verbs.add_parser("list", help="the latest runs, newest first")
    runs_list.add_argument("--workspace", metavar="MANIFEST@HOST", help="only this workspace")
    runs_list.add_argument("--limit", type=int, default=20, metavar="N")
    runs_list.add_argument("--json", action="store_true")
    runs_show = runs_verbs.add_parser("show", help="one run's events and logs")
    runs_show.add_argument("id", type=int, metavar="ID")
    runs_show.add_argument("--json", action="store_true")

    sim = commands.add_parser(
        "sim",
        help="the PVE simulator (started on demand by apply)",
        description="Simulated PVE hosts and VMs on loopback, under the store (or "
        "$PVEPLAN_SIM_DIR / --sim-dir). See docs/simulator.md.",
    )
    sim.add_argument("--sim-dir", metavar="DIR", help="the simulator's directory")
    sim_verbs = sim.add_subparsers(dest="sim_command", metavar="ACTION", required=True)
    sim_up = sim_verbs.add_parser("up", help="start the simulator (idempotent)")
    sim_up.add_argument("nodes", nargs="*", metavar="NODE", help="host nodes (default: sim)")
    sim_up.add_argument("--latency", type=float, metavar="S", help="seconds per PVE command")
    sim_up.add_argument(
        "--agent-delay", type=float, metavar="S", help="seconds from start to a guest address"
    )
    sim_verbs.add_parser("down", help="stop the simulator")
    sim_status = sim_verbs.add_parser("status", help="the simulator's hosts and VMs")
    sim_status.add_argument("--json", action="store_true")
    sim_ssh = sim_verbs.add_parser("ssh", help="run a command on a simulated VM")
    sim_ssh.add_argument("name", metavar="NAME", help="the VM's name")
    sim_ssh.add_argument("--user", default="homestak", help="login user (default: homestak)")
    sim_ssh.add_argument(
        "remote_command", nargs=argparse.REMAINDER, metavar="COMMAND", help="default: hostname"
    )

    executor = commands.add_parser(
        "executor",
        help="run subplans for a driver (started over SSH on nested PVE hosts)",
        description="The remote executor: speaks pveplan's frame protocol on stdin/stdout. "
        "A driver starts it on a nested PVE host; see docs/remote.md.",
    )
    executor.add_argument("--stdio", action="store_true", help="serve one session on stdio")
    executor.add_argument("--home", metavar="DIR", help="root's home to use (default: $HOME)")

    serve = commands.add_parser(
        "serve",
        help="serve pull nodes their specs over HTTPS (the spec server)",
        description="Publish the spec of every pull-mode node in the site config's manifests "
        "over HTTPS, for nodes that configure themselves (docs/pull.md). The certificate is "
        "made on first start and kept in the store; its fingerprint is printed, and nodes pin "
        "it. SIGHUP reloads the site config; SIGTERM or Ctrl-C stops. `apply` starts a server "
        "by itself when a plan has pull nodes and none is running.",
    )
    serve.add_argument(
        "-M", "--manifest", action="append", metavar="NAME", help="also a manifest by name"
    )
    serve.add_argument(
        "--manifest-file", action="append", metavar="FILE", help="also a manifest file"
    )
    serve.add_argument("--site-config", metavar="DIR", help="site config directory")
    serve.add_argument(
        "--bind",
        metavar="ADDRESS",
        help="address to listen on (default: the host of site.yaml's server_url, else 127.0.0.1)",
    )
    serve.add_argument("--port", type=int, metavar="PORT", help="port (default: 44443)")
    serve.add_argument("--cert", metavar="FILE", help="your own certificate (PEM)")
    serve.add_argument("--key", metavar="FILE", help="its private key (PEM)")

    add_node_parsers(commands)  # `spec get`, `config apply`: run on pull-mode nodes

    for verb, what in (
        ("create", "create the manifest's nodes (homestak's verb)"),
        ("destroy", "destroy the manifest's nodes (homestak's verb)"),
        ("test", "create, verify and destroy (homestak's verb)"),
    ):
        cmd = commands.add_parser(
            verb, help=what, description=f"{what}. With --dry-run: show the plan diff."
        )
        cmd.add_argument("files", nargs="*", metavar="FILE", help=argparse.SUPPRESS)
        add_manifest_options(cmd)
        cmd.add_argument(
            "--manifest-json", metavar="JSON", help="the manifest itself, as a JSON string"
        )
        cmd.add_argument(
            "--dry-run", action="store_true", help="show what would be done, change nothing"
        )
        cmd.add_argument("--json-output", action="store_true", help="print a JSON report on stdout")
        cmd.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        cmd.add_argument("-v", "--verbose", action="store_true", help="more detail on stderr")
        add_run_options(cmd, verbose=False)
        if verb == "destroy":
            cmd.add_argument(
                "--discover",
                action="store_true",
                help="find the manifest's VMs on the host by their pveplan tag (no store needed)",
            )
    return parser


def add_format_options(parser: argparse.ArgumentParser) -> None:
    """Output formats of `plan` and `show`; markdown is for pull-request comments."""
    parser.add_argument(
        "--format",
        choices=("text", "json", "markdown"),
        default="text",
        help="text (default), json, or markdown (collapsible sections, split into parts)",
    )
    parser.add_argument("--json", action="store_true", help="the same as --format json")
    parser.add_argument(
        "--max-chars",
        type=int,
        default=65_000,
        metavar="N",
        help="markdown: split into self-contained parts of at most N characters (65000)",
    )
    parser.add_argument(
        "--parts-dir",
        metavar="DIR",
        help="markdown: write each part to DIR/MANIFEST-HOST-part-NN.md instead of stdout",
    )


def add_run_options(parser: argparse.ArgumentParser, *, verbose: bool = True) -> None:
    """Flags of every command that runs steps."""
    parser.add_argument(
        "--parallelism", type=int, metavar="N", help="steps at once (default: the manifest's, 10)"
    )
    parser.add_argument(
        "--refresh",
        action="store_true",
        help="probe the real state of cached steps; re-run what drifted",
    )
    if verbose:
        parser.add_argument("-v", "--verbose", action="store_true", help="show step logs")


def add_manifest_options(parser: argparse.ArgumentParser) -> None:
    """The homestak-style manifest and host selection flags (-M, -H, --site-config)."""
    parser.add_argument(
        "-M",
        "--manifest",
        metavar="NAME",
        help="a manifest by name: manifests/NAME.pvp (preferred) or NAME.yaml in the site config",
    )
    parser.add_argument(
        "--manifest-file", metavar="FILE", help="a manifest by path (same as a FILE argument)"
    )
    parser.add_argument(
        "-H", "--host", metavar="[USER@]HOST", help="target PVE host (nodes/HOST.yaml)"
    )
    parser.add_argument("--site-config", metavar="DIR", help="site config directory")


def run(args: argparse.Namespace, console: Console) -> int:
    from dsl import DiagnosticError

    if args.command == "retired":  # set by main() for a retired scenario name
        console.error(
            f"error: {args.name!r} is a retired homestak scenario; use `pveplan {args.verb} "
            "-M MANIFEST -H HOST` instead"
        )
        return 1
    if args.command is None:
        build_parser().print_help(console.out)
        return 0
    try:
        module, function = COMMANDS[args.command]
        run_command = getattr(importlib.import_module(module, __package__), function)
        return run_command(args, console)
    except DiagnosticError as exc:
        console.diagnostics(exc.diagnostics)
        return 1
    except _executor_error() as exc:
        console.error(f"error: {exc}")
        return 1
    except Exception as exc:
        # The store's errors carry the same fields but (the store importing nothing of
        # ours) another class; import it only if the store was loaded at all.
        store = sys.modules.get("store")
        if store is not None and isinstance(exc, store.StoreError):
            console.diagnostics(exc.diagnostics)
            return 1
        raise


def _executor_error() -> tuple[type[BaseException], ...]:
    """The executor's user-facing errors, if it was loaded (it is imported lazily)."""
    channels = sys.modules.get("executor.channels")
    return (channels.ChannelError,) if channels is not None else ()
