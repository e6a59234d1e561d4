"""`/cluster/resources`' guest entries, kept per stored record (`sim._resources`): the
same entries as computed afresh, at every call, after any change."""

from __future__ import annotations

import time
from pathlib import Path

from pveplan.sim._lxc import ct_resource_entry, node_cts
from pveplan.sim._resources import guest_resources
from pveplan.sim._state import SimRoot, locked_state, read_state
from pveplan.sim._vms import node_vms, resource_entry


class _Ctx:
    def __init__(self, node: str) -> None:
        self.node = node


def afresh(root: SimRoot, node: str) -> list[dict]:
    state, ctx = read_state(root), _Ctx(node)
    entries = [resource_entry(vm) for vm in node_vms(ctx, state)]  # type: ignore[arg-type]
    entries += [ct_resource_entry(ct) for ct in node_cts(ctx, state)]  # type: ignore[arg-type]
    return sorted(entries, key=lambda entry: entry["vmid"])


def guest(vmid: int, node: str, status: str, **extra: object) -> dict:
    config = {"name": f"g{vmid}", "memory": "1024", "cores": 2, "scsi0": "local-lvm:vm-1,size=8G"}
    return {"vmid": vmid, "node": node, "status": status, "config": config, "lock": None, **extra}


def test_kept_entries_equal_fresh_ones_through_changes(tmp_path: Path) -> None:
    root = SimRoot(tmp_path)
    with locked_state(root) as state:
        state["vms"]["sim/101"] = guest(101, "sim", "running", started_at=time.time() - 90)
        state["vms"]["sim/102"] = guest(102, "sim", "stopped")
        state["vms"]["sim/103"] = {
            **guest(103, "sim", "running", started_at=time.time() - 5, type="lxc"),
            "config": {"hostname": "c", "memory": 256, "rootfs": "local-lvm:vm-103,size=4G"},
        }
        state["vms"]["other/101"] = guest(101, "other", "running", started_at=time.time())
    for _ in range(2):  # computed, then from what was kept
        assert guest_resources(read_state(root), "sim") == afresh(root, "sim")
    assert guest_resources(read_state(root), "other") == afresh(root, "other")
    with locked_state(root) as state:
        state["vms"]["sim/102"]["status"] = "running"
        state["vms"]["sim/102"]["started_at"] = time.time() - 30
        state["vms"]["sim/101"]["config"]["tags"] = "a;b"
        del state["vms"]["sim/103"]
    assert guest_resources(read_state(root), "sim") == afresh(root, "sim")
    with locked_state(root) as state:  # a snapshot's own changes, before they are written
        state["vms"]["sim/101"]["lock"] = "backup"
        assert guest_resources(state, "sim")[0]["lock"] == "backup"
