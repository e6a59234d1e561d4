"""Simulated containers (LXC): `/nodes/{node}/lxc` as PVE 9.1 documents it.

A container lives in `state["vms"]` next to the VMs, marked `"type": "lxc"`: PVE keeps
one vmid space for both (a create refuses a vmid either kind holds), and the simulator's
SSH daemon serves any running guest that has an address and a host key, so a container
is reached over SSH like a VM. What differs is PVE's side:

- create (`vzcreate`) unpacks a `vztmpl` volume into a new root file system (`rootfs`,
  a volume of content `rootdir` on the storage) and, as PVE's LXC setup does, writes the
  hostname, root's `authorized_keys` (`ssh-public-keys`) and fresh SSH host keys into it;
- there is no guest agent: `GET .../interfaces` is read by the host, from a running
  container's network namespace (PVE 9 answers in the agent's `ip-addresses` form too);
- the root file system only grows (`resize`), and `unprivileged` is fixed at create.

The qemu routes do not see containers (`_vms.get_vm` takes them for missing), nor these
routes VMs (`get_ct`).
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from pveplan.sim._api import Ctx, route
from pveplan.sim._errors import TaskError, fail, param_error
from pveplan.sim._params import GIB, MIB, format_size, parse_propstring, parse_size, split_drive
from pveplan.sim._schema import FORMATS
from pveplan.sim._state import allocate_address, locked_state, read_state, take_fault, vm_key
from pveplan.sim._storage import parse_volume, storage_def, storage_dir
from pveplan.sim._storagecfg import is_file_based
from pveplan.sim._tasks import Task, run_task
from pveplan.sim._vmconfig import _random_mac

LXC = "lxc"
CONFIG_KEYS_NOT_STORED = {"vmid", "ostemplate", "storage", "start", "ssh-public-keys", "password"}
CONFIG_KEYS_NOT_STORED |= {"pool", "force", "unique", "restore", "bwlimit", "ha-managed"}
CONFIG_KEYS_NOT_STORED |= {"ignore-unpack-errors", "delete", "digest", "revert"}


def ct_conf_missing(node: str, vmid: int) -> str:
    return f"Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist"


def is_ct(guest: dict[str, Any]) -> bool:
    return guest.get("type") == LXC


def get_ct(state: dict[str, Any], node: str, vmid: int) -> dict[str, Any]:
    """Container `vmid` of `node`, or PVE's 'Configuration file ... does not exist'."""
    ct = state["vms"].get(vm_key(node, vmid))
    if ct is None or not is_ct(ct):
        raise fail(ct_conf_missing(node, vmid))
    return ct


def node_cts(ctx: Ctx, state: dict[str, Any]) -> list[dict[str, Any]]:
    cts = [g for g in state["vms"].values() if g["node"] == ctx.node and is_ct(g)]
    return sorted(cts, key=lambda ct: ct["vmid"])


# --- views -----------------------------------------------------------------------------


def _rootfs_bytes(config: dict[str, Any]) -> int:
    size = split_drive(str(config.get("rootfs", "")))[1].get("size")
    return parse_size(size, "G") if size else 0


def _numbers(ct: dict[str, Any]) -> dict[str, Any]:
    config = ct["config"]
    running = ct["status"] == "running"
    uptime = int(time.time() - ct["started_at"]) if running and ct.get("started_at") else 0
    maxmem = int(config.get("memory", 512)) * MIB
    return {
        "cpus": int(config.get("cores", 1)),
        "maxmem": maxmem,
        "mem": maxmem // 10 if running else 0,
        "maxswap": int(config.get("swap", 512)) * MIB,
        "swap": 0,
        "maxdisk": _rootfs_bytes(config),
        "disk": _rootfs_bytes(config) // 20 if running else 0,
        "cpu": 0.0042 if running else 0,
        "netin": 1500 * uptime,
        "netout": 900 * uptime,
        "diskread": 4096 * uptime,
        "diskwrite": 2048 * uptime,
        "uptime": uptime,
    }


