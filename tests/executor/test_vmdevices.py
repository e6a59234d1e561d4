"""The VM kind's device reconcile as a driver table: probed config in, requests out.

Why: it decides, on a live VM, what the plan's diff promised: in place (resize, `--netN`,
a new disk, a detach) or a replacement. A VM made before disks and NICs were lists must
see no request at all, or every re-apply would touch every VM.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from pveplan.executor.kinds._vmdevices import create_params, device_changes, disk_keys
from pveplan.planner import DiskArgs, VmCreateArgs

from .test_pve_requests import STEP_ARGS

NODE = "pve"
SHORTHAND_LIVE = {  # a VM as every pveplan release before lists made it
    "scsi0": "local-lvm:vm-100-disk-0,size=20G",
    "ide2": "local-lvm:vm-100-cloudinit,media=cdrom",
    "net0": "virtio=BC:24:11:12:34:56,bridge=vmbr0",
    "ipconfig0": "ip=dhcp",
    "unused0": "local-lvm:vm-100-disk-9",
}
TWO = [
    {"size": 20, "bus": "scsi", "storage": "local-lvm"},
    {"size": 40, "bus": "scsi", "storage": "local-lvm"},
]


def args(**extra: Any) -> VmCreateArgs:
    return msgspec.convert({**STEP_ARGS, **extra}, VmCreateArgs)


def test_a_shorthand_vm_needs_nothing() -> None:
    assert device_changes(NODE, 100, SHORTHAND_LIVE, args()) == ([], None, ())


def test_a_listed_vm_as_applied_needs_nothing() -> None:
    live = {**SHORTHAND_LIVE, "scsi1": "local-lvm:vm-100-disk-1,size=40G"}
    assert device_changes(NODE, 100, live, args(disks=TWO)).requests == []


@pytest.mark.parametrize(
    ("disks", "why"),
    [
        ([TWO[0], {**TWO[1], "bus": "virtio"}], "another bus"),
        ([TWO[0], {**TWO[1], "storage": "local-zfs"}], "is on local-lvm, not local-zfs"),
    ],
)
def test_a_disk_on_another_bus_or_storage_replaces_the_vm(
    disks: list[dict[str, Any]], why: str
) -> None:
    live = {**SHORTHAND_LIVE, "scsi1": "local-lvm:vm-100-disk-1,size=40G"}
    found = device_changes(NODE, 100, live, args(disks=disks))
    assert found.requests == [] and found.replace is not None and why in found.replace


def test_a_smaller_disk_is_kept_never_shrunk_and_a_larger_grows() -> None:
    live = {**SHORTHAND_LIVE, "scsi1": "local-lvm:vm-100-disk-1,size=60G"}
    found = device_changes(NODE, 100, live, args(disks=TWO))
    assert found.requests == [] and "cannot shrink" in found.kept[0]
    live["scsi1"] = "local-lvm:vm-100-disk-1,size=10G"
    (grow,) = device_changes(NODE, 100, live, args(disks=TWO)).requests
    assert (grow.path, grow.params) == (
        "/nodes/{node}/qemu/{vmid}/resize",
        {"disk": "scsi1", "size": "40G"},
    )


def test_a_nic_change_keeps_the_generated_mac_and_a_pinned_one_wins() -> None:
    nics = [{"bridge": "vmbr0", "model": "virtio", "vlan": 7}]
    (change,) = device_changes(NODE, 100, SHORTHAND_LIVE, args(nics=nics)).requests
    assert change.params == {"net0": "virtio=BC:24:11:12:34:56,bridge=vmbr0,tag=7"}
    pinned = [{**nics[0], "mac": "BC:24:11:00:00:01"}]
    (change,) = device_changes(NODE, 100, SHORTHAND_LIVE, args(nics=pinned)).requests
    assert change.params == {"net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0,tag=7"}


def test_disk_keys_count_per_bus_and_the_boot_disk_is_the_first() -> None:
    disks = tuple(
        DiskArgs(size=1, bus=bus, storage="s") for bus in ("virtio", "scsi", "virtio", "sata")
    )
    assert disk_keys(disks) == ["virtio0", "scsi0", "virtio1", "sata0"]
    params = create_params(args(disks=[msgspec.to_builtins(d) for d in disks]), "v")
    assert params["boot"] == "order=virtio0"
    assert params["virtio0"] == "s:0,import-from=v" and params["virtio1"] == "s:1"


def test_shorthand_create_params_are_the_ones_every_vm_had() -> None:
    assert create_params(args(), "local:import/d.qcow2") == {
        "scsi0": "local-lvm:0,import-from=local:import/d.qcow2",
        "net0": "virtio,bridge=vmbr0",
        "ipconfig0": "ip=dhcp",
        "boot": "order=scsi0",
    }
