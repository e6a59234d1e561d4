"""A VM's drives: planning and allocating disks, imports, cloud-init drives, resize.

Planned (and checked) before the task's worker runs, so a bad drive fails synchronously
as on PVE; allocated in the worker, where volumes get PVE's names on their storage.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pveplan.sim._api import Ctx, route
from pveplan.sim._errors import ApiError, TaskError, fail, param_error
from pveplan.sim._params import (
    GIB,
    MIB,
    format_size,
    human_size,
    join_drive,
    parse_propstring,
    parse_size,
    split_drive,
)
from pveplan.sim._schema import FORMATS
from pveplan.sim._state import locked_state, read_state, vm_key
from pveplan.sim._storage import parse_volume, storage_def, storage_dir, volume_size
from pveplan.sim._storagecfg import is_file_based
from pveplan.sim._tasks import Task, run_task
from pveplan.sim._vms import DRIVE_KEY_RE, config_digest, drive_bytes, get_vm, is_cdrom

# --- the drives of a new or changed config -------------------------------------------

NEW_DISK_RE = re.compile(r"^(([^/:\s]+):)?(\d+(\.\d+)?)$")
CLOUDINIT_RE = re.compile(r"^([^/:\s]+):cloudinit$")
IMPORT_SYNTAX = "'import-from' requires special syntax - use <storage ID>:0,import-from=<source>"


@dataclass
class DrivePlan:
    """What to do for one drive parameter, decided (and checked) before the worker runs."""

    key: str
    kind: str  # "new", "import", "cloudinit" or "keep"
    value: str
    options: dict[str, str] = field(default_factory=dict)
    storage: str = ""
    size: int = 0
    source: str = ""


def _drive_format(key: str) -> dict[str, dict[str, Any]]:
    return FORMATS[re.sub(r"\d+$", "", key).upper()]


def plan_drives(
    ctx: Ctx, state: dict[str, Any], params: dict[str, Any], default: str | None
) -> list[DrivePlan]:
    """Check every drive parameter as PVE does before forking (storages, import sources)."""
    plans = []
    for key in sorted(k for k in params if DRIVE_KEY_RE.match(k)):
        values, _ = parse_propstring(_drive_format(key), str(params[key]))
        plans.append(_plan_drive(ctx, state, key, values, default))
    return plans


def _plan_drive(
    ctx: Ctx, state: dict[str, Any], key: str, values: dict[str, str], default: str | None
) -> DrivePlan:
    volume = values.pop("file")
    source = values.pop("import-from", None)
    if match := CLOUDINIT_RE.match(volume):
        _images_storage(state, ctx.node, match[1])
        return DrivePlan(key, "cloudinit", volume, values, storage=match[1])
    match = NEW_DISK_RE.match(volume)
    if not match:
        if source is not None:
            raise param_error({key: IMPORT_SYNTAX})
        return DrivePlan(key, "keep", volume, values)
    storage = match[2] or default
    if not storage:
        raise fail("no storage ID specified (and no default storage)")
    _images_storage(state, ctx.node, storage)
    size = int(float(match[3]) * GIB)
    if source is None:
        return DrivePlan(key, "new", volume, values, storage=storage, size=size)
    if size:
        raise param_error({key: IMPORT_SYNTAX})
    _check_import_source(ctx, state, key, source)
    return DrivePlan(key, "import", volume, values, storage=storage, source=source)


def _images_storage(state: dict[str, Any], node: str, storage: str) -> None:
    if "images" not in storage_def(state, node, storage)["content"]:
        raise param_error({"storage": f"storage '{storage}' does not support vm images"})


def _check_import_source(ctx: Ctx, state: dict[str, Any], key: str, source: str) -> None:
    if source.startswith("/"):
        return  # root@pam on the CLI may import from any path
    volume = parse_volume(ctx, state, source)
    if volume.content not in ("images", "import"):
        raise param_error(
            {key: f"{source} has wrong type '{volume.content}' - needs to be 'images' or 'import'"}
        )


def _source_size(ctx: Ctx, state: dict[str, Any], source: str) -> int:
    """Bytes of an import source; the worker fails like PVE when it is missing."""
    if source.startswith("/"):
        path = ctx.host_path(source)
        if not path.is_file():
            raise TaskError(f"unable to create image: '{source}' does not exist")
        return path.stat().st_size
    size = volume_size(state, ctx.node, parse_volume(ctx, state, source))
    if size is None:
        raise TaskError(f"unable to create image: volume '{source}' does not exist")
    return size


def _is_dir(ctx: Ctx, state: dict[str, Any], storage: str) -> bool:
    return is_file_based(storage_def(state, ctx.node, storage))


def _volid_for(ctx: Ctx, state: dict[str, Any], storage: str, vmid: int, name: str) -> str:
    """The volid a new volume gets: LVM and ZFS name it, a dir storage files it per VM."""
    if _is_dir(ctx, state, storage):
        return f"{storage}:{vmid}/{name}.qcow2"
    return f"{storage}:{name}"


def _volume_taken(ctx: Ctx, state: dict[str, Any], vmid: int, storage: str, name: str) -> bool:
    volid = _volid_for(ctx, state, storage, vmid, name)
    vm = state["vms"].get(vm_key(ctx.node, vmid))
    if vm is not None and any(split_drive(str(v))[0] == volid for v in vm["config"].values()):
        return True
    if _is_dir(ctx, state, storage):
        return (storage_dir(ctx, storage, state) / "images" / str(vmid) / f"{name}.qcow2").exists()
    return volid in state["storage"][ctx.node][storage]


def _allocate(
    ctx: Ctx, state: dict[str, Any], vmid: int, storage: str, name: str, size: int
) -> str:
    """Create a volume (an LVM entry, or a sparse file for a dir storage); its volid."""
    volid = _volid_for(ctx, state, storage, vmid, name)
    if _is_dir(ctx, state, storage):
        path = storage_dir(ctx, storage, state) / "images" / str(vmid) / f"{name}.qcow2"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            handle.truncate(size)
        return volid
    entry = {"content": "images", "format": "raw", "size": size, "ctime": int(time.time())}
    state["storage"][ctx.node][storage][volid] = {**entry, "vmid": vmid}
    return volid


def _free_disk_name(ctx: Ctx, state: dict[str, Any], vmid: int, storage: str) -> str:
    for index in range(1000):
        name = f"vm-{vmid}-disk-{index}"
        if not _volume_taken(ctx, state, vmid, storage, name):
            return name
    raise TaskError(f"unable to allocate an image name for VM {vmid} in storage '{storage}'")


def apply_drives(
    ctx: Ctx, state: dict[str, Any], vmid: int, plans: list[DrivePlan], log: Callable[[str], None]
) -> dict[str, str]:
    """Allocate and import what the plans ask for; the resulting config values by key."""
    result = {}
    for plan in plans:
        if plan.kind == "keep":
            result[plan.key] = join_drive(plan.value, plan.options)
            continue
        if plan.kind == "cloudinit":
            volid = _allocate(ctx, state, vmid, plan.storage, f"vm-{vmid}-cloudinit", 4 * MIB)
            result[plan.key] = f"{volid},media=cdrom"
        else:
            result[plan.key] = _create_disk(ctx, state, vmid, plan, log)
        log(f"{plan.key}: successfully created disk '{result[plan.key]}'")
    return result


def import_bytes(ctx: Ctx, plans: list[DrivePlan]) -> int:
    """How many bytes the imports of `plans` copy (what their cost is reckoned from)."""
    state = read_state(ctx.root)
    total = 0
    for plan in plans:
        if plan.kind == "import":
            try:
                total += max(_source_size(ctx, state, plan.source) // GIB, 0) * GIB or 2 * GIB
            except (TaskError, ApiError):
                continue  # the import itself reports it
    return total


def _create_disk(
    ctx: Ctx, state: dict[str, Any], vmid: int, plan: DrivePlan, log: Callable[[str], None]
) -> str:
    size = plan.size
    if plan.kind == "import":
        source_bytes = _source_size(ctx, state, plan.source)
        size = max(source_bytes // GIB, 0) * GIB or 2 * GIB
        log(f"importing disk '{plan.source}' to VM {vmid} ...")
    name = _free_disk_name(ctx, state, vmid, plan.storage)
    if storage_def(state, ctx.node, plan.storage)["type"] in ("lvmthin", "lvm"):
        log(f'  Logical volume "{name}" created.')
    volid = _allocate(ctx, state, vmid, plan.storage, name, size)
    if plan.kind == "import":
        log(f"transferred 0.0 B of {human_size(size)} (0.00%)")
        log(f"transferred {human_size(size)} of {human_size(size)} (100.00%)")
    options = {k: v for k, v in plan.options.items() if k != "format"}
    return join_drive(volid, {**options, "size": format_size(size)})


def free_volume(ctx: Ctx, state: dict[str, Any], volid: str) -> None:
    try:
        volume = parse_volume(ctx, state, volid)
    except ApiError:
        return
    if volume.path is not None:
        volume.path.unlink(missing_ok=True)
    else:
        state["storage"][ctx.node][volume.storage].pop(volid, None)


# --- resize ----------------------------------------------------------------------------


def _resize_worker(ctx: Ctx, vmid: int, params: dict[str, Any], task: Task) -> None:
    disk, size_text = params["disk"], params["size"]
    with locked_state(ctx.root) as state:
        vm = get_vm(state, ctx.node, vmid)
        if params.get("digest") and params["digest"] != config_digest(vm):
            raise TaskError("checksum mismatch (file change by other user?)")
        if vm.get("lock") and not params.get("skiplock"):
            raise TaskError(f"VM is locked ({vm['lock']})")
        value = vm["config"].get(disk)
        if value is None:
            raise TaskError(f"disk '{disk}' does not exist")
        if is_cdrom(str(value)):
            raise TaskError("you can't resize a cdrom")
        current = drive_bytes(str(value))
        grow = size_text.startswith("+")
        wanted = parse_size(size_text.lstrip("+"))
        new_size = current + wanted if grow else wanted
        if new_size < current:
            raise TaskError("shrinking disks is not supported")
        if new_size == current:
            return
        volid, options = split_drive(str(value))
        _resize_volume(ctx, state, volid, new_size)
        vm["config"][disk] = join_drive(volid, {**options, "size": format_size(new_size)})
        task.log(
            f"  Size of logical volume {volid} changed from {human_size(current)} to {human_size(new_size)}."
        )


def _resize_volume(ctx: Ctx, state: dict[str, Any], volid: str, size: int) -> None:
    volume = parse_volume(ctx, state, volid)
    if volume.path is not None:
        if volume.path.exists():
            os.truncate(volume.path, size)
        return
    entry = state["storage"][ctx.node][volume.storage].get(volid)
    if entry is not None:
        entry["size"] = size


@route("PUT", "/nodes/{node}/qemu/{vmid}/resize")
def resize(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> str:
    vmid = path["vmid"]
    return run_task(ctx, "resize", str(vmid), lambda task: _resize_worker(ctx, vmid, params, task))
