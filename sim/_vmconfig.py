"""Creating a VM and changing its config: `POST /qemu` and `PUT|POST .../config`.

Checks what PVE checks before any work (ssh keys, network values, drives through
`_drives`), fills PVE's creation defaults, and applies changes and deletions under the
state lock; `create --start 1` boots the VM through `_power`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from pveplan.sim._api import Ctx, route
from pveplan.sim._drives import DrivePlan, apply_drives, free_volume, import_bytes, plan_drives
from pveplan.sim._errors import ApiError, TaskError, fail, param_error
from pveplan.sim._params import normalize_tags, parse_propstring, split_drive, split_list
from pveplan.sim._power import boot
from pveplan.sim._schema import FORMATS, PARAMS, VM_OPTIONS
from pveplan.sim._state import allocate_address, locked_state, read_state, take_fault, vm_key
from pveplan.sim._stdio import write_stdout
from pveplan.sim._tasks import Task, run_task
from pveplan.sim._vms import (
    DRIVE_KEY_RE,
    DRIVE_ORDER,
    QEMU_VERSION,
    config_digest,
    get_vm,
    is_cdrom,
)

NOT_CONFIG_KEYS = {
    "vmid",
    "start",
    "storage",
    "pool",
    "archive",
    "force",
    "unique",
    "bwlimit",
    "live-restore",
    "ha-managed",
    "import-working-storage",
    "delete",
    "digest",
    "revert",
    "skiplock",
    "background_delay",
}
SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)


def _valid_ssh_key(line: str) -> bool:
    """What `ssh-keygen -l` accepts, near enough: a known type and a matching blob."""
    import base64
    import struct

    fields = line.split()
    for index, word in enumerate(fields[:-1]):
        if word in SSH_KEY_TYPES:
            try:
                blob = base64.b64decode(fields[index + 1], validate=True)
                (length,) = struct.unpack(">I", blob[:4])
            except (ValueError, struct.error):
                return False
            return blob[4 : 4 + length] == word.encode()
    return False


def check_sshkeys(params: dict[str, Any]) -> None:
    """The decoded `sshkeys` must be valid public keys (PVE runs ssh-keygen on each)."""
    if "sshkeys" not in params:
        return
    lines = [line.strip() for line in unquote(params["sshkeys"]).splitlines()]
    if not all(_valid_ssh_key(line) for line in lines if line and not line.startswith("#")):
        raise fail("SSH public key validation error")


def _random_mac() -> str:
    return "BC:24:11:" + ":".join(f"{b:02X}" for b in secrets.token_bytes(3))


def _net_value(text: str) -> str:
    """A NIC as PVE stores it: `model=MAC` first (generated if absent), then options."""
    values, _ = parse_propstring(FORMATS["NET"], text)
    model = values.pop("model")
    mac = values.pop("macaddr", None) or _random_mac()
    return ",".join([f"{model}={mac.upper()}", *(f"{k}={values[k]}" for k in sorted(values))])


def config_values(table: dict[str, dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    """The non-drive parameters as config values (normalized the way PVE stores them)."""
    values: dict[str, Any] = {}
    for key, value in params.items():
        if key in NOT_CONFIG_KEYS or DRIVE_KEY_RE.match(key):
            continue
        if key == "tags":
            value = normalize_tags(value)
        elif key == "cipassword":
            value = "$5$" + hashlib.sha256(str(value).encode()).hexdigest()[:43]
        elif key == "vmgenid" and value in ("1", 1):
            value = str(uuid.uuid4())
        elif re.fullmatch(r"net\d+", key):
            value = _net_value(value)
        elif key == "memory":
            value = value.removeprefix("current=")  # PVE prints the default key bare
        values[key] = value
    return values


def _creation_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """What PVE adds to a new VM: meta, smbios1 uuid, vmgenid, and a default boot order."""
    defaults = {
        "meta": f"creation-qemu={QEMU_VERSION},ctime={int(time.time())}",
        "smbios1": f"uuid={uuid.uuid4()}",
        "vmgenid": str(uuid.uuid4()),
    }
    if "boot" not in config:
        defaults["boot"] = "order=" + ";".join(_default_boot(config))
    return {key: value for key, value in defaults.items() if key not in config}


def _default_boot(config: dict[str, Any]) -> list[str]:
    drives = [key for key in DRIVE_ORDER if key in config]
    disk = next((key for key in drives if not is_cdrom(str(config[key]))), None)
    cdrom = next((key for key in drives if is_cdrom(str(config[key]))), None)
    net = next((key for key in sorted(config) if re.fullmatch(r"net\d+", key)), None)
    return [key for key in (disk, cdrom, net) if key]


@route("POST", "/nodes/{node}/qemu")
def create_vm(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> str:
    """Create a VM: synchronous checks, then a `qmcreate` task that allocates the disks."""
    vmid = params["vmid"]
    check_sshkeys(params)
    state = read_state(ctx.root)
    if vm_key(ctx.node, vmid) in state["vms"]:
        raise fail(f"unable to create VM {vmid} - VM {vmid} already exists on node '{ctx.node}'")
    plans = plan_drives(ctx, state, params, params.get("storage"))
    config = config_values(VM_OPTIONS, params)
    start = bool(params.get("start"))
    return run_task(
        ctx,
        "qmcreate",
        str(vmid),
        lambda task: _create_worker(ctx, vmid, config, plans, start, task),
    )


def _create_worker(
    ctx: Ctx, vmid: int, config: dict[str, Any], plans: list[DrivePlan], start: bool, task: Task
) -> None:
    fault = take_fault(ctx.root, "create", vmid=vmid, name=config.get("name"))
    if fault:
        raise TaskError(fault)
    key = vm_key(ctx.node, vmid)
    with locked_state(ctx.root) as state:
        if key in state["vms"]:
            raise TaskError(f"unable to create VM {vmid}: config file already exists")
        state["vms"][key] = {
            "vmid": vmid,
            "node": ctx.node,
            "name": config.get("name"),
            "status": "stopped",
            "config": {},
            "lock": "create",
            "started_at": None,
            "address": allocate_address(state),
        }
    from pveplan.sim._clone import copy_cost

    copy_cost(ctx, import_bytes(ctx, plans))  # outside the lock, as a real copy runs
    try:
        with locked_state(ctx.root) as state:
            config.update(apply_drives(ctx, state, vmid, plans, task.log))
            config.update(_creation_defaults(config))
            state["vms"][key].update(config=config, lock=None)
    except (TaskError, ApiError):
        with locked_state(ctx.root) as state:
            state["vms"].pop(key, None)
        raise
    if start:
        try:
            boot(ctx, vmid, task)
        except (TaskError, ApiError) as err:
            task.warn(err.message)


def _delete_keys(ctx: Ctx, state: dict[str, Any], vm: dict[str, Any], keys: list[str]) -> None:
    """`delete=`: a removed disk becomes `unusedN`; a cloud-init drive is freed."""
    config = vm["config"]
    for key in keys:
        value = config.pop(key, None)
        if value is None or not DRIVE_KEY_RE.match(key) or str(value).startswith(("none", "cdrom")):
            continue
        volid = split_drive(str(value))[0]
        if volid.endswith("cloudinit") or volid.endswith("cloudinit.qcow2"):
            free_volume(ctx, state, volid)
        elif not is_cdrom(str(value)):
            slot = next(i for i in range(256) if f"unused{i}" not in config)
            config[f"unused{slot}"] = volid


def update_config(ctx: Ctx, vmid: int, params: dict[str, Any], log: Callable[[str], None]) -> None:
    """PUT/POST .../config: checks in PVE's order, then deletions and new values."""
    changes = {k: v for k, v in params.items() if k not in NOT_CONFIG_KEYS and k != "force"}
    deletes = split_list(params.get("delete", ""))
    if not changes and not deletes and not params.get("revert"):
        raise fail("no options specified")
    for key in deletes:
        if key in changes:
            raise param_error(
                {"delete": f"you can't use '-{key}' and -delete {key}' at the same time"}
            )
    check_sshkeys(changes)
    with locked_state(ctx.root) as state:
        vm = get_vm(state, ctx.node, vmid)
        if params.get("digest") and params["digest"] != config_digest(vm):
            raise fail("checksum mismatch (file change by other user?)")
        if vm.get("lock") and not params.get("skiplock"):
            raise fail(f"VM is locked ({vm['lock']})")
        plans = plan_drives(ctx, state, changes, None)
        _delete_keys(ctx, state, vm, deletes)
        vm["config"].update(config_values(VM_OPTIONS, changes))
        vm["config"].update(apply_drives(ctx, state, vmid, plans, log))
        if "tags" in changes and not vm["config"]["tags"]:
            del vm["config"]["tags"]
        vm["name"] = vm["config"].get("name")


