"""Templates and clones: `POST .../template` and `POST .../clone`, as qemu-server does them.

A template's disks become base volumes (`vm-ID-disk-N` renamed `base-ID-disk-N`), and it
can no longer be started (`_power.boot` refuses). A linked clone (`full` 0, the default
from a template) gets thin children of those base volumes (`base-ID-disk-N/vm-NEW-disk-M`
on a block storage, `ID/base-ID-disk-N.qcow2/NEW/vm-NEW-disk-M.qcow2` on a directory),
which is why a linked clone is made only from a template and why a template with linked
clones cannot be destroyed (`base_in_use`, checked by `_power`'s destroy). A full clone
copies every disk, which costs what an import of the same size costs (the simulator's
`copy_seconds_per_gib`, 0 unless a benchmark sets it): a linked clone costs nothing.
Cloud-init drives are made anew for the clone; a clone gets new MACs, a new smbios uuid
and vmgenid, and drops `template`.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from pveplan.sim._api import Ctx, route
from pveplan.sim._drives import _allocate, _free_disk_name, _is_dir
from pveplan.sim._errors import TaskError, fail
from pveplan.sim._params import GIB, MIB, format_size, join_drive, split_drive
from pveplan.sim._state import allocate_address, locked_state, read_config, read_state, vm_key
from pveplan.sim._storage import storage_def, storage_dir
from pveplan.sim._tasks import Task, run_task
from pveplan.sim._vmconfig import _net_value
from pveplan.sim._vms import DRIVE_KEY_RE, drive_bytes, get_vm, is_cdrom

NOT_CLONED = ("template", "lock", "snapshots", "parent", "pending", "digest")


def _disks(config: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """(key, volid, options) of each disk: no CD-ROM, no cloud-init drive."""
    out = []
    for key in sorted(config):
        value = str(config[key])
        if DRIVE_KEY_RE.match(key) and not is_cdrom(value):
            volid, options = split_drive(value)
            if "cloudinit" not in volid:
                out.append((key, volid, options))
    return out


def copy_cost(ctx: Ctx, size: int) -> None:
    """Wait as long as copying `size` bytes takes on this simulated host."""
    rate = float(read_config(ctx.root).get("copy_seconds_per_gib") or 0)
    if rate > 0:
        time.sleep(rate * size / GIB)


def base_in_use(state: dict[str, Any], node: str, config: dict[str, Any]) -> str | None:
    """The first base volume of template `config` that a linked clone is a child of."""
    bases = [volid for _, volid, _ in _disks(config) if "base-" in volid]
    for vm in state["vms"].values():
        if vm["node"] != node:
            continue
        for _, volid, _ in _disks(vm["config"]):
            for base in bases:
                if volid.startswith(base + "/"):
                    return base
    return None


# --- template -----------------------------------------------------------------------------


def _base_volid(ctx: Ctx, state: dict[str, Any], vmid: int, volid: str) -> str:
    """Rename a VM's disk to its base volume (a file renamed, or a block entry re-keyed)."""
    storage, _, name = volid.partition(":")
    if name.startswith("base-") or f"/base-{vmid}-" in name:
        return volid
    if _is_dir(ctx, state, storage):
        new_name = name.replace(f"vm-{vmid}-", f"base-{vmid}-", 1)
        images = storage_dir(ctx, storage, state) / "images"
        (images / name).rename(images / new_name)
        return f"{storage}:{new_name}"
    new = f"{storage}:{name.replace(f'vm-{vmid}-', f'base-{vmid}-', 1)}"
    volumes = state["storage"][ctx.node][storage]
    volumes[new] = volumes.pop(volid)
    return new


def _template_worker(ctx: Ctx, vmid: int, task: Task) -> None:
    with locked_state(ctx.root) as state:
        vm = get_vm(state, ctx.node, vmid)
        for key, volid, options in _disks(vm["config"]):
            base = _base_volid(ctx, state, vmid, volid)
            vm["config"][key] = join_drive(base, options)
            task.log(f"{key}: {volid} -> {base}")
        vm["config"]["template"] = 1


