"""Create a simulator root: its state, its simulated PVE hosts and their launchers.

A simulated host is a directory tree (`hosts/NODE/`) plus an entry in `state.json`; its
`bin/` holds `pvesh`, `qm` and `pveum` launchers, so a command that pveplan runs over SSH
on that host finds "its" PVE tools on PATH. A simulated VM gets the guest tools the same
way once it first boots. See docs/simulator.md for the layout.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from executor.sim._state import SimRoot, allocate_address, locked_state

HOST_TOOLS = ("pvesh", "qm", "pveum")
GUEST_TOOLS = (
    "sudo",
    "apt-get",
    "dpkg-query",
    "systemctl",
    "timedatectl",
    "useradd",
    "id",
    "hostnamectl",
)

# Every simulated host has the two storages of a fresh PVE install. `state.json` holds
# their volumes; what each storage is (type, allowed content, where a dir storage keeps
# its files relative to the host root) is fixed here.
STORAGES: dict[str, dict[str, Any]] = {
    "local": {
        "type": "dir",
        "content": ("backup", "images", "import", "iso", "snippets", "vztmpl"),
        "path": "var/lib/vz",
    },
    "local-lvm": {"type": "lvmthin", "content": ("images",), "path": None},
}

HOST_DIRS = (
    "bin",
    "root/.ssh",
    "etc/ssh",
    "var/lib/vz/snippets",
    "var/lib/vz/import",
    "var/lib/vz/images",
    "var/lib/vz/template/iso",
)


def init_root(root: SimRoot, nodes: Iterable[str] = ("sim",)) -> None:
    """Make `root` a simulator with `nodes` as host nodes; safe to call again.

    An existing state is kept (a second `sim up` must not forget running VMs); nodes it
    lacks are added. Directories and launchers are (re)written every time, so a root made
    by another interpreter gets launchers pointing at the current one.
    """
    with locked_state(root) as state:
        for node in nodes:
            if node not in state["nodes"]:
                add_host_node(root, state, node)
            else:
                _make_host_tree(root, node)


def add_host_node(
    root: SimRoot,
    state: dict[str, Any],
    node: str,
    vmid: int | None = None,
    *,
    parent: str | None = None,
) -> str:
    """Add host `node` to `state` (in place) with its tree and launchers; return its address.

    `vmid` names the VM that this host runs in (a nested PVE host): the host then answers
    on that VM's address, because it *is* that machine. `parent` (the node the VM runs
    on) disambiguates when two levels reuse a vmid. A top-level host gets a fresh address.
    """
    address = _nested_address(state, vmid, parent) if vmid is not None else None
    if address is None:
        address = allocate_address(state)
    state["nodes"][node] = {"address": address, "vmid": vmid}
    volumes = state["storage"].setdefault(node, {})
    for storage in STORAGES:
        volumes.setdefault(storage, {})
    _make_host_tree(root, node)
    return address


def _nested_address(state: dict[str, Any], vmid: int, parent: str | None) -> str | None:
    """The address of the VM `vmid` (on `parent`, or the only VM with that vmid)."""
    matches = [
        vm
        for vm in state["vms"].values()
        if vm["vmid"] == vmid and (parent is None or vm["node"] == parent)
    ]
    return matches[0].get("address") if len(matches) == 1 else None


def _make_host_tree(root: SimRoot, node: str) -> None:
    host = root.host_dir(node)
    for sub in HOST_DIRS:
        (host / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(host / "root" / ".ssh", 0o700)
    write_host_launchers(root, node)


def write_host_launchers(root: SimRoot, node: str) -> None:
    """Write `pvesh`, `qm`, `pveum` into `hosts/NODE/bin/` for this interpreter."""
    bindir = root.host_dir(node) / "bin"
    for tool in HOST_TOOLS:
        call = f"main({tool!r}, sys.argv[1:], {str(root.path)!r}, {node!r})"
        _write_launcher(bindir / tool, "executor.sim._pvecli", call, f"{tool} on {node}")


def write_guest_launchers(root: SimRoot, node: str, vmid: int) -> None:
    """Write the guest tools into `vms/NODE/VMID/bin/` for this interpreter."""
    bindir = root.vm_dir(node, vmid) / "bin"
    for tool in GUEST_TOOLS:
        call = f"main({tool!r}, sys.argv[1:], {str(root.path)!r}, {node!r}, {int(vmid)!r})"
        where = f"{tool} in VM {vmid} on {node}"
        _write_launcher(bindir / tool, "executor.sim._guest", call, where)


SIM_PACKAGE = Path(__file__).resolve().parent


def _write_launcher(path: Path, module: str, call: str, what: str) -> None:
    """One executable script; written by rename so a running launcher is never torn.

    The script registers `executor` and `executor.sim` as bare packages before importing
    the simulator module: `executor/__init__` loads the whole executor (trio, asyncssh),
    about ten times the cost of the command itself, and a launcher runs once per call.
    """
    packages = (("executor", str(SIM_PACKAGE.parent)), ("executor.sim", str(SIM_PACKAGE)))
    text = (
        f"#!{sys.executable}\n"
        f'"""Simulated {what} (written by executor.sim._setup)."""\n'
        "import sys\n"
        "import types\n\n"
        f"for _name, _path in {packages!r}:\n"
        "    if _name not in sys.modules:\n"
        "        _package = types.ModuleType(_name)\n"
        "        _package.__path__ = [_path]\n"
        "        sys.modules[_name] = _package\n\n"
        f"from {module} import main  # noqa: E402\n\n"
        f"sys.exit({call})\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)
