"""Running `pve-setup` / `user-setup`: the host, its plan, one recorded run, the report.

The host is `--remote [USER@]ADDR[:PORT]` (its host key pinned with `--ssh-host-key`, or
known to the simulator when ADDR is one of its bare machines) or `-H HOST` (a node file
that pins its key). The plan (`planner.pve_setup_plan` / `user_setup_plan`) runs against
the workspace `scenario.NAME@HOST` under its lock, like any apply: what ran is recorded,
so the next run with nothing changed runs nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING, Any

from pveplan.planner import PlanError

from ._session import driver_key, open_run_store, run_trio, sim_root
from ._state import store_location

if TYPE_CHECKING:
    from pveplan.executor import HostInfo, RunReport
    from pveplan.planner import HostTarget, Plan, SiteConfig

    from . import Console

COMPAT = "(see docs/homestak-compat.md#scenarios)"
PHASE_STATUS = {"ok": "passed", "cached": "passed", "failed": "failed"}
"""iac-driver's phase statuses: a cached step is a phase that had nothing to do (passed)."""


def phases_of(plan: Plan, report: RunReport | None) -> list[tuple[str, str, float]]:
    """Each step as a phase (named after its address), in plan order; `pending` for a
    step of a dry run, `skipped` for one the run never reached."""
    outcomes = {o.address: o for o in report.outcomes} if report is not None else {}
    out = []
    for step in plan.steps:
        name = step.address.split(".", 1)[1]
        outcome = outcomes.get(step.address)
        if report is None:
            out.append((name, "pending", 0.0))
        elif outcome is None:
            out.append((name, "skipped", 0.0))
        else:
            out.append((name, PHASE_STATUS.get(outcome.status, "skipped"), outcome.duration))
    return out


def run_host_scenario(args: argparse.Namespace, console: Console, name: str) -> int:
    from pveplan.planner import pve_setup_plan, user_setup_plan

    from ._select import SiteCache, site_root

    site = SiteCache().get(site_root(args, console, None))
    public = driver_key(console)[1]
    target, info, simulated = resolve_target(args, console, site, store_location(console).local_dir)
    if name == "pve-setup":
        keyring = keyring_sha256(args, simulated)
        plan = pve_setup_plan(target, public, keyring, bridge=_bridge(site))
    else:
        keys = site.secrets.keys("ssh_keys")
        user = args.user or site.site.defaults.vm_user or "homestak"
        plan = user_setup_plan(target, site.secrets.reveal, keys, user=user)
    started = time.time()
    if args.dry_run:
        console.print(f"pveplan: scenario {name} on {target.name} (dry run, plan {plan.hash})")
        for phase, _status, _ in phases_of(plan, None):
            console.print(f"  [ OK ] {phase}")
        if args.json_output:
            _print_json(console, name, phases_of(plan, None))
        return 0
    report = _execute(args, console, site, plan, info)
    seconds = time.time() - started
    failed = [o for o in report.outcomes if o.status == "failed"]
    for outcome in failed:
        console.error(f"error: {outcome.address}: {outcome.error}")
    from pveplan.executor import summary

    out = console.err if args.json_output else console.out
    out.write(summary(report, seconds, "apply") + "\n")
    written = [o.outputs["node_file"] for o in report.outcomes if "node_file" in o.outputs]
    if report.status == "ok" and written:
        out.write(f"node config: {site.root / written[0]}\n")
    made = [o for o in report.outcomes if o.address == "host.api_token" and o.status == "ok"]
    if made:
        console.error(
            f"hint: the API token is {made[0].outputs.get('token_id')}, with only the privileges "
            f"pveplan needs (iac-driver makes root@pam!tofu, with root's) {COMPAT}"
        )
    from ._homestak_report import Phase
    from ._report_files import emit_scenario_report

    errors = {o.address.split(".", 1)[1]: o.error for o in failed}
    phases = [
        Phase(name=phase, status=status, duration=duration, message=errors.get(phase) or "")
        for phase, status, duration in phases_of(plan, report)
    ]
    return emit_scenario_report(
        args,
        console,
        name,
        host=target.name,
        started=started,
        phases=phases,
        success=report.status == "ok",
        error=failed[0].error if failed else None,
    )


def _print_json(console: Console, name: str, phases: list[tuple[str, str, float]]) -> None:
    """A dry run's `--json-output`: every phase pending, nothing written."""
    from ._homestak_report import Phase, scenario_report

    pending = [Phase(name=n, status=status, duration=d) for n, status, d in phases]  # type: ignore[arg-type]
    console.out.write(json.dumps(scenario_report(name, True, 0.0, pending), indent=2) + "\n")