@route("PUT", "/nodes/{node}/qemu/{vmid}/config", returns_null=True)
def put_config(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> None:
    update_config(ctx, path["vmid"], params, lambda line: write_stdout(line + "\n"))


@route("POST", "/nodes/{node}/qemu/{vmid}/config")
def post_config(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> str:
    vmid = path["vmid"]
    return run_task(
        ctx, "qmconfig", str(vmid), lambda task: update_config(ctx, vmid, params, task.log)
    )


CLOUDINIT_OPTIONS = ("ciuser", "cipassword", "sshkeys", "cicustom", "ipconfig0", "nameserver")
PARAMS["PUT /nodes/{node}/qemu/{vmid}/cloudinit"] = {}  # the schema's: path parameters only


@route("PUT", "/nodes/{node}/qemu/{vmid}/cloudinit", returns_null=True)
def regenerate_cloudinit(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> None:
    """`qm cloudinit update`: rebuild the cloud-init drive from the config now (PVE also
    does at each start). A VM without a cloud-init drive is left as it is, as PVE does;
    the drive's contents are kept as the options it was built from, which the guest
    reads at its next boot."""
    with locked_state(ctx.root) as state:
        vm = get_vm(state, ctx.node, path["vmid"])
        config = vm["config"]
        drives = [
            key
            for key, value in config.items()
            if DRIVE_KEY_RE.match(key) and "cloudinit" in split_drive(str(value))[0]
        ]
        if drives:
            vm["cloudinit_drive"] = {k: config[k] for k in CLOUDINIT_OPTIONS if k in config}