@route("POST", "/nodes/{node}/qemu/{vmid}/template")
def make_template(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> str:
    """Checks under the config lock, `template: 1` written, then the disks renamed."""
    vmid = path["vmid"]
    vm = get_vm(read_state(ctx.root), ctx.node, vmid)
    if vm.get("lock"):
        raise fail(f"VM is locked ({vm['lock']})")
    if vm["config"].get("template") and not params.get("disk"):
        raise fail("you can't convert a template to a template")
    if vm["status"] == "running":
        raise fail("you can't convert a VM to template if VM is running")
    return run_task(ctx, "qmtemplate", str(vmid), lambda task: _template_worker(ctx, vmid, task))


# --- clone --------------------------------------------------------------------------------


def _linked_child(ctx: Ctx, state: dict[str, Any], newid: int, volid: str, size: int) -> str:
    """A thin child of base volume `volid` for VM `newid` (no data copied)."""
    storage, _, base = volid.partition(":")
    name = _free_disk_name(ctx, state, newid, storage)
    if _is_dir(ctx, state, storage):
        path = storage_dir(ctx, storage, state) / "images" / str(newid) / f"{name}.qcow2"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            handle.truncate(size)
        return f"{storage}:{base}/{newid}/{name}.qcow2"
    child = f"{storage}:{base}/{name}"
    entry = {"content": "images", "format": "raw", "size": size, "ctime": int(time.time())}
    state["storage"][ctx.node][storage][child] = {**entry, "vmid": newid}
    return child


def _clone_config(
    ctx: Ctx, state: dict[str, Any], source: dict[str, Any], newid: int, plan: dict[str, Any]
) -> tuple[dict[str, Any], int]:
    """The new VM's config, its disks made (linked or copied); and the bytes copied."""
    config = {k: v for k, v in source["config"].items() if k not in NOT_CLONED}
    copied = 0
    for key in sorted(config):
        value = str(config[key])
        if re.fullmatch(r"net\d+", key):
            model_mac, _, rest = value.partition(",")
            config[key] = _net_value(model_mac.split("=")[0] + ("," + rest if rest else ""))
        elif DRIVE_KEY_RE.match(key) and "cloudinit" in split_drive(value)[0]:
            storage = split_drive(value)[0].split(":")[0]
            volid = _allocate(ctx, state, newid, storage, f"vm-{newid}-cloudinit", 4 * MIB)
            config[key] = f"{volid},media=cdrom"
    for key, volid, options in _disks(source["config"]):
        size = drive_bytes(str(source["config"][key]))
        if plan["full"]:
            storage = plan["storage"] or volid.split(":")[0]
            name = _free_disk_name(ctx, state, newid, storage)
            new = _allocate(ctx, state, newid, storage, name, size)
            copied += size
        else:
            new = _linked_child(ctx, state, newid, volid, size)
        config[key] = join_drive(new, {**options, "size": format_size(size)})
    config.update(
        name=plan["name"],
        smbios1=f"uuid={uuid.uuid4()}",
        vmgenid=str(uuid.uuid4()),
    )
    if plan["description"] is not None:
        config["description"] = plan["description"]
    return config, copied


def _clone_worker(ctx: Ctx, vmid: int, newid: int, plan: dict[str, Any], task: Task) -> None:
    key = vm_key(ctx.node, newid)
    with locked_state(ctx.root) as state:
        if key in state["vms"]:
            raise TaskError(f"unable to create VM {newid}: config file already exists")
        source = get_vm(state, ctx.node, vmid)
        state["vms"][key] = {
            "vmid": newid,
            "node": ctx.node,
            "name": plan["name"],
            "status": "stopped",
            "config": {},
            "lock": "clone",
            "started_at": None,
            "address": allocate_address(state),
        }
        config, copied = _clone_config(ctx, state, source, newid, plan)
    how = "full" if plan["full"] else "linked"
    task.log(f"create {how} clone of drive(s) of VM {vmid}")
    copy_cost(ctx, copied)  # outside the lock: other tasks go on meanwhile
    with locked_state(ctx.root) as state:
        state["vms"][key].update(config=config, lock=None)


@route("POST", "/nodes/{node}/qemu/{vmid}/clone")
def clone_vm(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> str:
    """Synchronous checks as qemu-server's, then a `qmclone` task (its id the source's)."""
    vmid, newid = path["vmid"], params["newid"]
    state = read_state(ctx.root)
    source = get_vm(state, ctx.node, vmid)
    if source.get("lock"):
        raise fail(f"VM is locked ({source['lock']})")
    target = params.get("target")
    if target and target != ctx.node:
        raise fail(f"no such cluster node '{target}'")
    if vm_key(ctx.node, newid) in state["vms"]:
        raise fail(f"unable to create VM {newid}: config file already exists")
    template = bool(source["config"].get("template"))
    full = bool(int(params["full"])) if "full" in params else not template
    if not full:
        for option in ("storage", "format"):
            if params.get(option):
                raise fail(f"parameter '{option}' not allowed for linked clones")
        for key, volid, _ in _disks(source["config"]):
            if not template or "base-" not in volid:
                raise fail(f"Linked clone feature is not supported for '{volid}' ({key})")
    if params.get("storage"):
        storage_def(state, ctx.node, params["storage"])  # PVE's error for an unknown one
    name = params.get("name") or f"Copy-of-VM-{source['config'].get('name') or vmid}"
    plan = {
        "full": full,
        "storage": params.get("storage"),
        "name": name,
        "description": params.get("description"),
    }
    return run_task(
        ctx, "qmclone", str(vmid), lambda task: _clone_worker(ctx, vmid, newid, plan, task)
    )
