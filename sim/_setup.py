"""Create a simulator root: its state, its simulated PVE hosts and their launchers.

A simulated host is a directory tree (`hosts/NODE/`) plus an entry in `state.json`; its
`bin/` holds `pvesh`, `qm`, `pveum` and `pveversion` launchers, so a command that pveplan
runs over SSH on that host finds "its" PVE tools on PATH. A simulated VM gets the guest
tools the same way once it first boots. A VM in which proxmox-ve gets installed becomes a
host in turn (`make_nested_host`): `hosts/NAME` is then a symlink to the VM's own tree, so
the host and the VM are one machine. See docs/simulator.md for the layout.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pveplan.sim._errors import SimError
from pveplan.sim._network import add_bridge, default_network, node_network
from pveplan.sim._runcmd import kill_runcmd
from pveplan.sim._state import SimRoot, allocate_address, locked_state, nested_host, vm_key
from pveplan.sim._storagecfg import (
    SimHost,
    activate_all,
    add_storage,
    default_storages,
    storage_for,
)

PVE_VERSION = {"release": "9.1", "repoid": "5a2f2f5d2b3c1e07", "version": "9.1.9"}
KERNEL_RELEASE = "6.17.2-1-pve"
HOST_TOOLS = ("pvesh", "qm", "pct", "pveum", "pveversion")
NODE_NAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$")
GUEST_TOOLS = (
    "sudo",
    "apt-get",
    "dpkg-query",
    "systemctl",
    "timedatectl",
    "useradd",
    "id",
    "hostnamectl",
    "getent",
    "usermod",
    "cloud-init",
    "chown",
    "wget",
)
FORWARDED_ENV = ("PVEPLAN_SIM_RUNCMD_LIMIT",)
"""Simulator settings a session (and a runcmd) inherits from the daemon's environment."""

HOST_DIRS = ("bin", "root/.ssh", "etc/ssh", "tmp")
"""A host's own directories; its storages' directories come with their content types
(`_storagecfg.activate`)."""


def init_root(root: SimRoot, nodes: Iterable[str | SimHost] = ("sim",)) -> None:
    """Make `root` a simulator with `nodes` as host nodes; safe to call again.

    Each node is a name (a fresh PVE install) or a `SimHost`, what its node file says:
    the datastore and bridges it names are given to it, also when it exists already (a
    node file may name a storage later; nothing is taken away). An existing state is kept
    (a second `sim up` must not forget running VMs); nodes it lacks are added.
    Directories and launchers are (re)written every time, so a root made by another
    interpreter gets launchers pointing at the current one.
    """
    hosts = [SimHost(node=n) if isinstance(n, str) else n for n in nodes]
    with locked_state(root) as state:
        for host in hosts:
            if host.node not in state["nodes"]:
                add_host_node(root, state, host.node, datastore=host.datastore)
            describe_host(root, state, host)
        for node, info in state["nodes"].items():
            if info.get("vmid") is not None and root.host_dir(node).is_dir():
                write_host_launchers(root, node)  # nested hosts: for this interpreter too


def add_host_node(
    root: SimRoot,
    state: dict[str, Any],
    node: str,
    vmid: int | None = None,
    *,
    parent: str | None = None,
    datastore: str | None = None,
) -> str:
    """Add host `node` to `state` (in place) with its tree and launchers; return its address.

    `vmid` names the VM that this host runs in (a nested PVE host): the host then answers
    on that VM's address and its tree is the VM's tree, because it *is* that machine.
    `parent` (the node the VM runs on) disambiguates when two levels reuse a vmid. A
    top-level host gets a fresh address. Its storages are a fresh install's
    (`_storagecfg.default_storages`, with `datastore`). Raises ValueError for a taken name
    or an unknown VM.
    """
    if node in state["nodes"]:
        raise ValueError(f"the simulator already has a node named '{node}'")
    if vmid is None:
        address = allocate_address(state)
    else:
        vm = _host_vm_record(state, vmid, parent)
        parent, address = vm["node"], vm["address"]
        _link_host_tree(root, node, parent, vmid)
    state["nodes"][node] = {"address": address, "vmid": vmid, "parent": parent}
    storages = default_storages(datastore, nested=vmid is not None)
    state.setdefault("storage_cfg", {})[node] = storages
    volumes = state["storage"].setdefault(node, {})
    for storage in storages:
        volumes.setdefault(storage, {})
    state.setdefault("network", {})[node] = default_network(address, nested=vmid is not None)
    _make_host_tree(root, node)
    activate_all(root, state, node)
    if vmid is not None:
        # Installing PVE makes the node's certificate (pve-cluster's postinst), so it is in
        # the VM's /etc/pve/local/ before the host's API first listens; made here, under
        # the state lock, the daemon only ever finds it (it makes one for a host without).
        from pveplan.sim._certs import ensure_certificate  # cryptography: only when needed

        ensure_certificate(root.host_dir(node), node, address)
    return address


