"""Helpers for executor and simulator tests: a simulator root written by hand.

The root follows docs/simulator.md (state.json, hosts/NODE/, vms/NODE/VMID/) without the
simulated PVE commands, so channel and daemon tests depend on nothing but the daemon. The
daemon is a real subprocess started from sync code (pitfall 7); async test bodies run under
`run_trio`, which opens the asyncio bridge and bounds the whole body with `trio.fail_after`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
import trio

from pveplan.executor._bridge import open_loop
from pveplan.executor.channels import SshPool, SshTarget
from pveplan.sim import start_daemon, stop_daemon
from pveplan.sim._state import (
    SimRoot,
    address_for,
    empty_state,
    locked_state,
    vm_key,
    write_config,
    write_json_atomic,
)

T = TypeVar("T")
NODE = "sim"
VM_USER = "pveplan"


def run_trio(body: Callable[[], Awaitable[T]], *, timeout: float = 10.0) -> T:
    """Run `body` under trio inside the asyncio bridge, failing after `timeout` seconds."""

    async def main() -> T:
        with trio.fail_after(timeout):
            async with open_loop():
                return await body()

    return trio.run(main)


def wait_until(predicate: Callable[[], bool], *, timeout: float = 3.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.02)


def group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process is in process group `pgid`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in {"Z", "X"} and int(fields[2]) == pgid:
            return True
    return False


def _write_key(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)


@dataclass
class Sim:
    """One simulator root with host node `sim`, a client key, and (once started) its daemon."""

    root: SimRoot
    client_key: asyncssh.SSHKey
    info: dict[str, Any]

    @property
    def client_key_bytes(self) -> bytes:
        return self.client_key.export_private_key("openssh")

    @property
    def port(self) -> int:
        return int(self.info["port"])

    def pool(self, **options: Any) -> SshPool:
        return SshPool(self.client_key_bytes, **options)

    def host_target(self, *, user: str = "root", host_key: str | None = None) -> SshTarget:
        host = self.info["hosts"][NODE]
        return SshTarget(
            host=host["address"],
            port=self.port,
            user=user,
            host_key=host_key or host["host_key"],
            name=NODE,
        )

    def vm_address(self, vmid: int) -> str:
        with locked_state(self.root) as state:
            return str(state["vms"][vm_key(NODE, vmid)]["address"])

    def add_vm(self, vmid: int, *, status: str = "stopped") -> SshTarget:
        """A VM with its host key, authorized_keys for root and `pveplan`; its target."""
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        tree = self.root.vm_dir(NODE, vmid)
        _write_key(tree / "etc/ssh/ssh_host_ed25519_key", host_key.export_private_key("openssh"))
        public = self.client_key.export_public_key("openssh")
        for home in (tree / "root", tree / "home" / VM_USER):
            _write_key(home / ".ssh/authorized_keys", public, 0o644)
        (tree / "bin").mkdir(exist_ok=True)
        with locked_state(self.root) as state:
            counter = state["next_address"]
            state["next_address"] = counter + 1
            address = address_for(state["prefix"], counter)
            state["vms"][vm_key(NODE, vmid)] = {
                "vmid": vmid,
                "node": NODE,
                "name": f"vm{vmid}",
                "status": status,
                "config": {"name": f"vm{vmid}"},
                "lock": None,
                "started_at": None,
                "address": address,
            }
        return SshTarget(
            host=address,
            port=self.port,
            user=VM_USER,
            host_key=host_key.export_public_key("openssh").decode().strip(),
            name=f"vm{vmid}",
        )

    def set_status(self, vmid: int, status: str) -> None:
        with locked_state(self.root) as state:
            state["vms"][vm_key(NODE, vmid)]["status"] = status

    def set_faults(self, faults: list[dict[str, Any]]) -> None:
        write_config(self.root, {"faults": faults})

    def processes(self) -> list[dict[str, Any]]:
        try:
            lines = self.root.processes.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines]

    def pid_of(self, marker: str) -> int:
        """The pid (= process group) of the one exec whose command contains `marker`."""
        wait_until(lambda: any(marker in p["command"] for p in self.processes()), what=marker)
        (record,) = [p for p in self.processes() if marker in p["command"]]
        return int(record["pid"])


def make_sim(path: Path, *, start: bool = True) -> Sim:
    """A fresh root at `path` with host node `sim` (root may log in with the client key)."""
    root = SimRoot(path)
    root.path.mkdir(parents=True, exist_ok=True)
    state = empty_state(root)
    state["nodes"] = {NODE: {"address": address_for(state["prefix"], 1), "vmid": None}}
    state["next_address"] = 2
    write_json_atomic(root.state, state)
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    authorized = root.host_dir(NODE) / "root/.ssh/authorized_keys"
    _write_key(authorized, client_key.export_public_key("openssh"), 0o644)
    (root.host_dir(NODE) / "bin").mkdir(parents=True, exist_ok=True)
    sim = Sim(root=root, client_key=client_key, info={})
    if start:
        sim.info = start_daemon(root)
    return sim


def stop_sim(sim: Sim) -> None:
    """Stop the daemon and kill anything a test left running in its process groups."""
    stop_daemon(sim.root)
    for record in sim.processes():
        with contextlib.suppress(ProcessLookupError, PermissionError, KeyError):
            os.killpg(int(record["pid"]), signal.SIGKILL)
