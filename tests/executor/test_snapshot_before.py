"""The VM kind's `snapshot_before`: a snapshot only before changes that grow a disk, under
the plan's name, taken once across re-runs, and listed for removal unless `keep`."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import trio

from pveplan.executor.kinds._snapshot import snapshot_before
from pveplan.executor.pve import PveRequest, requests
from pveplan.planner import CloudInit, SnapshotArgs, VmCreateArgs, snapshot_name

HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


class FakePve:
    node = "pve"

    def __init__(self, existing: tuple[str, ...] = ()) -> None:
        self.sent: list[PveRequest] = []
        self.existing = existing

    async def run(self, request: PveRequest) -> Any:
        self.sent.append(request)
        if request.method == "GET":
            return [*({"name": n} for n in self.existing), {"name": "current"}]
        return "UPID:pve:1:2:3:qmsnapshot:100:root@pam:"


def _ctx() -> SimpleNamespace:
    logs: list[str] = []
    return SimpleNamespace(
        step=SimpleNamespace(hash=HASH, address="node.db.create"),
        host="pve",
        services=SimpleNamespace(snapshots=[]),
        log=logs.append,
        logs=logs,
    )


def _args(keep: bool | None) -> VmCreateArgs:
    ci = CloudInit(
        user="u", sudo=True, packages=(), timezone=None, agent=True, serial=True, mode="push"
    )
    return VmCreateArgs(
        name="db",
        type="vm",
        vmid=100,
        cores=1,
        memory=1024,
        disk=8,
        bridge="vmbr0",
        storage="local-lvm",
        tags=(),
        image="debian-13",
        cloud_init=ci,
        **({} if keep is None else {"snapshot": SnapshotArgs(changes=("resize",), keep=keep)}),
    )


GROW = [
    requests.set_vm_config("pve", 100, {"cores": 2}),
    requests.resize_disk("pve", 100, "scsi1", "6G"),
]


def _run(ctx: SimpleNamespace, pve: FakePve, args: VmCreateArgs, changes: list[PveRequest]) -> None:
    trio.run(snapshot_before, ctx, pve, 100, args, changes)


def test_a_grow_is_snapshotted_under_the_plans_name_and_listed_for_removal() -> None:
    ctx, pve = _ctx(), FakePve()
    _run(ctx, pve, _args(keep=False), GROW)
    name = snapshot_name(HASH)
    assert name == "pveplan-9f86d081"
    (listing, made) = pve.sent
    assert (listing.method, made.method, made.path) == (
        "GET",
        "POST",
        "/nodes/{node}/qemu/{vmid}/snapshot",
    )
    assert made.params["snapname"] == name and made.returns_task
    assert ctx.services.snapshots == [("node.db.create", "pve", 100, name)]


def test_keep_is_not_removed_and_a_rerun_takes_no_second_snapshot() -> None:
    ctx, pve = _ctx(), FakePve(existing=(snapshot_name(HASH),))
    _run(ctx, pve, _args(keep=True), GROW)
    assert [r.method for r in pve.sent] == ["GET"]  # found: not taken again
    assert ctx.services.snapshots == [] and "exists" in ctx.logs[0]


def test_no_snapshot_without_a_grow_or_without_the_setting() -> None:
    for args, changes in ((_args(keep=False), GROW[:1]), (_args(keep=None), GROW)):
        ctx, pve = _ctx(), FakePve()
        _run(ctx, pve, args, changes)
        assert pve.sent == [] and ctx.services.snapshots == []
