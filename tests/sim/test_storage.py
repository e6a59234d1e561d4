"""A simulated host's storages are what its node file describes, with PVE's content types.

Why: a real host refuses an `import` download, or has no `snippets/` directory, on a
storage whose `content` lacks that type, and a `local-zfs` host has no `local-lvm`. A
simulator that had every content type on every storage would let an apply pass that a
real host refuses (issue 19).
"""

from __future__ import annotations

from pathlib import Path

from pveplan.sim import SimHost, init_root, read_state
from tests.sim import Sim


def test_a_fresh_host_is_a_pve9_install(tmp_path: Path) -> None:
    sim = Sim(tmp_path, fresh=True)
    local = sim.pvesh("get", "/storage/local")
    assert local["type"] == "dir" and local["path"] == "/var/lib/vz"
    assert local["content"] == "backup,import,iso,vztmpl"  # PVE 9's installer
    assert sim.pvesh("get", "/storage/local-lvm")["content"] == "images,rootdir"
    statuses = sim.pvesh("get", "/nodes/sim/storage", "--content", "images")
    assert [s["storage"] for s in statuses] == ["local-lvm"]
    missing = sim.run("pvesh", "get", "/storage/local-zfs")
    assert (missing.returncode, missing.stderr) == (255, "storage 'local-zfs' does not exist\n")


def test_a_node_file_datastore_and_bridge_are_modelled(tmp_path: Path) -> None:
    root = Sim(tmp_path, fresh=True).root
    init_root(root, [SimHost(node="father", datastore="local-zfs", bridges=("vmbr0", "vmbr1"))])
    father = Sim.__new__(Sim)
    father.root, father.node, father.vm_storage = root, "father", "local-zfs"
    zfs = father.pvesh("get", "/storage/local-zfs")
    assert (zfs["type"], zfs["content"], zfs["pool"]) == ("zfspool", "images,rootdir", "rpool/data")
    assert sorted(read_state(root)["storage"]["father"]) == ["local", "local-zfs"]
    bridges = father.pvesh("get", "/nodes/father/network", "--type", "bridge")
    assert {b["iface"]: b.get("active") for b in bridges} == {"vmbr0": 1, "vmbr1": 1}
    created = father.create_vm(100, "--ide2", "local-zfs:cloudinit")
    assert created.returncode == 0, created.stderr
    assert father.vm(100)["config"]["scsi0"] == "local-zfs:vm-100-disk-0,size=4G"
    # a datastore named later is added to an existing host; nothing is taken away
    init_root(root, [SimHost(node="sim", datastore="tank")])
    tank = read_state(root)["storage_cfg"]["sim"]["tank"]
    assert (tank["type"], tank["path"]) == ("dir", "/mnt/pve/tank")
    assert sorted(read_state(root)["storage"]["sim"]) == ["local", "local-lvm", "tank"]


def test_content_types_are_enforced_and_changed_as_on_pve(tmp_path: Path) -> None:
    sim = Sim(tmp_path, fresh=True)
    snippets = sim.root.host_dir("sim") / "var/lib/vz/snippets"
    assert not snippets.exists()  # PVE makes content directories for enabled types only
    disk = sim.run("pvesh", "create", "/nodes/sim/qemu", "--vmid", "100", "--scsi0", "local:4")
    assert disk.stderr == (
        "400 Parameter verification failed.\nstorage: storage 'local' does not support vm images\n"
    )
    sim.run("pvesh", "set", "/storage/local", "--content", "backup,iso,vztmpl")
    refused = sim.run(
        "pvesh", "create", "/nodes/sim/storage/local/download-url", "--content", "import",
        "--filename", "debian-12.qcow2", "--url", "sim://images/debian-12.qcow2",
    )  # fmt: skip
    assert (refused.returncode, refused.stderr) == (
        255,
        "storage 'local' is not configured for content-type 'import'\n",
    )
    digest = sim.pvesh("get", "/storage/local")["digest"]
    changed = sim.pvesh(
        "set", "/storage/local", "--content", "backup,images,import,iso,snippets,vztmpl",
        "--digest", digest,
    )  # fmt: skip
    assert changed == {"storage": "local", "type": "dir"}
    assert snippets.is_dir() and (snippets.parent / "import").is_dir()
    stale = sim.run("pvesh", "set", "/storage/local", "--content", "iso", "--digest", digest)
    assert "detected modified configuration" in stale.stderr
    # a type the plugin does not support is dropped, as PVE does; none left is an error
    lvm = sim.pvesh("set", "/storage/local-lvm", "--content", "images,rootdir,snippets")
    assert lvm == {"storage": "local-lvm", "type": "lvmthin"}
    assert sim.pvesh("get", "/storage/local-lvm")["content"] == "images,rootdir"
    none = sim.run("pvesh", "set", "/storage/local-lvm", "--content", "iso")
    assert none.stderr == "update storage failed: storage does not support content type 'none'\n"
    bad = sim.run("pvesh", "set", "/storage/local", "--content", "isos")
    assert "content: invalid format - invalid content type 'isos'" in bad.stderr
    gone = sim.run("pvesh", "set", "/storage/nope", "--content", "iso")
    assert gone.stderr == "update storage failed: storage 'nope' does not exist\n"


def test_a_listing_shows_enabled_content_types_only(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    sim.download_debian()
    listed = sim.pvesh("get", "/nodes/sim/storage/local/content", "--content", "import")
    assert [v["volid"] for v in listed] == ["local:import/debian-12.qcow2"]
    sim.run("pvesh", "set", "/storage/local", "--content", "iso,snippets")
    assert sim.pvesh("get", "/nodes/sim/storage/local/content", "--content", "import") == []


def test_a_simulated_host_has_internet(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    base = "/nodes/sim/storage/local/download-url"
    url = "https://cloud.debian.org/images/cloud/trixie/latest/debian-13-generic-amd64.qcow2"
    pinned = "ab" * 32
    upid = sim.pvesh(
        "create", base, "--content", "import", "--filename", "debian-13.qcow2", "--url", url,
        "--checksum", pinned, "--checksum-algorithm", "sha256",
    )  # fmt: skip
    assert sim.task(upid)["exitstatus"] == "OK"
    unpinned = "https://example.org/images/custom.qcow2"
    sim.pvesh(
        "create", base, "--content", "import", "--filename", "custom.qcow2", "--url", unpinned
    )
    data = (sim.root.host_dir("sim") / "var/lib/vz/import/custom.qcow2").read_bytes()
    assert data == f"pveplan-sim-download {unpinned}\n".encode()
