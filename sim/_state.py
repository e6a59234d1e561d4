"""The simulator root on disk: its layout, its state under a lock, its settings.

Simulated commands run in several processes (the daemon, which answers host tools
in-process; guest tools, runcmd runners, tests), so the state is on disk, guarded by
`fcntl.flock`: shared to read, exclusive to change. It is state.json plus a journal of
the changes since (`_statefile`), so a killed writer leaves the old state or the new one
and a change costs what it changes, not the whole state. See docs/simulator.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import xxhash

from pveplan.sim import _statefile

STATE_VERSION = 1
ADDRESSES_PER_BLOCK = 250


class SimRoot:
    """Paths inside one simulator root (nothing here touches the disk)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path).absolute()

    @property
    def state(self) -> Path:
        return self.path / "state.json"

    @property
    def lock(self) -> Path:
        return self.path / "state.lock"

    @property
    def journal(self) -> Path:
        return self.path / "state.journal"

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def daemon(self) -> Path:
        return self.path / "daemon.json"

    @property
    def calls(self) -> Path:
        return self.path / "calls.jsonl"

    @property
    def processes(self) -> Path:
        return self.path / "processes.jsonl"

    def host_dir(self, node: str) -> Path:
        return self.path / "hosts" / node

    def vm_dir(self, node: str, vmid: int) -> Path:
        return self.path / "vms" / node / str(vmid)


BARE_MACHINES = "@bare"
"""The pseudo node that bare Debian machines (`sim._bare`) are recorded under in `vms`:
no PVE host has this name (`@` is no valid node name), so no host lists them, and the
machines are up as long as the simulator is, as a physical machine is."""


def vm_key(node: str, vmid: int) -> str:
    """The key of a VM in `state["vms"]`: vmids are unique per (nested) cluster only."""
    return f"{node}/{vmid}"


def address_prefix(root: SimRoot) -> str:
    """`127.X`, X from a hash of the root's path: two simulators get different addresses."""
    octet = 16 + xxhash.xxh32_intdigest(str(root.path).encode()) % 224
    return f"127.{octet}"


def address_for(prefix: str, counter: int) -> str:
    """The `counter`-th address of a simulator (counter >= 1)."""
    return f"{prefix}.{counter // ADDRESSES_PER_BLOCK}.{counter % ADDRESSES_PER_BLOCK + 1}"


def empty_state(root: SimRoot) -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "prefix": address_prefix(root),
        "next_address": 1,
        "nodes": {},
        "vms": {},
        "tasks": {},
        "storage": {},
        "tokens": {},
        "network": {},
    }


def host_vm(state: dict[str, Any], node: str) -> dict[str, Any] | None:
    """The VM that nested PVE host `node` runs in (None for a top-level host).

    `parent` names the node the VM runs on; a node recorded without one (an older state)
    is matched by its vmid and address, which it shares with its VM.
    """
    info = state["nodes"].get(node) or {}
    vmid = info.get("vmid")
    if vmid is None:
        return None
    parent = info.get("parent")
    if parent is not None:
        return state["vms"].get(vm_key(parent, vmid))
    return next(
        (
            vm
            for vm in state["vms"].values()
            if vm["vmid"] == vmid and vm.get("address") == info.get("address")
        ),
        None,
    )


def nested_host(state: dict[str, Any], node: str, vmid: int) -> str | None:
    """The name of the PVE host that VM `vmid` on `node` has become, if any."""
    vm = state["vms"].get(vm_key(node, vmid))
    for name in state["nodes"]:
        if vm is not None and host_vm(state, name) is vm:
            return name
    return None


def host_chain_running(state: dict[str, Any], node: str) -> bool:
    """Whether host `node` is up: a top-level host always is, a nested one while its VM
    runs and the host of that VM is up, to the top.

    A guest is reachable only while this holds for its node: stopping a VM that is a PVE
    host takes its guests off the network without changing their recorded status, as if
    the whole nested world were suspended with it.
    """
    seen: set[str] = set()
    while node not in seen:
        seen.add(node)
        if node == BARE_MACHINES:  # a bare machine's PVE host: on bare metal, always up
            return True
        if node not in state["nodes"]:
            return False
        if state["nodes"][node].get("vmid") is None:
            return True
        vm = host_vm(state, node)
        if vm is None or vm.get("status") != "running":
            return False
        node = vm["node"]
    return False  # a cycle: no host at the top


