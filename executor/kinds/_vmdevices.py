"""A VM's disks, NICs and cloud-init network settings: the create parameters, and what
brings a live VM's devices to its args.

Pure (config in, requests out), so a table of probed configs tests it without a host.
Which difference is carried out how is the args' rule (`DiskArgs.RULES`,
`NicArgs.RULES`, read through `change_of`), the same the plan's diff shows: a disk grows
(`resize`), a NIC changes in place (`--netN`, keeping the MAC PVE gave it unless one is
pinned), an added disk is allocated (a POST config, the task PVE wants for storage),
an item no longer listed is detached (a disk becomes PVE's `unusedN`: its data stays
until the VM is destroyed). A disk on another bus or storage is a replacement of the VM,
which the caller does; a smaller disk is never shrunk (PVE cannot).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from pveplan.planner import DiskArgs, NicArgs, VmCreateArgs, change_of

from ..pve import PveRequest, property_string, requests

DEVICE_KEY = re.compile(r"^(scsi|virtio|sata)(\d+)$")
NET_KEY = re.compile(r"^net(\d+)$")
IPCONFIG_KEY = re.compile(r"^ipconfig(\d+)$")
FIRST_IPCONFIG = "ip=dhcp"
_UNITS = {"K": 1 / (1024 * 1024), "M": 1 / 1024, "G": 1, "T": 1024}


def disk_keys(disks: tuple[DiskArgs, ...]) -> list[str]:
    """Each disk's config key: the Nth disk on a bus is `busN` (`scsi0`, `scsi1`, `virtio0`)."""
    counts: dict[str, int] = {}
    keys = []
    for disk in disks:
        index = counts.get(disk.bus, 0)
        counts[disk.bus] = index + 1
        keys.append(f"{disk.bus}{index}")
    return keys


def boot_key(args: VmCreateArgs) -> str:
    """The boot disk's key: the first disk's (the image is imported into it)."""
    return disk_keys(args.disk_list())[0]


def nic_value(nic: NicArgs, mac: str | None = None) -> str:
    """A NIC as PVE's `netN` property string; `mac` (the live one) unless one is pinned."""
    pinned = nic.mac or mac
    return property_string(
        f"{nic.model}={pinned}" if pinned else nic.model,
        bridge=nic.bridge,
        firewall=True if nic.firewall else None,
        mtu=nic.mtu or None,
        tag=nic.vlan or None,
    )


def ipconfig_of(nic: NicArgs, index: int) -> str | None:
    """The NIC's `ipconfigN`: its own, else DHCP on the first NIC, else none."""
    if nic.ipconfig:
        return nic.ipconfig
    return FIRST_IPCONFIG if index == 0 else None


def create_params(args: VmCreateArgs, volid: str) -> dict[str, Any]:
    """The device parameters of a new VM: every disk (the image imported into the first,
    the others new and empty; the first is grown to its size after), every NIC with its
    `ipconfigN`, the DNS options, and the boot order. For a VM with one disk and one NIC
    these are the parameters every VM had before disks and NICs were lists."""
    disks = args.disk_list()
    keys = disk_keys(disks)
    params: dict[str, Any] = {}
    for number, (key, disk) in enumerate(zip(keys, disks, strict=True)):
        if number == 0:
            params[key] = property_string(f"{disk.storage}:0", import_from=volid)
        else:
            params[key] = f"{disk.storage}:{disk.size}"
    ipconfigs = {}
    for index, nic in enumerate(args.nic_list()):
        params[f"net{index}"] = nic_value(nic)
        ipconfig = ipconfig_of(nic, index)
        if ipconfig is not None:
            ipconfigs[f"ipconfig{index}"] = ipconfig
    params.update(ipconfigs)
    if args.nameserver:
        params["nameserver"] = args.nameserver
    if args.searchdomain:
        params["searchdomain"] = args.searchdomain
    params["boot"] = f"order={keys[0]}"
    return params


class DeviceChanges(NamedTuple):
    """What a live VM's devices need: requests in place, or a reason to replace it."""

    requests: list[PveRequest]
    replace: str | None = None
    kept: tuple[str, ...] = ()
    """What cannot be done and is left as it is (a disk larger than asked: no shrink)."""


def live_gib(value: str) -> int:
    """A drive's `size=` in whole GiB (0 when it has none)."""
    match = re.search(r"(?:^|,)size=(\d+(?:\.\d+)?)([KMGT])?", value)
    if match is None:
        return 0
    return int(float(match.group(1)) * _UNITS[match.group(2) or "G"])


def _is_disk(value: str) -> bool:
    return "media=cdrom" not in value and "cloudinit" not in value.split(",", 1)[0]


def _live_nic(value: str) -> dict[str, str]:
    parts = [p.split("=", 1) for p in value.split(",") if "=" in p]
    fields = dict(parts)
    model, mac = parts[0] if parts else ("", "")
    return {**fields, "model": model, "macaddr": fields.get("macaddr", mac)}


