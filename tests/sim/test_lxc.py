"""Simulated containers: `pct` and `/nodes/{node}/lxc` as PVE 9.1 documents them.

A container is made from a vztmpl volume downloaded onto `local`, gets its hostname,
root's keys and a fresh SSH host key at create (as PVE's LXC setup writes them), lists
as `type: lxc` next to VMs in one vmid space, reports its address through the host
(`/interfaces`, no agent), grows its root file system and never shrinks it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sim import PUBLIC_KEY, Sim

TEMPLATE_URL = "http://download.proxmox.com/images/system/debian-13-standard_13.1-1_amd64.tar.zst"


@pytest.fixture
def sim(tmp_path: Path) -> Sim:
    sim = Sim(tmp_path / "sim")
    upid = sim.pvesh(
        "create",
        f"/nodes/{sim.node}/storage/local/download-url",
        *("--content", "vztmpl", "--filename", "debian-13-standard.tar.zst"),
        *("--url", TEMPLATE_URL),
    )
    assert sim.task(upid)["exitstatus"] == "OK"
    return sim


def _create(sim: Sim, vmid: int = 200, *extra: str) -> None:
    upid = sim.pvesh(
        "create",
        f"/nodes/{sim.node}/lxc",
        *("--vmid", vmid, "--ostemplate", "local:vztmpl/debian-13-standard.tar.zst"),
        *("--hostname", "box", "--cores", 2, "--memory", 1024, "--rootfs", "local-lvm:8"),
        *("--net0", "name=eth0,bridge=vmbr0,ip=dhcp", "--features", "nesting=1"),
        *("--unprivileged", 1, "--ssh-public-keys", PUBLIC_KEY, "--tags", "pveplan"),
        *extra,
    )
    assert sim.task(upid)["exitstatus"] == "OK", sim.task(upid)


def test_a_container_is_created_started_reached_and_destroyed(sim: Sim) -> None:
    _create(sim)
    config = sim.pvesh("get", f"/nodes/{sim.node}/lxc/200/config")
    assert config["hostname"] == "box" and config["cores"] == 2
    assert config["rootfs"] == "local-lvm:vm-200-disk-0,size=8G"
    assert config["net0"].startswith("name=eth0,bridge=vmbr0,hwaddr=")
    tree = sim.root.vm_dir(sim.node, 200)
    assert PUBLIC_KEY in (tree / "root" / ".ssh" / "authorized_keys").read_text()
    host_key = (tree / "etc" / "ssh" / "ssh_host_ed25519_key.pub").read_text()
    assert host_key.startswith("ssh-ed25519 ")

    listed = sim.pvesh("get", "/cluster/resources", "--type", "vm")
    assert [(g["type"], g["vmid"], g["name"]) for g in listed] == [("lxc", 200, "box")]
    assert sim.run("pct", "exec", 200, "--", "cat", "/etc/hostname").returncode != 0  # stopped

    assert sim.run("pct", "start", 200).returncode == 0
    interfaces = sim.pvesh("get", f"/nodes/{sim.node}/lxc/200/interfaces")
    eth0 = next(i for i in interfaces if i["name"] == "eth0")
    assert eth0["ip-addresses"][0]["ip-address-type"] == "ipv4"
    read = sim.run("pct", "exec", 200, "--", "cat", "/etc/ssh/ssh_host_ed25519_key.pub")
    assert read.returncode == 0 and read.stdout == host_key

    refused = sim.run("pvesh", "delete", f"/nodes/{sim.node}/lxc/200")
    assert refused.returncode != 0 and "running" in refused.stderr
    assert sim.run("pct", "stop", 200).returncode == 0
    assert sim.run("pct", "destroy", 200, "--purge", 1).returncode == 0
    assert sim.pvesh("get", "/cluster/resources", "--type", "vm") == []
    assert not tree.exists()


def test_pct_create_reads_root_keys_from_the_file_it_names(sim: Sim) -> None:
    """As PVE's pct maps it: `--ssh-public-keys FILE` is a file of keys on the host (the
    API method takes the keys themselves); a missing file is refused before any create."""
    (sim.root.host_dir(sim.node) / "tmp" / "keys.pub").write_text(PUBLIC_KEY + "\n")
    template = "local:vztmpl/debian-13-standard.tar.zst"
    keys = ("--rootfs", "local-lvm:4", "--ssh-public-keys")
    made = sim.run("pct", "create", 201, template, *keys, "/tmp/keys.pub")
    assert made.returncode == 0, made.stderr
    tree = sim.root.vm_dir(sim.node, 201)
    assert PUBLIC_KEY in (tree / "root" / ".ssh" / "authorized_keys").read_text()
    missing = sim.run("pct", "create", 202, template, *keys, "/tmp/none.pub")
    assert missing.returncode != 0 and "unable to open file" in missing.stderr


def test_the_rootfs_grows_in_place_and_never_shrinks(sim: Sim) -> None:
    _create(sim)
    assert sim.run("pct", "resize", 200, "rootfs", "12G").returncode == 0
    config = sim.pvesh("get", f"/nodes/{sim.node}/lxc/200/config")
    assert config["rootfs"].endswith("size=12G")
    assert sim.run("pct", "resize", 200, "rootfs", "4G").returncode != 0
    assert sim.run("pct", "set", 200, "--cores", 4, "--swap", 0).returncode == 0
    config = sim.pvesh("get", f"/nodes/{sim.node}/lxc/200/config")
    assert (config["cores"], config["swap"], config["rootfs"][-8:]) == (4, 0, "size=12G")
    fixed = sim.run("pct", "set", 200, "--unprivileged", 0)
    assert fixed.returncode != 0 and "unprivileged" in fixed.stderr


def test_vms_and_containers_share_one_vmid_space(sim: Sim) -> None:
    _create(sim)
    taken = sim.run(
        "pvesh", "create", f"/nodes/{sim.node}/lxc", "--vmid", 200,
        "--ostemplate", "local:vztmpl/debian-13-standard.tar.zst",
    )  # fmt: skip
    assert taken.returncode != 0 and "already exists" in taken.stderr
    not_a_vm = sim.run("pvesh", "get", f"/nodes/{sim.node}/qemu/200/config")
    assert not_a_vm.returncode != 0 and "does not exist" in not_a_vm.stderr
    assert sim.pvesh("get", f"/nodes/{sim.node}/qemu") == []


def test_a_template_must_be_a_vztmpl_volume_that_exists(sim: Sim) -> None:
    missing = sim.run(
        "pvesh", "create", f"/nodes/{sim.node}/lxc", "--vmid", 201,
        "--ostemplate", "local:vztmpl/nope.tar.zst", "--rootfs", "local-lvm:4",
    )  # fmt: skip
    assert missing.returncode != 0 and "does not exist" in missing.stderr
