"""The `scenario` command's flags: homestak's scenarios (`--scenario NAME` and the other
forms are rewritten to it by `_scenario_argv`)."""

from __future__ import annotations

import argparse

from ._parser import add_command
from ._report_files import add_report_options

EXAMPLES = (
    "pveplan scenario pve-setup --remote 192.0.2.10 --ssh-host-key 'ssh-ed25519 AAAA...'",
    "pveplan scenario user-setup -H pve1 --json-output",
    "pveplan scenario push-vm-roundtrip -H sim --yes",
    "pveplan scenario --list",
)


def add_scenario_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cmd = add_command(
        commands,
        "scenario",
        help="run one of homestak's scenarios (pve-setup, user-setup, ...) as a plan",
        description=(
            "Run a homestak scenario. pve-setup and user-setup are plans of idempotent steps "
            "against one host, recorded in the store like any run: a second run with nothing "
            "changed runs nothing. The roundtrip scenarios run `pveplan test` with their "
            "manifest. Without NAME (or with --list), list the scenarios. iac-driver's forms "
            "work too: --scenario NAME (-S NAME), scenario run NAME, --list-scenarios."
        ),
        examples=EXAMPLES,
    )
    cmd.add_argument("name", nargs="?", metavar="NAME", help="the scenario (see --list)")
    cmd.add_argument("--list", action="store_true", help="list the scenarios and exit")
    cmd.add_argument("--list-phases", action="store_true", help="list the scenario's phases")
    where = cmd.add_mutually_exclusive_group()
    where.add_argument(
        "--remote",
        metavar="[USER@]ADDR[:PORT]",
        help="the Debian host to set up, over SSH (its host key: --ssh-host-key)",
    )
    where.add_argument("-H", "--host", help="a host of the site config (nodes/ or hosts/)")
    where.add_argument(
        "--local", action="store_true", help="iac-driver's local mode (not supported: see hint)"
    )
    cmd.add_argument(
        "--ssh-host-key",
        metavar="LINE",
        help="the host's SSH public host key, pinned (a simulated machine's is known)",
    )
    cmd.add_argument(
        "--pve-keyring-sha256",
        metavar="HEX",
        help="pve-setup: the sha256 of PVE's archive keyring, pinned (a simulated machine's "
        "is known)",
    )
    cmd.add_argument("--user", "--homestak-user", dest="user", help="user-setup's user")
    cmd.add_argument("--site-config", help="the site config directory")
    cmd.add_argument("--json-output", action="store_true", help="a JSON report on stdout")
    add_report_options(cmd)
    cmd.add_argument("--dry-run", action="store_true", help="show the phases, change nothing")
    cmd.add_argument("--yes", "-y", action="store_true", help="do not ask")
    cmd.add_argument("--verbose", "-v", action="store_true", help="log every step")
