"""A VM's power and end: start (with cloud-init's first boot), stop, shutdown,
reboot, reset, and destroy with its volumes.

`boot` hands the guest side of a start to `_cloudinit` (imported on call: the other
commands never pay for the guest tools) and starts the runcmd runner (`_runcmd`).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from typing import Any
from urllib.parse import unquote

from pveplan.sim import _network
from pveplan.sim._api import Ctx, Handler, route
from pveplan.sim._drives import free_volume
from pveplan.sim._errors import TaskError, conf_missing, fail
from pveplan.sim._params import split_drive
from pveplan.sim._runcmd import kill_runcmd, launch
from pveplan.sim._setup import delete_trees, remove_host_node
from pveplan.sim._state import locked_state, nested_host, read_state, take_fault, vm_key
from pveplan.sim._storage import parse_volume, scan_dir_storage, storage_def, storage_dir
from pveplan.sim._storagecfg import is_file_based, node_storages
from pveplan.sim._tasks import Task, run_task
from pveplan.sim._vms import DRIVE_KEY_RE, get_vm

# --- power -----------------------------------------------------------------------------


def _cloud_init_drive(config: dict[str, Any]) -> bool:
    return any(
        DRIVE_KEY_RE.match(key) and "cloudinit" in split_drive(str(value))[0]
        for key, value in config.items()
    )


def _snippet_text(ctx: Ctx, state: dict[str, Any], volid: str) -> str:
    volume = parse_volume(ctx, state, volid)
    if volume.content != "snippets" or volume.path is None:
        raise TaskError(f"{volid} is not in the snippets directory")
    try:
        return volume.path.read_text()
    except OSError as err:
        shown = "/" + str(volume.path.relative_to(ctx.root.host_dir(ctx.node)))
        raise TaskError(f"unable to open file '{shown}' - {err.strerror}") from err


def _generated_user_data(vm: dict[str, Any]) -> str:
    """The user-data PVE writes on the cloud-init drive from `ciuser`/`sshkeys`."""
    config = vm["config"]
    hostname = config.get("name") or f"VM{vm['vmid']}"
    lines = [
        "#cloud-config",
        f"hostname: {hostname}",
        "manage_etc_hosts: true",
        f"fqdn: {hostname}",
    ]
    if config.get("ciuser"):
        lines.append(f"user: {config['ciuser']}")
    keys = [k.strip() for k in unquote(str(config.get("sshkeys", ""))).splitlines() if k.strip()]
    if keys:
        lines.append("ssh_authorized_keys:")
        lines += [f"  - {json.dumps(key)}" for key in keys]
    lines += ["chpasswd:", "  expire: False", "users:", "  - default", "package_upgrade: true"]
    return "\n".join(lines) + "\n"


def cloud_init_user_data(ctx: Ctx, state: dict[str, Any], vm: dict[str, Any]) -> str | None:
    """What the VM's cloud-init will read: a `cicustom` user snippet, or PVE's own."""
    config = vm["config"]
    if not _cloud_init_drive(config):
        return None
    custom = dict(
        part.split("=", 1) for part in str(config.get("cicustom", "")).split(",") if "=" in part
    )
    user = _snippet_text(ctx, state, custom["user"]) if "user" in custom else None
    if "vendor" in custom:
        vendor = _snippet_text(ctx, state, custom["vendor"])
        return _under_vendor_data(user or _generated_user_data(vm), vendor)
    return user if user is not None else _generated_user_data(vm)


def _under_vendor_data(user: str, vendor: str) -> str:
    """The cloud-config cloud-init acts on: vendor-data's keys, and the user-data's over
    them (the user overrides the vendor). Vendor-data in another format (a script) is not
    run by the simulator: the user-data alone."""
    import yaml

    try:
        extra = yaml.safe_load(vendor) if vendor.lstrip().startswith("#cloud-config") else None
        base = yaml.safe_load(user)
    except yaml.YAMLError:
        return user
    if not isinstance(extra, dict) or not isinstance(base, dict):
        return user
    return "#cloud-config\n" + yaml.safe_dump({**extra, **base}, sort_keys=True)


def boot(ctx: Ctx, vmid: int, task: Task) -> None:
    """Start a VM: checks in PVE's order, a fault if configured, cloud-init, running."""
    state = read_state(ctx.root)
    vm = state["vms"].get(vm_key(ctx.node, vmid))
    if vm is None:
        raise TaskError(conf_missing(ctx.node, vmid))
    if vm.get("lock"):
        raise TaskError(f"VM is locked ({vm['lock']})")
    if vm["config"].get("template"):
        raise TaskError("you can't start a vm if it's a template")
    if vm["status"] == "running":
        raise TaskError(f"VM {vmid} already running")
    fault = take_fault(ctx.root, "start", vmid=vmid, name=vm["config"].get("name"))
    if fault:
        raise TaskError(fault)
    user_data = cloud_init_user_data(ctx, state, vm)
    if user_data is not None:
        task.log("generating cloud-init ISO")
    network = _network.node_network(state, ctx.node)
    bridge = _network.missing_bridge(network, vm["config"])
    if bridge is not None:
        raise TaskError(f"bridge '{bridge}' does not exist")
    mtu = _network.nic_mtu_problem(network, vm["config"])
    if mtu is not None:
        raise TaskError(mtu)
    from pveplan.sim._cloudinit import apply_cloud_init

    apply_cloud_init(
        ctx.root, ctx.node, vmid, user_data, hostname=vm["config"].get("name") or f"VM{vmid}"
    )
    with locked_state(ctx.root) as state:
        get_vm(state, ctx.node, vmid).update(status="running", started_at=time.time())
    launch(ctx.root, ctx.node, vmid)  # cloud-init's final stage: runcmd, after the boot


