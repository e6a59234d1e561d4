"""A VM's snapshots: `POST/GET .../qemu/{vmid}/snapshot` and `DELETE .../snapshot/{snapname}`.

As PVE 9.1 does (PVE::API2::Qemu and PVE::AbstractConfig): the snapname is a config id
(a letter, then letters, digits, `-`, `_`; at most 40) and `current` is reserved; a
template cannot be snapshotted, nor a locked VM, nor one whose disks sit on a storage
without snapshots (a dir storage's raw files, plain LVM); a cloud-init drive and a CD-ROM
are left out of a snapshot (PVE regenerates the one, does not own the other). A snapshot
keeps a copy of the config it was taken of; the VM's config names the newest as its
`parent`. Creating and deleting are tasks; a VM destroyed takes its snapshots with it
(they live in its entry of the state, as in its config file on PVE).
"""

from __future__ import annotations

import re
import time
from typing import Any

from pveplan.sim._api import Ctx, route
from pveplan.sim._errors import TaskError, fail, param_error
from pveplan.sim._params import split_drive
from pveplan.sim._state import locked_state, read_state
from pveplan.sim._storage import storage_def
from pveplan.sim._storagecfg import is_file_based
from pveplan.sim._tasks import Task, run_task
from pveplan.sim._vms import DRIVE_KEY_RE, get_vm, is_cdrom

SNAPNAME_RE = re.compile(r"^[a-z][a-z0-9_-]+$", re.IGNORECASE)
SNAPSHOT_TYPES = {"lvmthin", "zfspool", "rbd", "btrfs"}
"""Block storages whose volumes have snapshots; a file storage has them for qcow2 only."""


def _check_snapname(name: str) -> None:
    """The `snapname` path parameter as the router's schema check sees it."""
    if len(name) > 40:
        raise param_error({"snapname": "value may only be 40 characters long"})
    if not SNAPNAME_RE.match(name):
        raise param_error({"snapname": f"invalid configuration ID '{name}'"})


def _snapshotted_volumes(ctx: Ctx, state: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """The volumes a snapshot covers, or PVE's error for one whose storage has none."""
    out: list[str] = []
    for key, value in config.items():
        if not DRIVE_KEY_RE.match(key) or is_cdrom(str(value)):
            continue
        volid, _ = split_drive(str(value))
        if volid.endswith("cloudinit") or ":" not in volid:
            continue
        storage = volid.split(":", 1)[0]
        sdef = storage_def(state, ctx.node, storage)
        supported = (
            volid.endswith(".qcow2") if is_file_based(sdef) else sdef["type"] in SNAPSHOT_TYPES
        )
        if not supported:
            raise TaskError(f"snapshot feature is not available for '{key}' ({volid})")
        out.append(volid)
    return out


def _create_worker(ctx: Ctx, vmid: int, name: str, params: dict[str, Any], task: Task) -> None:
    with locked_state(ctx.root) as state:
        vm = get_vm(state, ctx.node, vmid)
        config = vm["config"]
        if config.get("template"):
            raise TaskError("you can't take a snapshot if it's a template")
        if vm.get("lock"):
            raise TaskError(f"VM is locked ({vm['lock']})")
        snapshots = vm.setdefault("snapshots", {})
        if name in snapshots:
            raise TaskError(f"snapshot name '{name}' already used")
        if params.get("vmstate") and vm.get("status") != "running":
            task.log("VM is not running - ignoring vmstate")  # PVE takes a disk snapshot
        for volid in _snapshotted_volumes(ctx, state, config):
            task.log(f"snapshotting '{volid}'")
        entry = {k: v for k, v in config.items() if k != "parent"}
        entry["snaptime"] = int(time.time())
        if params.get("description"):
            entry["description"] = params["description"]
        if config.get("parent"):
            entry["parent"] = config["parent"]
        snapshots[name] = entry
        config["parent"] = name


@route("POST", "/nodes/{node}/qemu/{vmid}/snapshot")
def create_snapshot(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> str:
    vmid, name = path["vmid"], params["snapname"]
    get_vm(read_state(ctx.root), ctx.node, vmid)
    if name.lower() in ("current", "pending"):
        raise fail(f"unable to use snapshot name '{name}' (reserved name)")
    return run_task(
        ctx, "qmsnapshot", str(vmid), lambda task: _create_worker(ctx, vmid, name, params, task)
    )


@route("GET", "/nodes/{node}/qemu/{vmid}/snapshot")
def list_snapshots(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every snapshot, and `current` (the VM as it is, child of its config's `parent`)."""
    vm = get_vm(read_state(ctx.root), ctx.node, path["vmid"])
    out: list[dict[str, Any]] = []
    for name, entry in sorted(vm.get("snapshots", {}).items()):
        item = {
            "name": name,
            "description": entry.get("description", ""),
            "snaptime": entry["snaptime"],
        }
        if entry.get("parent"):
            item["parent"] = entry["parent"]
        out.append(item)
    current: dict[str, Any] = {"name": "current", "description": "You are here!"}
    if vm["config"].get("parent"):
        current["parent"] = vm["config"]["parent"]
    current["running"] = 1 if vm.get("status") == "running" else 0
    return [*out, current]


@route("GET", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}")
def snapshot_index(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    vm = get_vm(read_state(ctx.root), ctx.node, path["vmid"])
    name = str(path["snapname"])
    _check_snapname(name)
    if name not in vm.get("snapshots", {}):
        raise fail(f"snapshot '{name}' does not exist")
    return [{"cmd": "config"}, {"cmd": "rollback"}]


def _delete_worker(ctx: Ctx, vmid: int, name: str) -> None:
    with locked_state(ctx.root) as state:
        vm = get_vm(state, ctx.node, vmid)
        snapshots = vm.get("snapshots", {})
        entry = snapshots.pop(name, None)
        if entry is None:
            raise TaskError(f"snapshot '{name}' does not exist")
        parent = entry.get("parent")
        for other in snapshots.values():  # its children now hang off its parent
            if other.get("parent") == name:
                other.pop("parent") if parent is None else other.__setitem__("parent", parent)
        if vm["config"].get("parent") == name:
            if parent is None:
                vm["config"].pop("parent")
            else:
                vm["config"]["parent"] = parent


@route("DELETE", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}")
def delete_snapshot(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> str:
    vmid, name = path["vmid"], str(path["snapname"])
    _check_snapname(name)
    get_vm(read_state(ctx.root), ctx.node, vmid)
    return run_task(ctx, "qmdelsnapshot", str(vmid), lambda task: _delete_worker(ctx, vmid, name))
