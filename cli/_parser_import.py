"""The parser of `pveplan import` (adopt existing VMs into the store); see cli/_import.py."""

from __future__ import annotations

import argparse

from ._parser import _seconds, add_command, add_manifest_options

SITE = "--site-config examples/site-config"


def add_import_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    command = add_command(
        commands,
        "import",
        help="adopt existing VMs (made outside pveplan) as the manifest's nodes",
        description="Record VMs that already exist on the host as the manifest's nodes, so "
        "the next apply changes only what differs instead of creating them. Each NODE=VMID "
        "is checked against the manifest, the store and one listing of the host (the VM "
        "must carry the node's name, be no other node's, not be recorded yet); its SSH host "
        "key is read from the guest through the QEMU guest agent (never trusted on first "
        "use), so a VM without a running agent is refused. Any refusal imports nothing "
        "(exit 1). The drift the next apply converges is shown as plan shows it. "
        "--discover proposes the pairs itself: VMs named like a node that also carry the "
        "manifest's tag, sit at the node's pinned vmid, or lie in --vmid-range. "
        "See docs/cli.md and docs/store.md.",
        examples=(
            f"pveplan import -M n1-push -H sim {SITE} edge=99001",
            f"pveplan import -M n1-push -H sim {SITE} --discover --dry-run",
            f"pveplan import -M workers-20 -H sim {SITE} --discover --vmid-range 99100-99199",
        ),
    )
    add_manifest_options(command)
    command.add_argument(
        "words",
        nargs="*",
        metavar="NODE=VMID",
        help="a node of the manifest and the existing VM that is it (a manifest FILE, "
        "ending in .pvp, .yaml or .yml, may be given here too)",
    )
    command.add_argument(
        "--discover",
        action="store_true",
        help="find the VMs from one listing of the host (by tag, name and vmid range)",
    )
    command.add_argument(
        "--vmid-range",
        metavar="A-B",
        help="with --discover: also take a VM named like a node when its vmid is in A..B",
    )
    command.add_argument(
        "--dry-run", action="store_true", help="show what would be imported; record nothing"
    )
    command.add_argument(
        "--lock-timeout",
        type=_seconds,
        metavar="SECONDS",
        help="wait up to SECONDS for another run's workspace lock (default: site.yaml's "
        "store.lock_timeout, else 0: refuse at once, naming the holder)",
    )