def keyring_sha256(args: argparse.Namespace, simulated: bool) -> str:
    """The pinned sha256 of PVE's archive keyring: `--pve-keyring-sha256`, or, for the
    simulator's own machine, the sum of what its simulated internet serves."""
    from pveplan.planner import PVE_KEYRING_URL

    given = getattr(args, "pve_keyring_sha256", None)
    if given:
        return str(given).strip().lower()
    if simulated:
        import hashlib

        from pveplan.sim import download_bytes

        return hashlib.sha256(download_bytes(PVE_KEYRING_URL)).hexdigest()
    raise PlanError.at(
        None,
        "PVE's archive keyring is not pinned",
        f"pass --pve-keyring-sha256 HEX: the sha256 PVE's guide gives for {PVE_KEYRING_URL} "
        f"(pveplan installs no download it cannot check; iac-driver's playbook did) {COMPAT}",
    )


def _bridge(site: SiteConfig) -> str:
    return site.site.defaults.bridge or "vmbr0"


def _execute(
    args: argparse.Namespace, console: Console, site: SiteConfig, plan: Plan, info: HostInfo
) -> RunReport:
    from pveplan.executor import PlainDisplay, run_workspace
    from pveplan.planner import canonical, workspace_name

    stream = console.err if args.json_output else console.out
    display = PlainDisplay(stream, verbose=bool(args.verbose))
    display.begin(plan, None)
    workspace = workspace_name(plan.manifest, plan.host)
    try:
        with open_run_store(console) as store, store.lock_workspace(workspace, plan=plan.hash):
            plan_object = store.put_object(canonical(plan))

            async def body(services: Any) -> RunReport:
                return await run_workspace(plan, plan_object, services, display, verb="apply")

            return run_trio(console, store, workspace, {plan.host: info}, site, body)
    finally:
        display.close()


def resolve_target(
    args: argparse.Namespace, console: Console, site: SiteConfig, store_dir: Any
) -> tuple[HostTarget, HostInfo, bool]:
    """The machine to set up, how to reach it (its SSH host key pinned), and whether it
    is one of the simulator's bare machines."""
    from pveplan.executor import HostInfo
    from pveplan.planner import HostTarget

    if args.host:
        config = site.host(args.host)  # PlanError listing the hosts when unknown
        name, user, address = args.host, config.ssh_user or "root", config.ssh_host
        port: int | None = config.ssh_port
        host_key = config.ssh_host_key or args.ssh_host_key
        where = f"-H {args.host}"
    elif args.remote:
        user, address, port = parse_remote(args.remote)
        name, host_key, where = address, args.ssh_host_key, f"--remote {args.remote}"
    else:
        raise PlanError.at(
            None,
            "a scenario needs the host to set up",
            f"name it: --remote [USER@]ADDR[:PORT] or -H HOST (homestak's --local: {COMPAT})",
        )
    if user != "root":
        raise PlanError.at(
            None,
            f"{where}: pveplan sets a host up as root, not {user}",
            f"log in as root (root@{address}; its authorized_keys needs pveplan's key) {COMPAT}",
        )
    from pveplan.sim import SimRoot, bare_host_at

    bare = bare_host_at(SimRoot(sim_root(console, store_dir)), address)
    if bare is not None and host_key is None:  # the simulator vouches for its own machine
        address, host_key = bare.address, bare.host_key
        port = bare.port if args.host or port is None else port
    simulated = bare is not None and host_key == bare.host_key
    if host_key is None:
        raise PlanError.at(
            None,
            f"{address}'s SSH host key is not pinned",
            "pass --ssh-host-key 'ssh-ed25519 AAAA...' (check it on the host's console: cat "
            "/etc/ssh/ssh_host_ed25519_key.pub); pveplan never trusts a host key on first use "
            f"(iac-driver did not check it) {COMPAT}",
        )
    target = HostTarget(
        name=name, address=address, ssh_port=port or 22, ssh_user=user, ssh_host_key=host_key
    )
    info = HostInfo(
        name=name,
        pve_node=name,
        ssh_host=address,
        ssh_port=target.ssh_port,
        ssh_user=user,
        host_key=host_key,
        vm_ssh_port=target.ssh_port,
    )
    return target, info, simulated


def parse_remote(text: str) -> tuple[str, str, int | None]:
    """`[USER@]ADDR[:PORT]` -> (user, address, port or None); root by default."""
    user, _, rest = text.rpartition("@")
    address, port = rest, None
    if rest.count(":") == 1:
        address, _, digits = rest.partition(":")
        if not digits.isdigit() or not 0 < int(digits) < 65536:
            raise PlanError.at(None, f"--remote {text}: the port must be a number 1-65535")
        port = int(digits)
    if not address:
        raise PlanError.at(None, f"--remote {text}: no address")
    return user or "root", address, port
