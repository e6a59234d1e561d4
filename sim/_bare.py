"""Bare Debian machines: hosts without PVE, reachable over SSH on loopback.

homestak's `pve-setup` turns a freshly installed Debian machine into a PVE host; to
rehearse that, the simulator has machines that are no VM of any simulated PVE host. A bare
machine is recorded like a VM, under the pseudo node `@bare` (`_state.BARE_MACHINES`), so
everything a VM has it has too: its own tree (`vms/@bare/ID/`), its guest tools (`apt-get`,
`systemctl`, `sudo`, ...), an SSH listener on its own address with its own host key, and,
once `proxmox-ve` is installed from PVE's repository (`_bare_tools`), a PVE host named after
its hostname that serves `pvesh`/`qm`/`pveum` and the HTTPS API like any nested host. No
PVE host lists it and nothing stops it: it is up while the simulator is.

What it does not model: the reboot into the Proxmox kernel that PVE's install guide asks
for between the kernel and the rest (a simulated machine runs no kernel; `pveversion`
reports the Proxmox kernel once `proxmox-ve` is in).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any, NamedTuple

from pveplan.sim._setup import NODE_NAME_RE
from pveplan.sim._state import (
    BARE_MACHINES,
    SimRoot,
    allocate_address,
    locked_state,
    read_state,
    vm_key,
)

FIRST_ID = 1
HOST_KEY = Path("etc/ssh/ssh_host_ed25519_key")
DEBIAN_DIRS = ("etc/apt/sources.list.d", "etc/apt/keyrings", "usr/share/keyrings")
"""Directories a Debian install has that the simulator's VMs need not."""
SERVE_WAIT = 10.0
"""Seconds `ensure_bare_host` waits for the daemon to listen on a new machine."""


class BareHost(NamedTuple):
    """How to reach a bare machine: its name (hostname), loopback address, SSH port and
    host key (the public line, to pin: the simulator vouches for its own machines)."""

    name: str
    address: str
    port: int
    host_key: str


def bare_name_problem(name: str) -> str | None:
    """Why `name` cannot be a bare machine's hostname (PVE names its node after it), or None."""
    return None if NODE_NAME_RE.match(name) else f"'{name}' is not a valid host name"


def add_bare_machine(root: SimRoot, name: str, public_key: str) -> str:
    """Record bare machine `name` (idempotent) and boot its tree; its address.

    `public_key` may log in as root (the key a Debian installer puts in root's
    authorized_keys). The hostname is `name`, so PVE, once installed, names its node so.
    """
    from pveplan.sim._cloudinit import apply_cloud_init

    problem = bare_name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    with locked_state(root) as state:
        found = _find(state, name)
        if found is None:
            taken = {vm["vmid"] for vm in state["vms"].values() if vm["node"] == BARE_MACHINES}
            if name in state["nodes"]:
                raise ValueError(f"the simulator already has a node named '{name}'")
            ident = next(i for i in range(FIRST_ID, FIRST_ID + len(taken) + 1) if i not in taken)
            found = state["vms"][vm_key(BARE_MACHINES, ident)] = {
                "vmid": ident,
                "node": BARE_MACHINES,
                "name": name,
                "status": "running",
                "config": {"name": name},
                "lock": None,
                "started_at": time.time(),
                "address": allocate_address(state),
                "bare": True,
            }
        ident, address = found["vmid"], found["address"]
    # The installer's first boot: base system and a host key made as sshd would (no
    # cloud-init data: nobody else gets keys), then root's key.
    apply_cloud_init(root, BARE_MACHINES, ident, None, hostname=name)
    tree = root.vm_dir(BARE_MACHINES, ident)
    for folder in DEBIAN_DIRS:
        (tree / folder).mkdir(parents=True, exist_ok=True)
    _authorize_root(root.vm_dir(BARE_MACHINES, ident), public_key)
    return address


def _authorize_root(tree: Path, public_key: str) -> None:
    path = tree / "root" / ".ssh" / "authorized_keys"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    lines = path.read_text().splitlines() if path.exists() else []
    if public_key.strip() and public_key.strip() not in (line.strip() for line in lines):
        lines.append(public_key.strip())
    path.write_text("".join(line + "\n" for line in lines))
    path.chmod(0o600)


def _find(state: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next(
        (
            vm
            for vm in state["vms"].values()
            if vm["node"] == BARE_MACHINES and vm.get("name") == name
        ),
        None,
    )


def bare_hosts(root: SimRoot) -> list[BareHost]:
    """Every bare machine of the simulator (port 0 when no daemon runs)."""
    from pveplan.sim._control import daemon_info

    if not root.state.exists():  # no simulator here: look without making one
        return []
    state = read_state(root)
    info = daemon_info(root) or {}
    out = []
    for vm in state["vms"].values():
        if vm["node"] != BARE_MACHINES:
            continue
        key_file = root.vm_dir(BARE_MACHINES, vm["vmid"]) / HOST_KEY.with_suffix(".pub")
        try:
            host_key = key_file.read_text().strip()
        except FileNotFoundError:
            continue
        out.append(BareHost(vm["name"], vm["address"], int(info.get("port", 0)), host_key))
    return sorted(out)


def bare_host_at(root: SimRoot, address: str) -> BareHost | None:
    """The bare machine answering at `address` (or named so), if the simulator has one."""
    return next((h for h in bare_hosts(root) if address in (h.address, h.name)), None)


def ensure_bare_host(
    root: Path | str, name: str, public_key: str, *, lifetime: Any = None
) -> BareHost:
    """A running simulator serving bare machine `name` over SSH, `public_key` let in as
    root; how to reach it. Safe to call again (the machine and its keys stay)."""
    from pveplan.sim._control import daemon_info, start_daemon

    sim = SimRoot(root)
    add_bare_machine(sim, name, public_key)
    start_daemon(sim, lifetime=lifetime)
    deadline = time.monotonic() + SERVE_WAIT
    while True:
        host = bare_host_at(sim, name)
        info = daemon_info(sim)
        if host is not None and info and _listening(host.address, host.port):
            return host
        if time.monotonic() > deadline:
            raise RuntimeError(f"the simulator daemon at {sim.path} does not serve {name}")
        time.sleep(0.05)


def _listening(address: str, port: int) -> bool:
    if not port:
        return False
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False
