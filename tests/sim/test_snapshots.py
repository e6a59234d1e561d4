"""The simulated VM snapshots (`qm snapshot`/`delsnapshot`/`listsnapshot` and
`/nodes/{node}/qemu/{vmid}/snapshot`) follow PVE 9.1: a config id of at most 40 for a name,
`current` reserved, a name used once, a template refused, a cloud-init drive left out; a
delete re-parents; a VM destroyed takes its snapshots with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sim import Sim


@pytest.fixture
def sim(tmp_path: Path) -> Sim:
    sim = Sim(tmp_path)
    sim.download_debian()
    made = sim.run(
        "qm",
        "create",
        "9000",
        *("--name", "db", "--net0", "virtio,bridge=vmbr0", "--ide2", "local-lvm:cloudinit"),
        *("--scsi0", "local-lvm:0,import-from=local:import/debian-12.qcow2"),
        *("--scsi1", "local-lvm:2"),
    )
    assert made.returncode == 0, made.stderr
    return sim


def names(sim: Sim, vmid: int = 9000) -> list[str]:
    return [s["name"] for s in sim.pvesh("get", f"/nodes/sim/qemu/{vmid}/snapshot")]


def test_a_snapshot_is_taken_listed_and_deleted_as_a_task(sim: Sim) -> None:
    upid = sim.pvesh(
        "create",
        "/nodes/sim/qemu/9000/snapshot",
        "--snapname",
        "pveplan-1a2b3c4d",
        "--description",
        "before resize",
    )
    assert upid.startswith("UPID:sim:") and ":qmsnapshot:9000:" in upid
    assert sim.task(upid)["exitstatus"] == "OK"
    listed = sim.pvesh("get", "/nodes/sim/qemu/9000/snapshot")
    assert [s["name"] for s in listed] == ["pveplan-1a2b3c4d", "current"]
    assert listed[0]["description"] == "before resize"
    assert listed[1]["parent"] == "pveplan-1a2b3c4d"
    assert sim.vm(9000)["config"]["parent"] == "pveplan-1a2b3c4d"
    shown = sim.run("qm", "listsnapshot", "9000")
    assert shown.returncode == 0 and "`-> pveplan-1a2b3c4d" in shown.stdout
    assert "    `-> current" in shown.stdout  # the VM is the snapshot's child

    upid = sim.pvesh("delete", "/nodes/sim/qemu/9000/snapshot/pveplan-1a2b3c4d")
    assert ":qmdelsnapshot:9000:" in upid and sim.task(upid)["exitstatus"] == "OK"
    assert names(sim) == ["current"] and "parent" not in sim.vm(9000)["config"]


def test_qm_snapshot_and_delsnapshot_wait_and_a_delete_reparents(sim: Sim) -> None:
    for name in ("first", "second"):
        done = sim.run("qm", "snapshot", "9000", name)
        assert done.returncode == 0, done.stderr
    assert sim.run("qm", "delsnapshot", "9000", "first").returncode == 0
    listed = {s["name"]: s for s in sim.pvesh("get", "/nodes/sim/qemu/9000/snapshot")}
    assert "parent" not in listed["second"] and listed["current"]["parent"] == "second"
    gone = sim.run("qm", "delsnapshot", "9000", "first")
    assert gone.returncode == 255 and "snapshot 'first' does not exist" in gone.stderr


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("1abc", "invalid configuration ID '1abc'"),
        ("a" * 41, "40 characters"),
        ("with.dot", "invalid configuration ID"),
    ],
)
def test_a_snapname_must_be_a_config_id_of_at_most_40(sim: Sim, name: str, message: str) -> None:
    refused = sim.run("qm", "snapshot", "9000", name)
    assert refused.returncode == 255 and message in refused.stderr
    assert names(sim) == ["current"]


def test_current_is_reserved_and_a_name_is_used_once(sim: Sim) -> None:
    refused = sim.run("qm", "snapshot", "9000", "current")
    assert refused.returncode == 255 and "reserved name" in refused.stderr
    assert sim.run("qm", "snapshot", "9000", "keep").returncode == 0
    again = sim.run("qm", "snapshot", "9000", "keep")
    assert again.returncode == 255 and "snapshot name 'keep' already used" in again.stderr


def test_a_template_cannot_be_snapshotted(sim: Sim) -> None:
    assert sim.run("qm", "template", "9000").returncode == 0
    refused = sim.run("qm", "snapshot", "9000", "before")
    assert refused.returncode == 255 and "if it's a template" in refused.stderr


def test_a_resize_keeps_the_snapshot_and_a_destroy_takes_it(sim: Sim) -> None:
    assert sim.run("qm", "snapshot", "9000", "before").returncode == 0
    assert sim.run("qm", "resize", "9000", "scsi1", "4G").returncode == 0
    assert names(sim) == ["before", "current"]
    assert sim.run("qm", "destroy", "9000").returncode == 0
    missing = sim.run("qm", "listsnapshot", "9000")
    assert missing.returncode == 255 and "does not exist" in missing.stderr
