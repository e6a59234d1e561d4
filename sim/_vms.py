"""Read-only views of simulated VMs: lists, status, config, and the guest agent.

Shared by the methods that read a VM and by those that change it (`get_vm`, the drive
and size helpers), so what a VM reports is computed in one place from its config.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any

from pveplan.sim._api import Ctx, route
from pveplan.sim._errors import conf_missing, fail
from pveplan.sim._params import BOOLEAN_WORDS, MIB, parse_propstring, parse_size, split_drive
from pveplan.sim._schema import FORMATS
from pveplan.sim._state import read_config, read_state, take_fault, vm_key

QEMU_VERSION = "10.1.2"
RUNNING_MACHINE = "pc-i440fx-10.1+pve0"


# --- VM views ---------------------------------------------------------------------------

DRIVE_KEY_RE = re.compile(r"^(?:(?:ide|sata|scsi|virtio)\d+|efidisk0|tpmstate0)$")
DRIVE_ORDER = [
    f"{bus}{i}"
    for bus, n in (("ide", 4), ("sata", 6), ("scsi", 31), ("virtio", 16))
    for i in range(n)
]


def node_vms(ctx: Ctx, state: dict[str, Any]) -> list[dict[str, Any]]:
    vms = [vm for vm in state["vms"].values() if vm["node"] == ctx.node and not _is_ct(vm)]
    return sorted(vms, key=lambda vm: vm["vmid"])


def get_vm(state: dict[str, Any], node: str, vmid: int) -> dict[str, Any]:
    """The VM `vmid` of `node`, or PVE's 'Configuration file ... does not exist'."""
    vm = state["vms"].get(vm_key(node, vmid))
    if vm is None or _is_ct(vm):  # a container's config is not in qemu-server/
        raise fail(conf_missing(node, vmid))
    return vm


def _is_ct(guest: dict[str, Any]) -> bool:
    return guest.get("type") == "lxc"  # `_lxc`: containers share the vmid space


def memory_mib(config: dict[str, Any]) -> int:
    value = str(config.get("memory", "512"))
    return int(value.removeprefix("current=").split(",")[0])


def cpu_count(config: dict[str, Any]) -> int:
    return int(config.get("vcpus") or int(config.get("cores", 1)) * int(config.get("sockets", 1)))


def is_cdrom(value: str) -> bool:
    volume, options = split_drive(value)
    return options.get("media") == "cdrom" or volume in ("cdrom", "none")


def drive_bytes(value: str) -> int:
    size = split_drive(value)[1].get("size")
    return parse_size(size, "G") if size else 0


def boot_disk_bytes(config: dict[str, Any]) -> int:
    """The size of the disk the VM boots from (PVE's `maxdisk`)."""
    order = str(config.get("boot", "")).removeprefix("order=").split(";")
    for key in [*order, *DRIVE_ORDER]:
        value = config.get(key)
        if key in DRIVE_ORDER and value and not is_cdrom(str(value)):
            return drive_bytes(str(value))
    return 0


def agent_enabled(config: dict[str, Any]) -> bool:
    values, _ = parse_propstring(FORMATS["AGENT"], str(config.get("agent", "0")))
    return BOOLEAN_WORDS.get(values.get("enabled", "0").lower(), 0) == 1


def _vm_numbers(vm: dict[str, Any]) -> dict[str, Any]:
    """Usage figures: a stopped VM uses nothing; a running one grows with its uptime."""
    config = vm["config"]
    running = vm["status"] == "running"
    uptime = int(time.time() - vm["started_at"]) if running and vm.get("started_at") else 0
    maxmem = memory_mib(config) * MIB
    return {
        "cpus": cpu_count(config),
        "maxmem": maxmem,
        "mem": maxmem * 3 // 10 if running else 0,
        "maxdisk": boot_disk_bytes(config),
        "disk": 0,
        "cpu": 0.0123 if running else 0,
        "netin": 1500 * uptime,
        "netout": 900 * uptime,
        "diskread": 4096 * uptime,
        "diskwrite": 2048 * uptime,
        "uptime": uptime,
    }


def _vm_flags(vm: dict[str, Any]) -> dict[str, Any]:
    """Keys present only when set: lock, tags, template, serial."""
    config = vm["config"]
    flags: dict[str, Any] = {}
    if vm.get("lock"):
        flags["lock"] = vm["lock"]
    if config.get("tags"):
        flags["tags"] = config["tags"]
    if config.get("template"):
        flags["template"] = 1
    if any(re.fullmatch(r"serial\d", key) for key in config):
        flags["serial"] = 1
    return flags


def _vm_pid(vm: dict[str, Any]) -> int:
    return 10000 + vm["vmid"] % 50000


def _vm_name(vm: dict[str, Any]) -> str:
    return vm["config"].get("name") or f"VM {vm['vmid']}"