def describe_host(root: SimRoot, state: dict[str, Any], host: SimHost) -> None:
    """Give an existing host what its node file names and it lacks (in place): the
    datastore as a storage, each bridge as a bridge that is up; then its tree."""
    if host.datastore:
        add_storage(state, host.node, host.datastore, storage_for(host.datastore))
    network = node_network(state, host.node)
    for bridge in host.bridges:
        add_bridge(network, bridge)
    _make_host_tree(root, host.node)
    activate_all(root, state, host.node)


def _host_vm_record(state: dict[str, Any], vmid: int, parent: str | None) -> dict[str, Any]:
    """The VM `vmid` (on `parent`, or the only VM with that vmid) that is to become a host."""
    matches = [
        vm
        for vm in state["vms"].values()
        if vm["vmid"] == vmid and (parent is None or vm["node"] == parent)
    ]
    if len(matches) != 1:
        where = f" on node '{parent}'" if parent else ""
        raise ValueError(f"no single VM {vmid}{where} to make a PVE host of")
    return matches[0]


def _link_host_tree(root: SimRoot, node: str, parent: str, vmid: int) -> None:
    """`hosts/NODE` -> `../vms/PARENT/VMID` (relative: the root may move), replacing what
    a stale run left there: the name is no node's, so nothing there is anyone's tree."""
    link, target = root.host_dir(node), root.vm_dir(parent, vmid)
    target.mkdir(parents=True, exist_ok=True)
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        shutil.rmtree(link)
    link.symlink_to(os.path.relpath(target, link.parent), target_is_directory=True)


class NodeNameTaken(SimError, ValueError):
    """A VM cannot become PVE host NAME: the simulator has a node of that name already."""


def make_nested_host(root: SimRoot, node: str, vmid: int, hostname: str | None) -> str:
    """Make VM `vmid` of `node` a PVE host (what installing proxmox-ve does); its name.

    The node is named after the VM's hostname (short form; the VM's name when it has
    none), as PVE names a node after the machine's hostname. A VM that already is a host
    stays the host it is. Raises NodeNameTaken when another node has that name (node
    names are the simulator's keys, so they are unique across all levels), ValueError
    when the hostname is no valid node name.
    """
    with locked_state(root) as state:
        existing = nested_host(state, node, vmid)
        if existing is not None:
            return existing
        vm = state["vms"].get(vm_key(node, vmid)) or {}
        name = str(hostname or vm.get("name") or f"VM{vmid}").split(".")[0]
        if not NODE_NAME_RE.match(name):
            raise ValueError(f"'{name}' is not a valid PVE node name")
        if name in state["nodes"]:
            raise NodeNameTaken(
                f"cannot make VM {vmid} on node '{node}' the PVE node '{name}': the simulator "
                f"already has a node named '{name}' (give this VM another hostname)"
            )
        add_host_node(root, state, name, vmid, parent=node)
    return name


def remove_host_node(root: SimRoot, state: dict[str, Any], node: str) -> list[Path]:
    """Drop nested host `node` from `state` (in place) with everything on it: its VMs (and
    the hosts they became, recursively), volumes, tokens, users, ACLs, tasks and network. Returns the
    paths to delete once the state is written (`delete_trees`): guests die with their host.
    """
    doomed = [root.host_dir(node), root.path / "vms" / node]
    for key, vm in list(state["vms"].items()):
        if vm["node"] != node:
            continue
        inner = nested_host(state, node, vm["vmid"])
        if inner is not None:
            doomed += remove_host_node(root, state, inner)
        kill_runcmd(root, node, vm["vmid"], "destroyed with its host")
        del state["vms"][key]
    del state["nodes"][node]
    for table in ("storage", "storage_cfg", "tokens", "network", "access"):
        state.get(table, {}).pop(node, None)
    state["tasks"] = {u: t for u, t in state["tasks"].items() if t.get("node") != node}
    return doomed


def delete_trees(paths: Iterable[Path]) -> None:
    """Remove each path: a symlink itself (never what it points to), a directory tree."""
    for path in paths:
        if path.is_symlink():
            path.unlink()
        else:
            shutil.rmtree(path, ignore_errors=True)