def allocate_address(state: dict[str, Any]) -> str:
    """A fresh loopback address from the state's counter (mutates `state`)."""
    counter = state["next_address"]
    state["next_address"] = counter + 1
    return address_for(state["prefix"], counter)


@contextlib.contextmanager
def _flock(root: SimRoot, mode: int) -> Iterator[None]:
    root.path.mkdir(parents=True, exist_ok=True)
    fd = os.open(root.lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def read_state(root: SimRoot) -> dict[str, Any]:
    """A consistent snapshot of the state (an empty one if the root has none yet).

    Its `vms` and `tasks` are mappings whose entries are decoded when first used
    (`_statefile.Shards`), so a snapshot costs nothing per VM."""
    return _statefile.read(root.path, empty_state(root))


@contextlib.contextmanager
def locked_state(root: SimRoot) -> Iterator[dict[str, Any]]:
    """The state, to change in place; what changed is written back when the block succeeds
    (one journal line, `_statefile`), nothing when it raises."""
    with _statefile.locked(root.path, empty_state(root)) as state:
        yield state


def write_json_atomic(path: Path, data: Any) -> None:
    """Write `data` as JSON to `path` by tmp + rename: a reader, or a writer killed on the
    way, sees the old file or the new one. No fsync: a simulator models no power loss, and
    a VM's first start writes a dozen of these (16 ms each on a busy disk). The tmp name
    has the thread too: the daemon runs host tools in threads."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w") as handle:
        json.dump(data, handle, sort_keys=True, separators=(",", ":"))
    os.replace(tmp, path)


DEFAULT_CONFIG: dict[str, Any] = {
    "latency": 0.0,
    "agent_delay": 0.0,
    # Seconds an import or a full clone takes per GiB copied (a linked clone copies
    # nothing): 0 keeps tests fast; a benchmark sets it to compare the two.
    "copy_seconds_per_gib": 0.0,
    "faults": [],
    # Host tools answered in the daemon's threads (`_inproc`): off by default until a race
    # seen once in CI (a parallel destroy of 20 VMs ended in a traceback inside an
    # in-process `pvesh delete`) is found; each command is then a process, as before.
    "inproc": False,
    "idle_timeout": 3600.0,  # seconds without SSH or state changes before the daemon stops
}


def read_config(root: SimRoot) -> dict[str, Any]:
    """The simulator's settings (defaults where the file is missing or silent)."""
    try:
        data = json.loads(root.config.read_text())
    except FileNotFoundError:
        data = {}
    return {**DEFAULT_CONFIG, **data}


def write_config(root: SimRoot, config: dict[str, Any]) -> None:
    root.path.mkdir(parents=True, exist_ok=True)
    with _flock(root, fcntl.LOCK_EX):
        write_json_atomic(root.config, {**DEFAULT_CONFIG, **config})


def take_fault(
    root: SimRoot, op: str, *, vmid: int | None = None, name: str | None = None
) -> str | None:
    """The message of the first fault matching (op, vmid, name), counting it down; or None."""
    with _flock(root, fcntl.LOCK_EX):
        try:
            config = {**DEFAULT_CONFIG, **json.loads(root.config.read_text())}
        except FileNotFoundError:
            return None
        for fault in config["faults"]:
            if fault.get("op") != op:
                continue
            if fault.get("vmid") is not None and fault["vmid"] != vmid:
                continue
            if fault.get("name") is not None and fault["name"] != name:
                continue
            times = fault.get("times")
            if times is not None:
                if times <= 0:
                    continue
                fault["times"] = times - 1
                write_json_atomic(root.config, config)
            return str(fault.get("message", f"simulated {op} failure"))
    return None


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line (O_APPEND: concurrent writers do not interleave short lines)."""
    line = json.dumps({**record, "at": time.time()}, sort_keys=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