def _list_entry(vm: dict[str, Any]) -> dict[str, Any]:
    numbers = _vm_numbers(vm)
    entry = {
        "vmid": vm["vmid"],
        "name": _vm_name(vm),
        "status": vm["status"],
        **numbers,
        **_vm_flags(vm),
    }
    for key in ("diskread", "diskwrite"):
        entry.pop(key)
    if vm["status"] == "running":
        entry["pid"] = _vm_pid(vm)
    return entry


def resource_entry(vm: dict[str, Any]) -> dict[str, Any]:
    numbers = _vm_numbers(vm)
    entry = {
        "id": f"qemu/{vm['vmid']}",
        "type": "qemu",
        "vmid": vm["vmid"],
        "node": vm["node"],
        "name": _vm_name(vm),
        "status": vm["status"],
        "template": 1 if vm["config"].get("template") else 0,
        "maxcpu": numbers.pop("cpus"),
        "memhost": numbers["mem"],
        **numbers,
    }
    entry.update({k: v for k, v in _vm_flags(vm).items() if k in ("lock", "tags")})
    return entry


@route("GET", "/nodes/{node}/qemu")
def list_vms(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    return [_list_entry(vm) for vm in node_vms(ctx, read_state(ctx.root))]


@route("GET", "/nodes/{node}/qemu/{vmid}")
def vm_index(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    get_vm(read_state(ctx.root), ctx.node, path["vmid"])
    subdirs = ["agent", "config", "pending", "resize", "snapshot", "status", "cloudinit"]
    return [{"subdir": name} for name in subdirs]


@route("GET", "/nodes/{node}/qemu/{vmid}/status/current")
def status_current(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    vm = get_vm(read_state(ctx.root), ctx.node, path["vmid"])
    numbers = _vm_numbers(vm)
    status: dict[str, Any] = {
        "vmid": vm["vmid"],
        "name": _vm_name(vm),
        "status": vm["status"],
        "qmpstatus": vm["status"],
        "memhost": numbers["mem"],
        "ha": {"managed": 0},
        **numbers,
        **_vm_flags(vm),
    }
    if agent_enabled(vm["config"]):
        status["agent"] = 1
    if vm["status"] == "running":
        status.update(_running_extras(vm, numbers))
    else:
        for key in ("diskread", "diskwrite"):
            status.pop(key)
    return status


def _running_extras(vm: dict[str, Any], numbers: dict[str, Any]) -> dict[str, Any]:
    nics = {
        f"tap{vm['vmid']}i{key[3:]}": {"netin": numbers["netin"], "netout": numbers["netout"]}
        for key in sorted(vm["config"])
        if re.fullmatch(r"net\d+", key)
    }
    return {
        "pid": _vm_pid(vm),
        "running-machine": RUNNING_MACHINE,
        "running-qemu": QEMU_VERSION,
        "balloon": numbers["maxmem"],
        "freemem": numbers["maxmem"] - numbers["mem"],
        "nics": nics,
        "proxmox-support": {"backup-fleecing": True, "pbs-dirty-bitmap": True},
    }


def config_text(config: dict[str, Any], lock: str | None) -> str:
    """The config as the lines of its file (sorted): what `digest` is taken over."""
    items = {**config, **({"lock": lock} if lock else {})}
    return "".join(f"{key}: {items[key]}\n" for key in sorted(items))


def config_digest(vm: dict[str, Any]) -> str:
    return hashlib.sha1(config_text(vm["config"], vm.get("lock")).encode()).hexdigest()


@route("GET", "/nodes/{node}/qemu/{vmid}/config")
def get_config(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    vm = get_vm(read_state(ctx.root), ctx.node, path["vmid"])
    if params.get("snapshot"):
        raise fail(f"snapshot '{params['snapshot']}' does not exist")
    result = dict(vm["config"])
    if vm.get("lock"):
        result["lock"] = vm["lock"]
    if "cipassword" in result:
        result["cipassword"] = "**********"
    result["digest"] = config_digest(vm)
    return result


# --- guest agent -------------------------------------------------------------------------

AGENT_DOWN = "QEMU guest agent is not running"


def _agent_vm(ctx: Ctx, vmid: int) -> dict[str, Any]:
    """The VM, once the agent checks pass in PVE's order (configured, running, answering)."""
    vm = get_vm(read_state(ctx.root), ctx.node, vmid)
    if not agent_enabled(vm["config"]):
        raise fail("No QEMU guest agent configured")
    if vm["status"] != "running":
        raise fail(f"VM {vmid} is not running")
    if take_fault(ctx.root, "agent", vmid=vmid, name=vm["config"].get("name")):
        raise fail(AGENT_DOWN)
    delay = float(read_config(ctx.root)["agent_delay"])
    if time.time() < float(vm["started_at"] or 0) + delay:
        raise fail(AGENT_DOWN)
    return vm


def _link_local(mac: str) -> str:
    """The EUI-64 IPv6 link-local address of a MAC."""
    octets = [int(part, 16) for part in mac.split(":")]
    octets[0] ^= 0x02
    eui = [*octets[:3], 0xFF, 0xFE, *octets[3:]]
    groups = [f"{eui[i] << 8 | eui[i + 1]:x}" for i in range(0, 8, 2)]
    return "fe80::" + ":".join(groups)


def _statistics(scale: int) -> dict[str, int]:
    return {
        "rx-bytes": 1500 * scale,
        "rx-dropped": 0,
        "rx-errs": 0,
        "rx-packets": 12 * scale,
        "tx-bytes": 900 * scale,
        "tx-dropped": 0,
        "tx-errs": 0,
        "tx-packets": 9 * scale,
    }


def network_interfaces(vm: dict[str, Any]) -> list[dict[str, Any]]:
    """`lo`, `ens18` carrying the VM's simulated (loopback) address, and one `ens19`, ...
    per further NIC (`net1`, ...), with the static address its `ipconfigN` gives (none
    for DHCP: no DHCP server answers on a simulated VLAN)."""
    uptime = max(1, int(time.time() - float(vm["started_at"] or time.time())))
    net0 = str(vm["config"].get("net0", "virtio=BC:24:11:00:00:01"))
    mac = net0.split(",")[0].split("=")[-1].lower()
    lo_addresses = [
        {"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8},
        {"ip-address": "::1", "ip-address-type": "ipv6", "prefix": 128},
    ]
    ens_addresses = [
        {"ip-address": vm["address"], "ip-address-type": "ipv4", "prefix": 8},
        {"ip-address": _link_local(mac), "ip-address-type": "ipv6", "prefix": 64},
    ]
    return [
        {
            "hardware-address": "00:00:00:00:00:00",
            "ip-addresses": lo_addresses,
            "name": "lo",
            "statistics": _statistics(uptime),
        },
        {
            "hardware-address": mac,
            "ip-addresses": ens_addresses,
            "name": "ens18",
            "statistics": _statistics(uptime * 7),
        },
        *_more_nics(vm["config"], uptime),
    ]


def _more_nics(config: dict[str, Any], uptime: int) -> list[dict[str, Any]]:
    out = []
    for index in sorted(int(k[3:]) for k in config if re.fullmatch(r"net[1-9]\d*", k)):
        mac = str(config[f"net{index}"]).split(",")[0].split("=")[-1].lower()
        addresses = [{"ip-address": _link_local(mac), "ip-address-type": "ipv6", "prefix": 64}]
        ipconfig = dict(
            p.split("=", 1) for p in str(config.get(f"ipconfig{index}", "")).split(",") if "=" in p
        )
        if "/" in ipconfig.get("ip", ""):
            address, prefix = ipconfig["ip"].split("/")
            addresses.insert(
                0, {"ip-address": address, "ip-address-type": "ipv4", "prefix": int(prefix)}
            )
        out.append(
            {
                "hardware-address": mac,
                "ip-addresses": addresses,
                "name": f"ens{18 + index}",
                "statistics": _statistics(uptime * 3),
            }
        )
    return out


@route("GET", "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces")
def agent_interfaces(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    return {"result": network_interfaces(_agent_vm(ctx, path["vmid"]))}


FILE_READ_MAX = 16 * 1024 * 1024
"""PVE's limit on one `agent/file-read` (its `count` maximum and default)."""


def guest_file(ctx: Ctx, vmid: int, file: str) -> bytes:
    """The bytes of `file` inside VM `vmid`'s tree, as the guest agent's `guest-file-open`
    and `guest-file-read` give them (a path leaving the tree is as missing as it would be
    on the guest, whose root is that tree); QGA's error, wrapped as PVE wraps it, else."""
    from pveplan.sim._vm import Guest

    root = Guest(ctx.root, ctx.node, vmid).dir.resolve()
    path = (root / file.lstrip("/")).resolve()
    try:
        if not path.is_relative_to(root) or not path.is_file():
            raise FileNotFoundError
        return path.read_bytes()
    except OSError:
        raise fail(
            f"Agent error: failed to open file '{file}' (mode: 'r'): No such file or directory"
        ) from None


@route("GET", "/nodes/{node}/qemu/{vmid}/agent/file-read")
def agent_file_read(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """`file-read`: `content` (decoded text by default; base64 with `decode=0`) and
    `truncated` when `count` bytes (16 MiB at most) did not reach the end of the file."""
    import base64

    _agent_vm(ctx, path["vmid"])
    data = guest_file(ctx, path["vmid"], str(params["file"]))
    offset = int(params.get("offset", 0))
    count = int(params.get("count", FILE_READ_MAX))
    chunk = data[offset : offset + count]
    decode = BOOLEAN_WORDS.get(str(params.get("decode", 1)).lower(), 1)
    text = chunk.decode("utf-8", "replace") if decode else base64.b64encode(chunk).decode()
    result: dict[str, Any] = {"content": text}
    if offset + count < len(data):
        result["truncated"] = 1
    return result


@route("POST", "/nodes/{node}/qemu/{vmid}/agent/ping")
def agent_ping(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    _agent_vm(ctx, path["vmid"])
    return {"result": {}}
