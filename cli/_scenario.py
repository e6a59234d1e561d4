"""`pveplan scenario NAME` (also `--scenario NAME`, `scenario run NAME`): homestak's scenarios.

The registry of the names iac-driver users type: the scenarios pveplan runs, the ones
iac-driver renamed (they answer "Renamed to: ..." and exit 1, as iac-driver did), the
retired ones (their migration hint, exit 1), and the removed ones (unknown, with the
list). `pve-setup` and `user-setup` are plans against one host (`_scenario_run`); the
roundtrips are `pveplan test` with their manifest.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from . import Console

COMPAT = "(see docs/homestak-compat.md#scenarios)"


class Scenario(NamedTuple):
    name: str
    description: str
    runtime: int
    """iac-driver's expected runtime in seconds, shown by --list."""
    phases: tuple[tuple[str, str], ...]
    manifest: str | None = None
    """A roundtrip's manifest: the scenario is `pveplan test -M MANIFEST -H HOST`."""


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "pve-setup",
            "Install PVE (if needed) and configure host",
            180,
            (
                ("pve_keyring", "PVE's archive keyring (sha256 pinned)"),
                ("pve_repo", "PVE's apt repository"),
                ("pve_install", "Ensure PVE installed (proxmox-ve)"),
                ("bridge", "Bridge vmbr0 over eth0"),
                ("driver_key", "Authorise pveplan's SSH key for root"),
                ("api_token", "Create API token (into secrets.yaml)"),
                ("node_file", "Generate node config (nodes/HOST.yaml)"),
            ),
        ),
        Scenario(
            "user-setup",
            "Create homestak user",
            30,
            (
                ("user", "The user, with a home, bash and the sudo group"),
                ("sudoers", "sudo without a password"),
                ("user_keys", "The site's SSH keys in its authorized_keys"),
            ),
        ),
        Scenario(
            "push-vm-roundtrip",
            "Deploy VM with spec server vars, verify env injection via SSH, destroy",
            120,
            (("test", "pveplan test -M n1-push"),),
            "n1-push",
        ),
        Scenario(
            "pull-vm-roundtrip",
            "Deploy VM with pull mode, verify autonomous spec fetch + config apply, destroy",
            180,
            (("test", "pveplan test -M n1-pull"),),
            "n1-pull",
        ),
    )
}

RENAMED = {
    "spec-vm-push-roundtrip": "push-vm-roundtrip",
    "spec-vm-pull-roundtrip": "pull-vm-roundtrip",
    "spec-vm-roundtrip": "push-vm-roundtrip",
}
"""Names iac-driver renamed; it answered `Renamed to: NEW` and exit 1 (v0.47-v0.50)."""

RETIRED_MANIFESTS = {"vm": "n1-push", "nested-pve": "n2-tiered"}
"""The manifest iac-driver's migration hint named for a retired scenario's family."""

REMOVED = {
    "bootstrap-install": "moved to homestak's bootstrap installer",
    "pve-config": "a node's own config: `pveplan config apply` on the node",
    "packer-build": "image builds are not pveplan's",
}
"""Names that answer as unknown (with the list), plus where the job went."""


def run_scenario(args: argparse.Namespace, console: Console) -> int:
    from ._app import retired

    name = args.name
    if args.list or name in (None, "--list"):
        _print_list(console)
        if name is None and not args.list:
            console.print("\nUsage: pveplan --scenario NAME --remote ADDR | -H HOST")
        return 0
    if name in RENAMED:
        console.error(f"error: scenario {name!r} was renamed")
        console.error(f"  Renamed to: {RENAMED[name]}")
        return 1
    verb = retired(name)
    if verb is not None:
        console.error(f"error: scenario {name!r} was retired")
        manifest = RETIRED_MANIFESTS.get(name.rsplit("-", 1)[0], "MANIFEST")
        console.error(f"  Use: pveplan {verb} -M {manifest} -H HOST")
        console.error(f"hint: homestak's scenarios became verbs over manifests {COMPAT}")
        return 1
    scenario = SCENARIOS.get(name)
    if scenario is None:
        console.error(f"error: unknown scenario {name!r}")
        if name in REMOVED:
            console.error(f"hint: {name} was removed from iac-driver: {REMOVED[name]} {COMPAT}")
        _print_list(console, err=True)
        return 1
    if args.list_phases:
        console.print(f"Phases for scenario '{name}':")
        for phase, what in scenario.phases:
            console.print(f"  {phase}: {what}")
        return 0
    if args.local:
        console.error(
            "error: --local is not supported: pveplan sets a host up over SSH, recording "
            "each step, also this machine"
        )
        console.error(
            f'hint: use --remote 127.0.0.1 --ssh-host-key "$(cat /etc/ssh/ssh_host_ed25519_key.pub)" {COMPAT}'
        )
        return 1
    if scenario.manifest is not None:
        return _roundtrip(args, console, scenario)
    from ._scenario_run import run_host_scenario

    return run_host_scenario(args, console, name)


def _print_list(console: Console, *, err: bool = False) -> None:
    say = console.error if err else console.print
    say("Available scenarios:")
    for scenario in sorted(SCENARIOS.values()):
        runtime = scenario.runtime
        shown = f"~{runtime // 60}m" if runtime >= 60 else f"~{runtime}s"
        say(f"  {scenario.name:30} {shown:>6}  {scenario.description}")


def _roundtrip(args: argparse.Namespace, console: Console, scenario: Scenario) -> int:
    """`pveplan test -M MANIFEST -H HOST` with the flags given."""
    from ._app import build_parser, run

    if not args.host:
        console.error(f"error: scenario {scenario.name} needs a PVE host: -H HOST")
        return 1
    argv = ["test", "-M", str(scenario.manifest), "-H", args.host]
    for flag, on in (
        ("--json-output", args.json_output),
        ("--dry-run", args.dry_run),
        ("--yes", args.yes),
        ("--verbose", args.verbose),
    ):
        if on:
            argv.append(flag)
    if args.site_config:
        argv += ["--site-config", args.site_config]
    return run(build_parser().parse_args(argv), console)