def _nic_differs(nic: NicArgs, live: Mapping[str, str]) -> list[str]:
    """The NIC fields whose live value is not the args' (by `NicArgs.RULES`: in place)."""
    live_args = {
        "bridge": live.get("bridge", ""),
        "model": live.get("model", ""),
        "vlan": int(live["tag"]) if live.get("tag") else None,
        "mtu": int(live["mtu"]) if live.get("mtu") else None,
        "firewall": live.get("firewall") == "1",
        "mac": live.get("macaddr", "").upper() if nic.mac else None,
    }
    wanted = {
        "bridge": nic.bridge,
        "model": nic.model,
        "vlan": nic.vlan or None,
        "mtu": nic.mtu or None,
        "firewall": bool(nic.firewall),
        "mac": nic.mac or None,
    }
    return [field for field in wanted if wanted[field] != live_args[field]]


def device_changes(
    node: str, vmid: int, config: Mapping[str, Any], args: VmCreateArgs
) -> DeviceChanges:
    """What brings the devices of the live VM (`config`) to `args`. The boot disk's size
    is the VM's `disk` (`_vm.reconcile`); every other difference is here."""
    disks = args.disk_list()
    keys = disk_keys(disks)
    live = {k: str(v) for k, v in config.items() if DEVICE_KEY.match(k) and _is_disk(str(v))}
    unlisted = sorted(set(live) - set(keys))
    added: dict[str, Any] = {}
    resizes: list[PveRequest] = []
    kept: list[str] = []
    for number, (key, disk) in enumerate(zip(keys, disks, strict=True)):
        if key not in live:
            if unlisted:  # another disk where this one should be: moved to another bus
                return DeviceChanges(
                    [], f"disk {unlisted[0]} is now {key} (another bus): a new disk, a new VM"
                )
            added[key] = f"{disk.storage}:{disk.size}"
            continue
        storage = live[key].split(":", 1)[0]
        if (
            storage != disk.storage
            and change_of(DiskArgs, "storage", storage, disk.storage) == "replace"
        ):
            return DeviceChanges([], f"disk {key} is on {storage}, not {disk.storage}: a new VM")
        have = live_gib(live[key])
        if have != disk.size:
            # the plan's rule too (`keep`): a larger disk stays, said here and in the diff
            if change_of(DiskArgs, "size", have, disk.size) == "keep":
                kept.append(f"{key} is {have} GiB, larger than {disk.size}: PVE cannot shrink it")
            elif number:  # the boot disk grows by `reconcile` (the VM's `disk`)
                resizes.append(requests.resize_disk(node, vmid, key, f"{disk.size}G"))
    changes: dict[str, Any] = {}
    deletes = list(unlisted)
    nics = args.nic_list()
    for index, nic in enumerate(nics):
        key = f"net{index}"
        value = config.get(key)
        if value is None:
            changes[key] = nic_value(nic)
        elif _nic_differs(nic, _live_nic(str(value))):
            changes[key] = nic_value(nic, _live_nic(str(value)).get("macaddr") or None)
        ipconfig = ipconfig_of(nic, index)
        if ipconfig is not None and config.get(f"ipconfig{index}") != ipconfig:
            changes[f"ipconfig{index}"] = ipconfig
        elif ipconfig is None and f"ipconfig{index}" in config:
            deletes.append(f"ipconfig{index}")
    for key in sorted(config):
        for pattern in (NET_KEY, IPCONFIG_KEY):
            match = pattern.match(key)
            if match and int(match.group(1)) >= len(nics):
                deletes.append(key)
    for field in ("nameserver", "searchdomain"):
        wanted = getattr(args, field) or None
        if wanted is not None and config.get(field) != wanted:
            changes[field] = wanted
        elif wanted is None and field in config:
            deletes.append(field)
    out: list[PveRequest] = []
    if changes or deletes:
        if deletes:
            changes["delete"] = ",".join(deletes)
        out.append(requests.set_vm_config(node, vmid, changes))
    if added:  # allocates storage: PVE's task form
        out.append(requests.update_vm_config(node, vmid, added))
    return DeviceChanges([*out, *resizes], None, tuple(kept))


def reconcile(
    node: str,
    vmid: int,
    config: Mapping[str, Any],
    *,
    cores: int,
    memory: int,
    disk: int,
    boot: str = "scsi0",
) -> list[PveRequest]:
    """What brings an adopted VM (its probed `config`) to the step's size, by the rules
    of the step's args (`VmCreateArgs.RULES`, the same the plan's diff follows): cores and
    memory set in place (only what differs), then the disk grown to `disk` GiB. A smaller
    `disk` is a shrink, which PVE cannot do: the adopted VM keeps its disk, as the plan
    said (`keep`; `device_changes` names it among what is kept). Pure; empty when the VM already matches."""
    live = {"cores": int(config.get("cores", 1)), "memory": _memory_mib(config)}
    live["disk"] = live_gib(str(config.get(boot, "")))
    wanted = {"cores": cores, "memory": memory, "disk": disk}
    in_place = [
        field
        for field, value in live.items()
        if value != wanted[field]
        and change_of(VmCreateArgs, field, value, wanted[field]) == "in_place"
    ]
    out: list[PveRequest] = []
    changes = {field: wanted[field] for field in in_place if field != "disk"}
    if changes:
        out.append(requests.set_vm_config(node, vmid, changes))
    if "disk" in in_place:
        out.append(requests.resize_disk(node, vmid, boot, f"{disk}G"))
    return out


def _memory_mib(config: Mapping[str, Any]) -> int:
    value = str(config.get("memory", "0"))
    value = value.split("=", 1)[-1] if "=" in value else value  # "[current=]MiB"
    return int(value.split(",", 1)[0] or 0)
