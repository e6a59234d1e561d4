"""`pveplan sim up | down | status | ssh NAME`: the simulator by hand.

`apply` starts the simulator on demand; these are for looking at it, setting its
latencies and stopping it.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from pveplan.planner import PlanError

from ._session import driver_key, sim_root
from ._state import store_location

if TYPE_CHECKING:
    from pveplan.sim import SimRoot

    from . import Console


def run_sim(args: argparse.Namespace, console: Console) -> int:
    from pveplan.sim import SimRoot, daemon_info, read_config, read_state, stop_daemon, write_config

    root = SimRoot(args.sim_dir or sim_root(console, store_location(console).local_dir))
    if args.sim_command == "up":
        from pveplan.sim import bare_name_problem, ensure_simulator

        for name in getattr(args, "bare", None) or []:
            if (problem := bare_name_problem(name)) is not None:
                raise PlanError.at(None, f"--bare {name}: {problem}", "use letters, digits, -")
        config = read_config(root)
        if args.latency is not None:
            config["latency"] = args.latency
        if args.agent_delay is not None:
            config["agent_delay"] = args.agent_delay
        write_config(root, config)
        public = driver_key(console)[1]
        info = ensure_simulator(root.path, args.nodes or ["sim"], public)
        console.print(f"simulator up at {root.path} (pid {info['pid']}, port {info['port']})")
        for node, entry in sorted(info["hosts"].items()):
            console.print(f"  host {node}: {entry['address']}")
        for name in getattr(args, "bare", None) or []:
            from pveplan.sim import ensure_bare_host

            try:
                bare = ensure_bare_host(root.path, name, public)
            except ValueError as exc:  # the name is a PVE host's already
                raise PlanError.at(None, f"cannot add bare machine {name}: {exc}") from None
            hint = f"pveplan scenario pve-setup --remote {bare.address}"
            console.print(f"  bare {bare.name}: {bare.address} (Debian; PVE with: {hint})")
        return 0
    if args.sim_command == "down":
        stopped = stop_daemon(root)
        console.print("simulator stopped" if stopped else "simulator was not running")
        return 0
    if args.sim_command == "status":
        info = daemon_info(root)
        state = read_state(root)
        summary = {
            "root": str(root.path),
            "running": info is not None,
            "pid": info["pid"] if info else None,
            "port": info["port"] if info else None,
            "hosts": sorted(state["nodes"]),
            "vms": [
                {
                    "key": key,
                    "name": vm.get("name"),
                    "status": vm.get("status"),
                    "address": vm.get("address"),
                }
                for key, vm in sorted(state["vms"].items())
            ],
        }
        if args.json:
            console.print(json.dumps(summary, indent=2, sort_keys=True))
            return 0
        console.print(
            f"simulator at {root.path}: {'running, pid ' + str(summary['pid']) if info else 'stopped'}"
        )
        for vm in summary["vms"]:
            console.print(
                f"  {vm['key']:<16} {vm['name'] or '-':<20} {vm['status']:<8} {vm['address']}"
            )
        return 0
    return _ssh(args, console, root)


def _ssh(args: argparse.Namespace, console: Console, root: SimRoot) -> int:
    """Run a command on a simulated VM as its cloud-init user, with its pinned key."""

    from pveplan.executor import ChannelError, SshTarget, run_ssh_command
    from pveplan.sim import daemon_info, read_state

    info = daemon_info(root)
    if info is None:
        raise PlanError.at(None, "the simulator is not running", "start it with `pveplan sim up`")
    state = read_state(root)
    vm = next((v for v in state["vms"].values() if v.get("name") == args.name), None)
    if vm is None:
        raise PlanError.at(None, f"no simulated VM named {args.name!r}")
    key_path = root.vm_dir(vm["node"], vm["vmid"]) / "etc" / "ssh" / "ssh_host_ed25519_key.pub"
    if not key_path.exists():
        raise PlanError.at(None, f"VM {args.name} has not booted yet")
    private, _ = driver_key(console)
    command = [w for w in args.remote_command if w != "--"] or ["hostname"]
    target = SshTarget(
        host=vm["address"],
        port=info["port"],
        user=args.user,
        host_key=key_path.read_text().strip(),
        name=args.name,
    )

    try:
        result = run_ssh_command(private, target, command, timeout=60)
    except ChannelError as exc:
        raise PlanError.at(None, str(exc)) from None
    console.out.write(result.stdout.decode(errors="replace"))
    console.err.write(result.stderr.decode(errors="replace"))
    return result.exit_status
