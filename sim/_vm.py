"""Inside a simulated VM: its tree and the state files its guest tools keep.

`Guest` is one VM as the guest tools see it (`vms/NODE/VMID/`, state under
`var/lib/sim/*.json`, changed under the guest's lock, as concurrent SSH sessions may run
tools at once); the constants here are what more than one tool knows of a Debian image.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pveplan.sim._state import SimRoot, write_json_atomic

DEFAULT_TIMEZONE = "Etc/UTC"
SYSTEM_GROUPS = {
    "root": 0,
    "adm": 4,
    "dialout": 20,
    "cdrom": 24,
    "floppy": 25,
    "sudo": 27,
    "audio": 29,
    "dip": 30,
    "video": 44,
    "plugdev": 46,
    "staff": 50,
    "users": 100,
    "netdev": 106,
    "systemd-journal": 999,
}
BASE_SERVICES = ("cloud-init", "cron", "qemu-guest-agent", "ssh", "systemd-timesyncd")
SUDOERS = Path("etc/sudoers")
SUDOERS_D = Path("etc/sudoers.d")
CLOUD_INIT_SUDOERS = SUDOERS_D / "90-cloud-init-users"


class Guest:
    """One simulated VM's tree, and its state files under `var/lib/sim/`."""

    def __init__(self, root: SimRoot, node: str, vmid: int) -> None:
        self.root = root
        self.node = node
        self.vmid = vmid
        self.dir = root.vm_dir(node, vmid)
        self.sim = self.dir / "var" / "lib" / "sim"

    @property
    def caller(self) -> str:
        """Who runs the command: the login user the daemon set, root when unset."""
        return os.environ.get("USER") or os.environ.get("LOGNAME") or "root"

    def read(self, name: str) -> dict[str, Any]:
        try:
            return json.loads((self.sim / f"{name}.json").read_text())
        except FileNotFoundError:
            return {}

    @contextlib.contextmanager
    def edit(self, name: str) -> Iterator[dict[str, Any]]:
        """A state file to change in place, under the guest's lock (concurrent SSH runs)."""
        self.sim.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.sim / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = self.read(name)
            yield data
            write_json_atomic(self.sim / f"{name}.json", data)
        finally:
            os.close(fd)

    def home(self, user: str) -> Path:
        return self.dir / "root" if user == "root" else self.dir / "home" / user

    def users(self) -> dict[str, Any]:
        return self.read("users").get("users", {})

    def groups(self) -> dict[str, int]:
        return {**SYSTEM_GROUPS, **self.read("users").get("groups", {})}