def _make_host_tree(root: SimRoot, node: str) -> None:
    host = root.host_dir(node)
    for sub in HOST_DIRS:
        (host / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(host / "root" / ".ssh", 0o700)
    write_host_launchers(root, node)


def session_env(
    sim: SimRoot, tree: Path, node: str, vmid: int | None, user: str, home: Path
) -> dict[str, str]:
    """The environment of a command run in machine `tree` as `user`: an SSH session's
    (the daemon) and a cloud-init `runcmd`'s (`sim._runcmd`).

    PATH has the machine's `bin/` first, so its simulated tools shadow the real ones;
    `PVEPLAN_SYSROOT` is the tree, which stands for the machine's `/` (pveplan's node-side
    code resolves its system paths under it, so it writes into the tree, never the real
    machine's /etc); `PVEPLAN_SIM_*` tell the simulated tools where they are.
    """
    env = {
        "HOME": str(home),
        "USER": user,
        "LOGNAME": user,
        "PATH": f"{tree / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PVEPLAN_SYSROOT": str(tree),
        "PVEPLAN_SIM_ROOT": str(sim.path),
        "PVEPLAN_SIM_NODE": node,
    }
    if vmid is not None:
        env["PVEPLAN_SIM_VMID"] = str(vmid)
    for name in FORWARDED_ENV:
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def write_host_launchers(root: SimRoot, node: str) -> None:
    """Write `pvesh`, `qm`, `pveum` into `hosts/NODE/bin/` for this interpreter."""
    bindir = root.host_dir(node) / "bin"
    for tool in HOST_TOOLS:
        _write_text(bindir / tool, host_launcher_text(root.path, node, tool))


def host_launcher_text(root: Path, node: str, tool: str) -> str:
    """The script `write_host_launchers` writes for `tool` on `node` (the daemon compares a
    launcher with it before running that tool in-process, `_inproc`)."""
    call = f"main({tool!r}, sys.argv[1:], {str(root)!r}, {node!r})"
    return launcher_text("pveplan.sim._pvecli", call, f"{tool} on {node}")


def write_guest_launchers(root: SimRoot, node: str, vmid: int) -> None:
    """Write the guest tools and `python3` into `vms/NODE/VMID/bin/` for this interpreter."""
    bindir = root.vm_dir(node, vmid) / "bin"
    for tool in GUEST_TOOLS:
        _write_text(bindir / tool, guest_launcher_text(root.path, node, vmid, tool))
    _link_python(bindir / "python3")


def guest_launcher_text(root: Path, node: str, vmid: int, tool: str) -> str:
    """The script `write_guest_launchers` writes for `tool` (a runcmd runner compares a
    launcher with it before running that tool in its own process, `_runcmd`)."""
    call = f"main({tool!r}, sys.argv[1:], {str(root)!r}, {node!r}, {int(vmid)!r})"
    return launcher_text("pveplan.sim._guest", call, f"{tool} in VM {vmid} on {node}")


def _link_python(path: Path) -> None:
    """`python3` -> the base interpreter behind this one (a Debian image ships python3).

    The base one, not a virtualenv's: `python3 -I -S` in the VM must see no site-packages
    of the simulator's environment, only the standard library, as on a fresh image. A
    symlink, so the interpreter finds its prefix from its real location.
    """
    base = getattr(sys, "_base_executable", None) or sys.executable
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(base)
    os.replace(tmp, path)


SIM_PACKAGE = Path(__file__).resolve().parent
"""This package's folder. Its siblings are pveplan's other packages (the repository's top
folders in a checkout, `pveplan/*` when installed or bundled), so its parent stands for
`pveplan` in `bootstrap_code`."""


def bootstrap_code(module: str, call: str) -> str:
    """Python source that imports `main` from simulator module `module` without loading
    `pveplan/__init__` or `sim/__init__` (bare packages registered first, with their
    folders: the interpreter running it may have no pveplan on its path), then exits with
    `call`."""
    packages = (
        ("pveplan", str(SIM_PACKAGE.parent)),
        ("pveplan.sim", str(SIM_PACKAGE)),
    )
    return (
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


def _write_launcher(path: Path, module: str, call: str, what: str) -> None:
    """One executable script; written by rename so a running launcher is never torn.

    The script registers `pveplan` and `pveplan.sim` as bare packages before importing
    the simulator module, so a launcher, which runs once per call, pays for the module it
    runs and nothing else. (The one thing of pveplan's the simulator uses, the executor's
    key helper, is imported where a VM first boots; `executor/__init__` loads lazily.)
    """
    _write_text(path, launcher_text(module, call, what))


def launcher_text(module: str, call: str, what: str) -> str:
    text = f"#!{sys.executable}\n" + f'"""Simulated {what} (written by sim._setup)."""\n'
    return text + bootstrap_code(module, call)


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)
