"""The parsers of the commands that change or serve hosts, and look after the store:
`apply`, `preflight`, homestak's `create` / `destroy` / `test`, `runs`, `store`, `sim`, `serve`,
`executor`, and `completion`.

Examples run from a clone of the repository against examples/site-config and its
simulated host `sim` (started on demand; `pveplan sim down` stops it), so a reader can
paste them; a test parses every one.
"""

from __future__ import annotations

import argparse

from ._completion import SHELLS, manifest_names
from ._homestak_flags import add_homestak_flags
from ._parser import (
    add_action,
    add_command,
    add_manifest_options,
    add_run_options,
    add_target_option,
    add_yes_option,
)
from ._report_files import add_report_options

SITE = "--site-config examples/site-config"


def add_run_parsers(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """apply, create, destroy, test, runs, store, sim, serve, executor, completion."""
    _add_apply(commands)
    _add_preflight(commands)
    _add_status(commands)
    _add_homestak_verbs(commands)
    _add_store(commands)
    _add_sim(commands)
    _add_serve(commands)

    executor = add_command(
        commands,
        "executor",
        help="run subplans for a driver (started over SSH on nested PVE hosts)",
        description="The remote executor: speaks pveplan's frame protocol on stdin/stdout. "
        "A driver starts it on a nested PVE host; see docs/remote.md.",
        examples=(
            f"pveplan apply -M n2-tiered -H sim {SITE} -y   # runs one on root-pve",
            "pveplan executor --stdio   # what the driver runs there, over SSH (not by hand)",
        ),
    )
    executor.add_argument("--stdio", action="store_true", help="serve one session on stdio")
    executor.add_argument("--home", metavar="DIR", help="root's home to use (default: $HOME)")
    executor.add_argument(
        "--warm",
        action="store_true",
        help="with --stdio: relay the session to this bundle's warm executor (the bundle's "
        "launcher does; elsewhere the session is served here)",
    )
    executor.add_argument(
        "--warm-daemon",
        action="store_true",
        help="be the warm executor: serve sessions on the bundle's unix socket until idle",
    )
    executor.add_argument("--ready-fd", type=int, metavar="FD", help=argparse.SUPPRESS)

    completion = add_command(
        commands,
        "completion",
        help="print a shell completion script (bash, zsh, fish)",
        description="Print the script that makes TAB complete pveplan's commands, flags, "
        "and the manifest (-M) and host (-H) names of the site config. Source it, or "
        "install it where the shell loads completions; see docs/cli.md.",
        examples=(
            "source <(pveplan completion bash)",
            "pveplan completion zsh > ~/.zfunc/_pveplan",
            "pveplan completion fish > ~/.config/fish/completions/pveplan.fish",
        ),
    )
    completion.add_argument("shell", choices=SHELLS, help="the shell: bash, zsh or fish")


def _add_apply(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    apply = add_command(
        commands,
        "apply",
        help="apply a manifest or a saved plan file to its host",
        description="Bring the host to the plan: run only the steps whose inputs changed "
        "(the rest is cached in the store), destroy nodes the manifest no longer has. "
        "Without a plan file it plans first, shows the diff and asks (on a terminal) "
        "unless --yes; a saved plan file (FILE.json) is refused when it is stale.",
        examples=(
            f"pveplan apply -M n1-push -H sim {SITE} -y",
            f"pveplan apply -M n1-push -H sim {SITE} -y --refresh -v",
            f"pveplan apply n2.json {SITE} -y --detailed-exitcode",
            f"pveplan apply n2.json {SITE} --require-signature approver.pub",
        ),
    )
    apply.add_argument(
        "files", nargs="*", metavar="FILE", help="a manifest, or a plan file (.json)"
    )
    add_manifest_options(apply)
    add_run_options(apply)
    add_target_option(apply)
    apply.add_argument("-v", "--verbose", action="store_true", help="show step logs")
    add_yes_option(apply)
    apply.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 when nothing had to change, 2 when changes were applied "
        "successfully, 1 on error",
    )
    apply.add_argument(
        "--require-signature",
        action="append",
        metavar="PUBKEY",
        help="refuse a plan file not signed by this key (an ssh-ed25519 line, or a file of "
        "them; repeatable; site.yaml's trusted_plan_keys count too)",
    )


def _add_preflight(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    preflight = add_command(
        commands,
        "preflight",
        help="check a host's reachability, certificate, token and privileges for a plan",
        description="Plan the manifest (changing nothing), then check what its apply needs "
        "from the host: over the API, that the endpoint answers, its certificate is the "
        "pinned one (or a CA's), the token is valid and holds every privilege the plan's "
        "steps need (each missing one named with its path); over SSH, SSH with the pinned "
        "key and pvesh. Exit 1 if anything is missing. See docs/cli.md.",
        examples=(
            f"pveplan preflight -M n1-push -H sim {SITE}",
            f"pveplan preflight -M n2-tiered -H sim {SITE} && pveplan apply -M n2-tiered -H sim {SITE} -y",
        ),
    )
    preflight.add_argument("files", nargs="*", metavar="FILE", help="a manifest")
    add_manifest_options(preflight)


def _add_status(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    status = add_command(
        commands,
        "status",
        help="every node's live state against what is applied (changes nothing)",
        description="Probe the host's VMs (one listing; nested hosts through their own "
        "executors, one listing each) and show, for every node of the manifest, whether it "
        "is in sync with what the store records as applied, drifted (each field, live and "
        "wanted), missing, never applied, or on a host that did not answer. Exit 1 when a "
        "host does not answer; see docs/cli.md.",
        examples=(
            f"pveplan status -M n1-push -H sim {SITE}",
            f"pveplan status -M n2-tiered -H sim {SITE} --detailed-exitcode",
            f"pveplan status -M n1-push -H sim {SITE} --json",
            f"pveplan status -M n1-push -H sim {SITE} --refresh=full",
        ),
    )
    status.add_argument("files", nargs="*", metavar="FILE", help="a manifest")
    add_manifest_options(status)
    status.add_argument(
        "--refresh",
        choices=("full",),
        help="--refresh=full also reads each applied VM's config (bridge, onboot, cloud-init "
        "user and keys: one call per VM; the default is one listing per host)",
    )
    status.add_argument("--json", action="store_true", help="the status as JSON")
    status.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 2 when anything differs: drift, missing or unapplied nodes, manifest changes",
    )


def _add_homestak_verbs(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """homestak's `create`, `destroy` and `test`, with its flags (`--manifest-json`, ...)."""
    for verb, what, examples in (
        (
            "create",
            "create the manifest's nodes (homestak's verb)",
            (
                f"pveplan create -M n1-push -H sim {SITE} -y",
                f"pveplan create -M n2-tiered -H sim {SITE} --dry-run",
                f"pveplan create -M n2-tiered -H sim {SITE} --preflight",
                f"pveplan create -M n3-deep -H sim {SITE} --depth 2 --vm-id root-pve=99901 -y",
            ),
        ),
        (
            "destroy",
            "destroy the manifest's nodes (homestak's verb)",
            (
                f"pveplan destroy -M n1-push -H sim {SITE} -y",
                f"pveplan destroy -M n1-push -H sim {SITE} --discover -y -v",
                f"pveplan destroy -M n1-push -H sim {SITE} --dry-run",
                f"pveplan destroy -M n1-push -H sim {SITE} -y --context-file ctx.json",
            ),
        ),
        (
            "test",
            "create, verify and destroy (homestak's verb)",
            (
                f"pveplan test -M n1-push -H sim {SITE} -y",
                f"pveplan test -M n2-tiered -H sim {SITE} -y --json-output > report.json",
                "pveplan test --list-phases",
                f"pveplan test -M n1-push -H sim {SITE} -y --timeout 600 --skip destroy",
            ),
        ),
    ):
        cmd = add_command(
            commands,
            verb,
            help=what,
            description=f"{what[:1].upper()}{what[1:]}. With --dry-run: show the plan diff. "
            "Checks the site config and the host first (--skip-preflight: don't; --preflight: "
            "only that). iac-driver's `manifest apply|destroy|test` forms work too; see "
            "docs/cli.md and docs/homestak-compat.md.",
            examples=examples,
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
        add_yes_option(cmd)
        cmd.add_argument("-v", "--verbose", action="store_true", help="more detail on stderr")
        add_run_options(cmd)
        add_report_options(cmd)  # -r/--report-dir (cli/_report_files.py)
        add_homestak_flags(cmd, verb)
        if verb == "destroy":
            add_target_option(cmd)
            cmd.add_argument(
                "--discover",
                action="store_true",
                help="skip the recorded plan: find the manifest's VMs on the host by their "
                "pveplan tag, or a node's name at its vmid (see docs/cli.md)",
            )


def _add_store(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """`runs` (what happened) and `store` (keeping the store sound and small)."""
    examples = (
        "pveplan runs list --workspace n1-push@sim",
        "pveplan runs list --limit 5 --json",
        "pveplan runs show 1",
    )
    runs = add_command(
        commands,
        "runs",
        help="list recorded runs, or show one's events",
        description="The runs recorded in the store: every apply, destroy and test, with "
        "its steps' events and logs.",
        examples=examples,
    )
    runs_verbs = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    runs_list = add_action(
        runs_verbs, "runs", "list", help="the latest runs, newest first", examples=examples
    )
    runs_list.add_argument("--workspace", metavar="MANIFEST@HOST", help="only this workspace")
    runs_list.add_argument("--limit", type=int, default=20, metavar="N")
    runs_list.add_argument("--json", action="store_true")
    runs_show = add_action(
        runs_verbs, "runs", "show", help="one run's events and logs", examples=examples
    )
    runs_show.add_argument("id", type=int, metavar="ID")
    runs_show.add_argument("--json", action="store_true")

    examples = (
        "pveplan store verify",
        "pveplan store gc --keep-runs 5",
        "pveplan store unlock n2-tiered@father --yes",
        "pveplan store copy ~/.local/state/pveplan postgresql://pveplan@db.lab/pveplan",
    )
    store = add_command(
        commands,
        "store",
        help="check, repair, clean, unlock or copy the store",
        description="The store ($PVEPLAN_STORE, else site.yaml's store.url, else the XDG "
        "state directory): `verify` re-hashes every object, checks every row's checksum and "
        "the database; `repair` drops the rows whose checksums fail (never guessing what "
        "they held); `gc` removes what no applied state, resource or recent run needs; "
        "`unlock` breaks a workspace lock whose holder is gone; `copy` moves a store's "
        "records into an empty one (local to PostgreSQL, or back). See docs/store.md.",
        examples=examples,
    )
    store_verbs = store.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    add_action(
        store_verbs,
        "store",
        "verify",
        help="re-hash every object; report damage",
        examples=examples,
    )
    repair = add_action(
        store_verbs,
        "store",
        "repair",
        help="drop rows whose checksums fail (verify lists them first)",
        examples=examples,
    )
    repair.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    gc = add_action(
        store_verbs, "store", "gc", help="remove objects nothing reachable needs", examples=examples
    )
    gc.add_argument(
        "--keep-runs", type=int, default=10, metavar="N", help="keep the plans of the last N runs"
    )
    unlock = add_action(
        store_verbs,
        "store",
        "unlock",
        help="break a workspace lock whose holder is gone (logged as a run)",
        examples=examples,
    )
    unlock.add_argument("workspace", metavar="MANIFEST@HOST")
    unlock.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    copy = add_action(
        store_verbs,
        "store",
        "copy",
        help="copy every record of SRC into the empty store DST, verifying each object",
        examples=examples,
    )
    copy.add_argument("source", metavar="SRC", help="a store directory or postgresql:// URL")
    copy.add_argument("destination", metavar="DST", help="a store directory or postgresql:// URL")
    for action in store_verbs.choices.values():
        action.add_argument(
            "--site-config", metavar="DIR", help="the site config whose store.url names the store"
        )


def _add_sim(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    examples = (
        "pveplan sim up",
        "pveplan sim status --json",
        "pveplan sim ssh edge -- uname -a   # edge: the VM of n1-push, once applied",
        "pveplan sim down",
    )
    sim = add_command(
        commands,
        "sim",
        help="the PVE simulator (started on demand by apply)",
        description="Simulated PVE hosts and VMs on loopback, under the store (or "
        "$PVEPLAN_SIM_DIR / --sim-dir). See docs/simulator.md.",
        examples=examples,
    )
    sim.add_argument("--sim-dir", metavar="DIR", help="the simulator's directory")
    verbs = sim.add_subparsers(dest="sim_command", metavar="ACTION", required=True)
    up = add_action(verbs, "sim", "up", help="start the simulator (idempotent)", examples=examples)
    up.add_argument("nodes", nargs="*", metavar="NODE", help="host nodes (default: sim)")
    up.add_argument(
        "--bare",
        action="append",
        default=[],
        metavar="NAME",
        help="also a bare Debian machine NAME, without PVE (for `scenario pve-setup`)",
    )
    up.add_argument("--latency", type=float, metavar="S", help="seconds per PVE command")
    up.add_argument(
        "--agent-delay", type=float, metavar="S", help="seconds from start to a guest address"
    )
    add_action(verbs, "sim", "down", help="stop the simulator", examples=examples)
    status = add_action(
        verbs, "sim", "status", help="the simulator's hosts and VMs", examples=examples
    )
    status.add_argument("--json", action="store_true")
    ssh = add_action(verbs, "sim", "ssh", help="run a command on a simulated VM", examples=examples)
    ssh.add_argument("name", metavar="NAME", help="the VM's name")
    ssh.add_argument("--user", default="homestak", help="login user (default: homestak)")
    ssh.add_argument(
        "remote_command", nargs=argparse.REMAINDER, metavar="COMMAND", help="default: hostname"
    )


def _add_serve(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve = add_command(
        commands,
        "serve",
        help="serve pull nodes their specs over HTTPS (the spec server)",
        description="Publish the spec of every pull-mode node in the site config's manifests "
        "over HTTPS, for nodes that configure themselves (docs/pull.md). The certificate is "
        "made on first start and kept in the store; its fingerprint is printed, and nodes pin "
        "it. SIGHUP reloads the site config; SIGTERM or Ctrl-C stops. `apply` starts a server "
        "by itself when a plan has pull nodes and none is running.",
        examples=(
            f"pveplan serve {SITE}",
            f"pveplan serve {SITE} --bind 127.0.0.1 --port 44443",
        ),
    )
    manifest = serve.add_argument(
        "-M", "--manifest", action="append", metavar="NAME", help="also a manifest by name"
    )
    manifest.completer = manifest_names  # type: ignore[attr-defined]
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
