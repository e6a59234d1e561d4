"""The simulated `qm template` / `qm clone` and their API follow PVE (pve-api.md §4).

A template's disks become base volumes and it cannot be started; a linked clone (the
default from a template) is a thin child of the template's base disk and only a
template has one; a template with linked clones cannot be destroyed; a full clone
copies, which costs what an import costs, while a linked clone costs nothing.
"""

from __future__ import annotations

import time
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
        *("--name", "tmpl", "--net0", "virtio,bridge=vmbr0", "--ide2", "local-lvm:cloudinit"),
        *("--scsi0", "local-lvm:0,import-from=local:import/debian-12.qcow2"),
    )
    assert made.returncode == 0, made.stderr
    return sim


def test_a_template_has_base_disks_and_cannot_start(sim: Sim) -> None:
    done = sim.run("qm", "template", "9000")
    assert done.returncode == 0, done.stderr
    config = sim.vm(9000)["config"]
    assert config["template"] == 1
    assert config["scsi0"].startswith("local-lvm:base-9000-disk-0,")
    assert config["ide2"].startswith("local-lvm:vm-9000-cloudinit,")  # not a disk: kept
    started = sim.run("qm", "start", "9000")
    assert started.returncode == 255
    assert "you can't start a vm if it's a template" in started.stderr
    again = sim.run("qm", "template", "9000")
    assert again.returncode == 255 and "template to a template" in again.stderr


def test_a_linked_clone_is_a_thin_child_of_the_template_s_base_disk(sim: Sim) -> None:
    sim.run("qm", "template", "9000")
    cloned = sim.run("qm", "clone", "9000", "101", "--name", "web1")
    assert cloned.returncode == 0, cloned.stderr
    template, clone = sim.vm(9000)["config"], sim.vm(101)["config"]
    assert clone["scsi0"].startswith("local-lvm:base-9000-disk-0/vm-101-disk-0,")
    assert clone["ide2"].startswith("local-lvm:vm-101-cloudinit,")
    assert "template" not in clone and clone["name"] == "web1"
    assert clone["net0"] != template["net0"]  # a new MAC
    assert clone["vmgenid"] != template["vmgenid"]
    assert sim.run("qm", "start", "101").returncode == 0
    # the API's task: its id is the source's vmid
    upid = sim.pvesh("create", "/nodes/sim/qemu/9000/clone", "--newid", "102", "--full", "0")
    assert upid.split(":")[5:7] == ["qmclone", "9000"]
    assert sim.task(upid)["exitstatus"] == "OK"


def test_a_linked_clone_only_from_a_template(sim: Sim) -> None:
    refused = sim.run("qm", "clone", "9000", "101", "--full", "0")
    assert refused.returncode == 255
    assert "Linked clone feature is not supported for 'local-lvm:vm-9000-disk-0' (scsi0)" in (
        refused.stderr
    )
    assert "sim/101" not in sim.state()["vms"]
    sim.run("qm", "template", "9000")
    storage = sim.run("qm", "clone", "9000", "101", "--full", "0", "--storage", "local-lvm")
    assert storage.returncode == 255
    assert "parameter 'storage' not allowed for linked clones" in storage.stderr
    # a full clone from a plain VM is fine: its own copy of the disk
    sim.run("qm", "create", "200", "--scsi0", "local-lvm:4")
    full = sim.run("qm", "clone", "200", "201")
    assert full.returncode == 0, full.stderr
    assert sim.vm(201)["config"]["scsi0"].startswith("local-lvm:vm-201-disk-0,size=4G")


def test_a_template_with_linked_clones_cannot_be_destroyed(sim: Sim) -> None:
    sim.run("qm", "template", "9000")
    sim.run("qm", "clone", "9000", "101")
    refused = sim.run("qm", "destroy", "9000")
    assert refused.returncode == 255
    assert "base volume 'local-lvm:base-9000-disk-0' is still in use by linked cloned" in (
        refused.stderr
    )
    assert "sim/9000" in sim.state()["vms"]
    assert sim.run("qm", "destroy", "101").returncode == 0
    assert sim.run("qm", "destroy", "9000").returncode == 0
    volumes = sim.state()["storage"]["sim"]["local-lvm"]
    assert not [v for v in volumes if "9000" in v or "101" in v]


def test_a_full_clone_costs_a_copy_a_linked_clone_nothing(sim: Sim) -> None:
    sim.run("qm", "template", "9000")
    sim.configure(copy_seconds_per_gib=1.0)  # the template's disk is 2 GiB: 2 s to copy
    began = time.monotonic()
    assert sim.run("qm", "clone", "9000", "101").returncode == 0
    linked = time.monotonic() - began
    began = time.monotonic()
    assert sim.run("qm", "clone", "9000", "102", "--full", "1").returncode == 0
    full = time.monotonic() - began
    # both pay a process start (seconds on a loaded machine); only the full one the copy
    assert full >= 2.0 and full - linked >= 1.0, (full, linked)