def _stop_worker(ctx: Ctx, vmid: int, op: str, params: dict[str, Any], task: Task) -> None:
    state = read_state(ctx.root)
    vm = state["vms"].get(vm_key(ctx.node, vmid))
    if vm is None:
        raise TaskError(f"unable to find configuration file for VM {vmid} on node '{ctx.node}'")
    if vm.get("lock") and not params.get("skiplock"):
        raise TaskError(f"VM is locked ({vm['lock']})")
    fault = take_fault(ctx.root, "stop", vmid=vmid, name=vm["config"].get("name"))
    if fault:
        raise TaskError(fault)
    with locked_state(ctx.root) as state:
        get_vm(state, ctx.node, vmid).update(status="stopped", started_at=None)
    kill_runcmd(ctx.root, ctx.node, vmid, op)  # after the status: a runner starting now exits


def _power_route(op: str) -> Handler:
    wtype = {"start": "qmstart", "stop": "qmstop", "shutdown": "qmshutdown"}[op]

    def handler(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> str:
        vmid = path["vmid"]
        if op == "start":
            return run_task(ctx, wtype, str(vmid), lambda task: boot(ctx, vmid, task))
        return run_task(
            ctx, wtype, str(vmid), lambda task: _stop_worker(ctx, vmid, op, params, task)
        )

    handler.__doc__ = f"POST .../status/{op}: a UPID even for a missing VM; the task fails."
    return route("POST", f"/nodes/{{node}}/qemu/{{vmid}}/status/{op}")(handler)


for _op in ("start", "stop", "shutdown"):
    _power_route(_op)


def _restart_route(op: str) -> Handler:
    def handler(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> str:
        vmid = path["vmid"]
        vm = read_state(ctx.root)["vms"].get(vm_key(ctx.node, vmid))
        if vm is None:
            raise fail(f"unable to find configuration file for VM {vmid} on node '{ctx.node}'")
        if vm["status"] != "running":
            raise fail(f"VM {vmid} not running")

        def worker(task: Task) -> None:
            with locked_state(ctx.root) as state:
                get_vm(state, ctx.node, vmid)["started_at"] = time.time()

        return run_task(ctx, f"qm{op}", str(vmid), worker)

    handler.__doc__ = f"POST .../status/{op}: refused synchronously unless the VM runs."
    return route("POST", f"/nodes/{{node}}/qemu/{{vmid}}/status/{op}")(handler)


for _op in ("reboot", "reset"):
    _restart_route(_op)


# --- destroy ---------------------------------------------------------------------------


def _doomed_volumes(
    ctx: Ctx, state: dict[str, Any], vm: dict[str, Any], unreferenced: bool
) -> list[str]:
    """What destroy removes: the VM's own disks in its config, and with
    `destroy-unreferenced-disks` every other volume it owns (never an ISO or another
    VM's disk that the config merely points at)."""
    vmid = vm["vmid"]
    # Its own disks, base volumes (a template's) and thin children of another's base.
    parent = r"(?:\d+/base-\d+-[^/]+/|base-\d+-disk-\d+/)?"
    owned = re.compile(rf"^[^:]+:{parent}(?:{vmid}/)?(?:vm|base)-{vmid}-")
    volids = {
        split_drive(str(value))[0]
        for key, value in vm["config"].items()
        if DRIVE_KEY_RE.match(key) or key.startswith("unused")
    }
    if unreferenced:
        for volumes in state["storage"][ctx.node].values():
            volids.update(v for v, entry in volumes.items() if entry.get("vmid") == vmid)
        for storage in _dir_storages(ctx, state):
            volids.update(
                v["volid"] for v in scan_dir_storage(ctx, state, storage) if v.get("vmid") == vmid
            )
    return sorted(volid for volid in volids if owned.match(volid))


def _dir_storages(ctx: Ctx, state: dict[str, Any]) -> list[str]:
    return [s for s, cfg in node_storages(state, ctx.node).items() if is_file_based(cfg)]


def _destroy_worker(ctx: Ctx, vmid: int, params: dict[str, Any], task: Task) -> None:
    vm = get_vm(read_state(ctx.root), ctx.node, vmid)
    fault = take_fault(ctx.root, "destroy", vmid=vmid, name=vm["config"].get("name"))
    if fault:
        raise TaskError(fault)
    with locked_state(ctx.root) as state:
        vm = get_vm(state, ctx.node, vmid)
        if vm["config"].get("template"):
            from pveplan.sim._clone import base_in_use

            base = base_in_use(state, ctx.node, vm["config"])
            if base is not None:
                raise TaskError(f"base volume '{base}' is still in use by linked cloned")
        for volid in _doomed_volumes(
            ctx, state, vm, bool(params.get("destroy-unreferenced-disks"))
        ):
            free_volume(ctx, state, volid)
            if storage_def(state, ctx.node, volid.split(":")[0])["type"] in ("lvmthin", "lvm"):
                task.log(f'  Logical volume "{volid.split(":", 1)[1]}" successfully removed.')
        inner = nested_host(state, ctx.node, vmid)  # a PVE host: its guests die with it
        doomed = remove_host_node(ctx.root, state, inner) if inner is not None else []
        del state["vms"][vm_key(ctx.node, vmid)]
        kill_runcmd(ctx.root, ctx.node, vmid, "destroyed")
        dirs = [storage_dir(ctx, s, state) for s in _dir_storages(ctx, state)]
    for base in dirs:
        with contextlib.suppress(OSError):
            (base / "images" / str(vmid)).rmdir()  # only once empty
    if params.get("purge"):
        task.log(f"purging VM {vmid} from related configurations..")
    delete_trees([*doomed, ctx.root.vm_dir(ctx.node, vmid)])


@route("DELETE", "/nodes/{node}/qemu/{vmid}")
def destroy_vm(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> str:
    vmid = path["vmid"]
    vm = get_vm(read_state(ctx.root), ctx.node, vmid)
    if vm.get("lock") and not params.get("skiplock"):
        raise fail(f"VM is locked ({vm['lock']})")
    if vm["config"].get("protection"):
        raise fail(f"can't remove VM {vmid} - protection mode enabled")
    if vm["status"] == "running":
        raise fail(f"VM {vmid} is running - destroy failed")
    return run_task(
        ctx, "qmdestroy", str(vmid), lambda task: _destroy_worker(ctx, vmid, params, task)
    )
