"""The parser of `pveplan output`: the store's records of a workspace's nodes, in the
formats the next tool reads (Ansible, ssh)."""

from __future__ import annotations

import argparse

from ._parser import add_command, add_manifest_options

SITE = "--site-config examples/site-config"


def add_output_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    output = add_command(
        commands,
        "output",
        help="print the applied nodes' vmids, addresses and host keys (Ansible, ssh_config)",
        description="Every node of the workspace as the store records it after the last "
        "applies: vmid, address, pinned host key fingerprint, status, parent. No host is "
        "contacted (run `plan` to see drift first). `--format ansible-inventory` writes an "
        "Ansible YAML inventory, `--format ssh-config` a file to Include from ~/.ssh/config; "
        "both pin the host keys through a known_hosts file written next to -o FILE "
        "(or --known-hosts FILE).",
        examples=(
            f"pveplan output -M n2-tiered -H sim {SITE}",
            f"pveplan output -M n2-tiered -H sim {SITE} --json",
            f"pveplan output -M n2-tiered -H sim {SITE} --format ansible-inventory -o inventory.yml",
            f"pveplan output -M n2-tiered -H sim {SITE} --format ssh-config -o ~/.ssh/pveplan-n2",
        ),
    )
    output.add_argument("files", nargs="*", metavar="FILE", help="a manifest")
    add_manifest_options(output)
    output.add_argument(
        "--format",
        choices=("table", "json", "ansible-inventory", "ssh-config"),
        default="table",
        help="table (default), json, ansible-inventory (YAML) or ssh-config",
    )
    output.add_argument("--json", action="store_true", help="the same as --format json")
    output.add_argument(
        "-o", "--out", metavar="FILE", help="write FILE (atomically) instead of stdout"
    )
    output.add_argument(
        "--known-hosts",
        metavar="FILE",
        help="ansible-inventory, ssh-config: where to write the pinned host keys (default: "
        "FILE.known_hosts beside -o FILE, else known_hosts/ in the store's directory)",
    )
    output.add_argument(
        "--identity-file",
        metavar="KEY",
        help="ansible-inventory, ssh-config: the private key to log in with (e.g. pveplan's "
        "driver key, which the nodes' root and user accept)",
    )