def _name(ct: dict[str, Any]) -> str:
    return ct["config"].get("hostname") or f"CT{ct['vmid']}"


def ct_resource_entry(ct: dict[str, Any]) -> dict[str, Any]:
    """A container as `/cluster/resources?type=vm` lists it (`type: lxc`)."""
    numbers = _numbers(ct)
    entry = {
        "id": f"lxc/{ct['vmid']}",
        "type": LXC,
        "vmid": ct["vmid"],
        "node": ct["node"],
        "name": _name(ct),
        "status": ct["status"],
        "template": 1 if ct["config"].get("template") else 0,
        "maxcpu": numbers.pop("cpus"),
        **{k: v for k, v in numbers.items() if k not in ("maxswap", "swap")},
    }
    if ct["config"].get("tags"):
        entry["tags"] = ct["config"]["tags"]
    if ct.get("lock"):
        entry["lock"] = ct["lock"]
    return entry


@route("GET", "/nodes/{node}/lxc")
def list_cts(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for ct in node_cts(ctx, read_state(ctx.root)):
        numbers = _numbers(ct)
        entry = {"vmid": ct["vmid"], "name": _name(ct), "status": ct["status"], "type": LXC}
        entry.update(numbers)
        if ct["config"].get("tags"):
            entry["tags"] = ct["config"]["tags"]
        out.append(entry)
    return out


@route("GET", "/nodes/{node}/lxc/{vmid}")
def ct_index(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    get_ct(read_state(ctx.root), ctx.node, path["vmid"])
    subdirs = ["config", "status", "interfaces", "resize", "pending", "snapshot"]
    return [{"subdir": name} for name in subdirs]


@route("GET", "/nodes/{node}/lxc/{vmid}/status/current")
def ct_status(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    ct = get_ct(read_state(ctx.root), ctx.node, path["vmid"])
    status = {
        "vmid": ct["vmid"],
        "name": _name(ct),
        "status": ct["status"],
        "type": LXC,
        "ha": {"managed": 0},
        **_numbers(ct),
    }
    if ct["config"].get("tags"):
        status["tags"] = ct["config"]["tags"]
    if ct["status"] == "running":
        status["pid"] = 20000 + ct["vmid"] % 40000
    return status


@route("GET", "/nodes/{node}/lxc/{vmid}/config")
def ct_config(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    ct = get_ct(read_state(ctx.root), ctx.node, path["vmid"])
    if params.get("snapshot"):
        raise fail(f"snapshot '{params['snapshot']}' does not exist")
    result = dict(ct["config"])
    if ct.get("lock"):
        result["lock"] = ct["lock"]
    text = "".join(f"{k}: {result[k]}\n" for k in sorted(result))
    result["digest"] = hashlib.sha1(text.encode()).hexdigest()
    return result


def _net_value(text: str) -> str:
    """A container NIC as PVE stores it: `name=...,bridge=...,hwaddr=MAC,...,type=veth`."""
    values, _ = parse_propstring(FORMATS["CT_NET"], text)
    values.setdefault("hwaddr", _random_mac())
    values.setdefault("type", "veth")
    first = f"name={values.pop('name')}"
    return ",".join([first, *(f"{k}={values[k]}" for k in sorted(values))])


def _config_values(params: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in params.items():
        if key in CONFIG_KEYS_NOT_STORED or key == "rootfs":
            continue
        if key.startswith("net") and key[3:].isdigit():
            value = _net_value(str(value))
        elif key == "tags":
            value = ";".join(t for t in str(value).replace(",", ";").split(";") if t)
        elif isinstance(value, bool):
            value = int(value)
        values[key] = value
    return values


# --- create ----------------------------------------------------------------------------


def _check_template(ctx: Ctx, state: dict[str, Any], ostemplate: str) -> None:
    volume = parse_volume(ctx, state, ostemplate)
    if volume.content != "vztmpl":
        raise param_error({"ostemplate": f"{ostemplate} is not a container template"})
    if volume.path is None or not volume.path.is_file():
        raise fail(f"volume '{ostemplate}' does not exist")


def _rootfs_plan(state: dict[str, Any], node: str, text: str) -> tuple[str, int]:
    """(storage, bytes) of a new root file system `STORAGE:SIZE_IN_GiB`."""
    values, _ = parse_propstring(FORMATS["CT_ROOTFS"], text)
    storage, _, size = values["volume"].partition(":")
    if not size.isdigit():
        raise param_error({"rootfs": "pveplan's simulator makes only new volumes (STORAGE:GiB)"})
    if "rootdir" not in storage_def(state, node, storage)["content"]:
        raise fail(f"storage '{storage}' does not support container directories")
    return storage, int(size) * GIB


def _allocate_rootfs(ctx: Ctx, state: dict[str, Any], vmid: int, storage: str, size: int) -> str:
    """A `rootdir` volume: a raw file on a directory storage, an LV on LVM/ZFS."""
    name = f"vm-{vmid}-disk-0"
    sdef = storage_def(state, ctx.node, storage)
    if is_file_based(sdef):
        path = storage_dir(ctx, storage, state) / "images" / str(vmid) / f"{name}.raw"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            handle.truncate(size)
        return f"{storage}:{vmid}/{name}.raw"
    volid = f"{storage}:{name}"
    entry = {"content": "rootdir", "format": "raw", "size": size, "ctime": int(time.time())}
    state["storage"][ctx.node][storage][volid] = {**entry, "vmid": vmid}
    return volid


@route("POST", "/nodes/{node}/lxc")
def create_ct(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> str:
    """`pct create`: synchronous checks, then a `vzcreate` task that allocates the root
    file system, unpacks the template and sets the container up."""
    vmid = params["vmid"]
    state = read_state(ctx.root)
    existing = state["vms"].get(vm_key(ctx.node, vmid))
    if existing is not None:
        kind = "CT" if is_ct(existing) else "VM"
        raise fail(
            f"unable to create CT {vmid} - {kind} {vmid} already exists on node '{ctx.node}'"
        )
    _check_template(ctx, state, params["ostemplate"])
    storage, size = _rootfs_plan(
        state, ctx.node, str(params.get("rootfs") or f"{params.get('storage', 'local')}:4")
    )
    config = {"arch": "amd64", "ostype": "debian", "memory": 512, "swap": 512, "cores": 1}
    config.update(_config_values(params))
    keys = str(params.get("ssh-public-keys") or "")
    start = bool(params.get("start"))

    def worker(task: Task) -> None:
        _create_worker(ctx, vmid, config, storage, size, keys, task)
        if start:
            _boot(ctx, vmid)

    return run_task(ctx, "vzcreate", str(vmid), worker)


def _create_worker(
    ctx: Ctx,
    vmid: int,
    config: dict[str, Any],
    storage: str,
    size: int,
    keys: str,
    task: Task,
) -> None:
    fault = take_fault(ctx.root, "create", vmid=vmid, name=config.get("hostname"))
    if fault:
        raise TaskError(fault)
    key = vm_key(ctx.node, vmid)
    with locked_state(ctx.root) as state:
        if key in state["vms"]:
            raise TaskError(f"unable to create CT {vmid}: config file already exists")
        volid = _allocate_rootfs(ctx, state, vmid, storage, size)
        task.log(f"extracting archive '{config.get('ostemplate', '')}'")
        config["rootfs"] = f"{volid},size={format_size(size)}"
        state["vms"][key] = {
            "vmid": vmid,
            "node": ctx.node,
            "type": LXC,
            "name": config.get("hostname"),
            "status": "stopped",
            "config": config,
            "lock": None,
            "started_at": None,
            "address": allocate_address(state),
        }
    hostname = str(config.get("hostname") or f"CT{vmid}")
    _setup_rootfs(ctx, vmid, hostname, keys, task)


def _setup_rootfs(ctx: Ctx, vmid: int, hostname: str, keys: str, task: Task) -> None:
    """What PVE's LXC setup writes into a new container: its hostname, root's keys, and
    fresh SSH host keys ("Creating SSH host key ... done")."""
    from pveplan.sim._cloudinit import apply_cloud_init  # the guest's tree and tools

    setup = {
        "hostname": hostname,
        "disable_root": False,
        "ssh_authorized_keys": [k.strip() for k in keys.splitlines() if k.strip()],
    }
    apply_cloud_init(ctx.root, ctx.node, vmid, json.dumps(setup), hostname=hostname)
    task.log("Creating SSH host key 'ssh_host_ed25519_key' - this may take some time ...")
    task.log("done: SHA256 fingerprint of the new key")


# --- config, resize --------------------------------------------------------------------


@route("PUT", "/nodes/{node}/lxc/{vmid}/config", returns_null=True)
def set_ct_config(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> None:
    changes = {k: v for k, v in params.items() if k not in ("delete", "digest", "revert")}
    deletes = [k for k in str(params.get("delete", "")).replace(";", ",").split(",") if k]
    if not changes and not deletes:
        raise fail("no options specified")
    if "unprivileged" in changes:
        raise param_error({"unprivileged": "unable to modify read-only option: 'unprivileged'"})
    if "rootfs" in changes:
        raise param_error({"rootfs": "pveplan's simulator changes the rootfs only by resize"})
    with locked_state(ctx.root) as state:
        ct = get_ct(state, ctx.node, path["vmid"])
        if ct.get("lock"):
            raise fail(f"CT is locked ({ct['lock']})")
        for key in deletes:
            ct["config"].pop(key, None)
        ct["config"].update(_config_values(changes))
        ct["name"] = ct["config"].get("hostname")


@route("PUT", "/nodes/{node}/lxc/{vmid}/resize")
def resize_ct(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> str:
    vmid = path["vmid"]
    get_ct(read_state(ctx.root), ctx.node, vmid)

    def worker(task: Task) -> None:
        with locked_state(ctx.root) as state:
            ct = get_ct(state, ctx.node, vmid)
            disk, text = params["disk"], params["size"]
            value = ct["config"].get(disk)
            if value is None:
                raise TaskError(f"unable to resize - no such mount point '{disk}'")
            current = parse_size(split_drive(str(value))[1].get("size", "0G"), "G")
            wanted = parse_size(text.lstrip("+"), "G")
            size = current + wanted if text.startswith("+") else wanted
            if size < current:
                raise TaskError(f"unable to shrink disk size from {current} to {size}")
            volid, options = split_drive(str(value))
            volume = parse_volume(ctx, state, volid)
            if volume.path is not None and volume.path.exists():
                with open(volume.path, "r+b") as handle:
                    handle.truncate(size)
            elif (entry := state["storage"][ctx.node][volume.storage].get(volid)) is not None:
                entry["size"] = size
            parts = [volid, *(f"{k}={v}" for k, v in options.items() if k != "size")]
            ct["config"][disk] = ",".join([*parts, f"size={format_size(size)}"])
            task.log(f"resize {disk} to {format_size(size)}")

    return run_task(ctx, "resize", str(vmid), worker)


# --- power, interfaces, destroy --------------------------------------------------------


def _boot(ctx: Ctx, vmid: int) -> None:
    state = read_state(ctx.root)
    ct = state["vms"].get(vm_key(ctx.node, vmid))
    if ct is None or not is_ct(ct):
        raise TaskError(ct_conf_missing(ctx.node, vmid))
    if ct["status"] == "running":
        raise TaskError(f"CT {vmid} already running")
    fault = take_fault(ctx.root, "start", vmid=vmid, name=ct["config"].get("hostname"))
    if fault:
        raise TaskError(fault)
    from pveplan.sim import _network

    bridge = _network.missing_bridge(_network.node_network(state, ctx.node), ct["config"])
    if bridge is not None:
        raise TaskError(f"bridge '{bridge}' does not exist")
    with locked_state(ctx.root) as state:
        get_ct(state, ctx.node, vmid).update(status="running", started_at=time.time())


def _stop(ctx: Ctx, vmid: int) -> None:
    with locked_state(ctx.root) as state:
        ct = state["vms"].get(vm_key(ctx.node, vmid))
        if ct is None or not is_ct(ct):
            raise TaskError(ct_conf_missing(ctx.node, vmid))
        ct.update(status="stopped", started_at=None)


def _power(op: str) -> None:
    wtype = {"start": "vzstart", "stop": "vzstop", "shutdown": "vzshutdown"}.get(op, "vzreboot")

    def handler(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> str:
        vmid = path["vmid"]
        ct = get_ct(read_state(ctx.root), ctx.node, vmid)
        if op in ("shutdown", "reboot") and ct["status"] != "running":
            raise fail(f"CT {vmid} not running")

        def worker(task: Task) -> None:
            if op == "start":
                _boot(ctx, vmid)
            elif op == "reboot":
                _stop(ctx, vmid)
                _boot(ctx, vmid)
            else:
                _stop(ctx, vmid)

        return run_task(ctx, wtype, str(vmid), worker)

    route("POST", f"/nodes/{{node}}/lxc/{{vmid}}/status/{op}")(handler)


for _op in ("start", "stop", "shutdown", "reboot"):
    _power(_op)


def ct_interfaces(ct: dict[str, Any]) -> list[dict[str, Any]]:
    """`lo` and `eth0` with the container's (loopback) address, in PVE 9's form."""
    mac = ""
    for part in str(ct["config"].get("net0", "")).split(","):
        if part.startswith("hwaddr="):
            mac = part.split("=", 1)[1].lower()
    lo = [
        {"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8},
        {"ip-address": "::1", "ip-address-type": "ipv6", "prefix": 128},
    ]
    eth0 = [{"ip-address": ct["address"], "ip-address-type": "ipv4", "prefix": 8}]
    return [
        {
            "name": "lo",
            "hwaddr": "00:00:00:00:00:00",
            "hardware-address": "00:00:00:00:00:00",
            "inet": "127.0.0.1/8",
            "inet6": "::1/128",
            "ip-addresses": lo,
        },
        {
            "name": "eth0",
            "hwaddr": mac,
            "hardware-address": mac,
            "inet": f"{ct['address']}/8",
            "ip-addresses": eth0,
        },
    ]


@route("GET", "/nodes/{node}/lxc/{vmid}/interfaces")
def get_interfaces(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    ct = get_ct(read_state(ctx.root), ctx.node, path["vmid"])
    if ct["status"] != "running":
        raise fail(f"CT {path['vmid']} is not running")
    return ct_interfaces(ct)


@route("DELETE", "/nodes/{node}/lxc/{vmid}")
def destroy_ct(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> str:
    vmid = path["vmid"]
    ct = get_ct(read_state(ctx.root), ctx.node, vmid)
    if ct["config"].get("protection"):
        raise fail(f"can't remove CT {vmid} - protection mode enabled")
    if ct["status"] == "running" and not params.get("force"):
        raise fail(f"CT {vmid} is running - destroy failed")

    def worker(task: Task) -> None:
        from pveplan.sim._drives import free_volume
        from pveplan.sim._setup import delete_trees

        fault = take_fault(ctx.root, "destroy", vmid=vmid, name=ct["config"].get("hostname"))
        if fault:
            raise TaskError(fault)
        with locked_state(ctx.root) as state:
            doomed = get_ct(state, ctx.node, vmid)
            volid = split_drive(str(doomed["config"].get("rootfs", "")))[0]
            if volid:
                free_volume(ctx, state, volid)
            del state["vms"][vm_key(ctx.node, vmid)]
        if params.get("purge"):
            task.log(f"purging CT {vmid} from related configurations..")
        delete_trees([ctx.root.vm_dir(ctx.node, vmid)])

    return run_task(ctx, "vzdestroy", str(vmid), worker)
