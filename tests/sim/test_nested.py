"""Nested PVE hosts: a simulated VM with proxmox-ve installed is a PVE host in its own right.

Everything runs through the launchers as separate processes, as pveplan runs it over SSH:
`apt-get` in the VM, then the nested host's own `pvesh`, `qm` and `pveversion`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from pveplan.sim import init_root
from tests.sim import Sim, encoded_key

PVE_UNITS = ("pveproxy", "pvedaemon", "pvestatd", "pve-cluster", "pve-firewall", "pvescheduler")


def _ok(result: Any) -> str:
    assert result.returncode == 0, result.stderr
    return str(result.stdout)


def install_pve(sim: Sim, vmid: int) -> Any:
    """`apt-get install -y proxmox-ve` as root in VM `vmid` of `sim`'s node."""
    return sim.guest(vmid, "apt-get", "install", "-y", "proxmox-ve")


def add_bridge(sim: Sim, bridge: str = "vmbr0") -> None:
    """vmbr0 over eth0, created and applied, as pveplan's `pve.bridge` step does."""
    network = f"/nodes/{sim.node}/network"
    _ok(sim.run("pvesh", "create", network, "--iface", bridge, "--type", "bridge",
                "--bridge_ports", "eth0", "--autostart", "1"))  # fmt: skip
    _ok(sim.run("pvesh", "set", network))


def boot_vm(sim: Sim, vmid: int, name: str) -> None:
    _ok(sim.create_vm(vmid, "--name", name))
    _ok(sim.run("qm", "start", vmid))


@pytest.fixture(scope="module")
def pve1(tmp_path_factory: pytest.TempPathFactory) -> Sim:
    """VM 100 `pve1` on host `sim`, booted with cloud-init, with proxmox-ve installed."""
    sim = Sim(tmp_path_factory.mktemp("nested"))
    _ok(sim.create_vm(100, "--name", "pve1", "--ide2", "local-lvm:cloudinit",
                      "--sshkeys", encoded_key()))  # fmt: skip
    _ok(sim.run("qm", "start", "100"))
    installed = _ok(install_pve(sim, 100))
    assert "Setting up proxmox-ve (9.1.0) ..." in installed
    return sim


def test_installing_proxmox_ve_makes_the_vm_a_host(pve1: Sim) -> None:
    state = pve1.state()
    vm = pve1.vm(100)
    assert state["nodes"]["pve1"] == {"address": vm["address"], "vmid": 100, "parent": "sim"}
    # PVE installed on Debian: no storage.cfg, so pve-storage's built-in `local` only
    assert state["storage"]["pve1"] == {"local": {}}
    content = pve1.at("pve1").pvesh("get", "/storage/local")["content"]
    assert content == "backup,images,iso,rootdir,snippets,vztmpl"
    tree = pve1.root.vm_dir("sim", 100)
    link = pve1.root.host_dir("pve1")
    assert os.readlink(link) == "../vms/sim/100"
    assert link.resolve() == tree.resolve()
    for tool in ("pvesh", "qm", "pveum", "pveversion", "apt-get", "python3"):
        assert os.access(tree / "bin" / tool, os.X_OK), tool
    assert (tree / "var/lib/vz/snippets").is_dir()  # storage `local` lives in the VM's tree


def test_the_nested_host_answers_its_own_pve_commands(pve1: Sim) -> None:
    nested = pve1.at("pve1")
    version = _ok(nested.run("pveversion"))
    assert version == "pve-manager/9.1.9/5a2f2f5d2b3c1e07 (running kernel: 6.17.2-1-pve)\n"
    assert _ok(nested.run("pveversion", "--verbose")).startswith("proxmox-ve: 9.1.0 (running")
    assert nested.pvesh("get", "/version")["version"] == "9.1.9"
    assert [n["node"] for n in nested.pvesh("get", "/nodes")] == ["pve1"]
    assert nested.pvesh("get", "/nodes/pve1/qemu") == []  # VM 100 is the parent's, not its
    foreign = nested.run("pvesh", "get", "/nodes/sim/qemu")
    assert foreign.stderr.startswith("hostname lookup 'sim' failed")
    tools = [json.loads(line)["tool"] for line in pve1.root.calls.read_text().splitlines()]
    assert "pveversion" not in tools  # no API call: not in the contract-checked record


def test_proxmox_ve_brings_its_units_enabled_and_active(pve1: Sim) -> None:
    for unit in PVE_UNITS:
        assert _ok(pve1.guest(100, "systemctl", "is-active", unit)) == "active\n"
        assert _ok(pve1.guest(100, "systemctl", "is-enabled", unit)) == "enabled\n"
    _ok(pve1.guest(100, "systemctl", "enable", "--now", "pveproxy"))
    status = pve1.guest(100, "dpkg-query", "-W", "-f=${Status} ${Version}", "pve-manager")
    assert _ok(status) == "install ok installed 9.1.9"


def test_installing_again_changes_nothing(pve1: Sim) -> None:
    before = pve1.state()
    again = _ok(install_pve(pve1, 100))
    assert "proxmox-ve is already the newest version (9.1.0).\n" in again
    assert "0 newly installed" in again
    assert pve1.state()["nodes"] == before["nodes"]


def test_a_nested_host_has_eth0_and_no_bridge(pve1: Sim) -> None:
    nested = pve1.at("pve1")
    (eth0,) = nested.pvesh("get", "/nodes/pve1/network")
    address = pve1.vm(100)["address"]
    assert eth0 == {
        "iface": "eth0", "type": "eth", "active": 1, "exists": 1, "autostart": 1,
        "method": "static", "method6": "manual", "families": ["inet"], "priority": 3,
        "address": address, "netmask": "8", "cidr": f"{address}/8",
    }  # fmt: skip
    assert nested.pvesh("get", "/nodes/pve1/network", "--type", "bridge") == []
    top = [n["iface"] for n in pve1.pvesh("get", "/nodes/sim/network", "--type", "bridge")]
    assert top == ["vmbr0"]  # a PVE ISO install bridges its NIC


def test_node_name_is_the_current_hostname_and_unique(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    for vmid, name in ((101, "pve1"), (102, "other"), (103, "third")):
        boot_vm(sim, vmid, name)
    _ok(sim.guest(103, "hostnamectl", "set-hostname", "pve3.example.com"))
    _ok(install_pve(sim, 103))
    assert sim.state()["nodes"]["pve3"]["vmid"] == 103  # the short hostname, not the VM name
    _ok(install_pve(sim, 101))
    _ok(sim.guest(102, "hostnamectl", "set-hostname", "pve1"))
    clash = install_pve(sim, 102)
    assert clash.returncode == 100
    assert clash.stderr == (
        "E: cannot make VM 102 on node 'sim' the PVE node 'pve1': the simulator already has "
        "a node named 'pve1' (give this VM another hostname)\n"
    )
    assert sim.state()["nodes"]["pve1"]["vmid"] == 101
    missing = sim.guest(102, "dpkg-query", "-W", "proxmox-ve")
    assert missing.returncode == 1  # nothing half-installed
    assert sim.guest(102, "systemctl", "is-active", "pveproxy").returncode == 3


def test_bridges_are_pending_until_the_network_is_reloaded(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    _ok(sim.create_vm(100, "--net1", "virtio,bridge=vmbr1"))
    network = "/nodes/sim/network"
    _ok(sim.run("pvesh", "create", network, "--iface", "vmbr1", "--type", "bridge",
                "--cidr", "10.1.0.1/24", "--autostart", "1"))  # fmt: skip
    pending = sim.pvesh("get", f"{network}/vmbr1")
    assert "active" not in pending
    assert (pending["address"], pending["netmask"], pending["method"]) == (
        "10.1.0.1",
        "24",
        "static",
    )
    _ok(sim.run("pvesh", "create", network, "--iface", "vmbr3", "--type", "bridge",
                "--address", "10.2.0.1", "--netmask", "255.255.0.0"))  # fmt: skip
    dotted = sim.pvesh("get", f"{network}/vmbr3")
    assert (dotted["netmask"], dotted["cidr"]) == ("16", "10.2.0.1/16")  # as PVE reads it back
    upid = sim.pvesh("create", "/nodes/sim/qemu/100/status/start")
    assert sim.task(upid)["exitstatus"] == "bridge 'vmbr1' does not exist"
    _ok(sim.run("pvesh", "create", network, "--iface", "vmbr2", "--type", "bridge"))
    _ok(sim.run("pvesh", "delete", network))  # revert: every pending bridge is gone
    assert [n["iface"] for n in sim.pvesh("get", network)] == ["eth0", "vmbr0"]
    _ok(sim.run("pvesh", "create", network, "--iface", "vmbr1", "--type", "bridge",
                "--autostart", "1"))  # fmt: skip
    _ok(sim.run("pvesh", "create", network, "--iface", "vmbr2", "--type", "bridge"))
    reload = sim.pvesh("set", network)
    assert reload.split(":")[5:7] == ["srvreload", "networking"]
    assert sim.task(reload)["exitstatus"] == "OK"
    active = {n["iface"]: n.get("active") for n in sim.pvesh("get", network, "--type", "bridge")}
    assert active == {"vmbr0": 1, "vmbr1": 1, "vmbr2": None}  # ifreload -a: `auto` ones only
    _ok(sim.run("qm", "start", "100"))
    assert sim.vm(100)["status"] == "running"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--iface", "vmbr0", "--type", "bridge"], "iface: interface already exists"),
        (["--iface", "vmbr9"], "type: property is missing and it is not optional"),
        (
            ["--iface", "9x", "--type", "bridge"],
            "iface: invalid format - invalid network interface name '9x'\n",
        ),
        (
            ["--iface", "vmbr9", "--type", "bridge", "--bridge_ports", "eth0 b@d"],
            "bridge_ports: invalid format - invalid network interface name 'b@d'\n",
        ),
        (
            [
                "--iface",
                "vmbr9",
                "--type",
                "bridge",
                "--cidr",
                "10.0.0.1/24",
                "--address",
                "10.0.0.1",
                "--netmask",
                "255.0.0.0",
            ],
            "address: address conflicts with cidr\nnetmask: netmask conflicts with cidr",
        ),
        (
            ["--iface", "vmbr9", "--type", "bridge", "--cidr", "10.0.0.1"],
            "cidr: invalid format - value does not look like a valid IPv4 CIDR network\n",
        ),
    ],
)
def test_network_parameter_errors(tmp_path: Path, args: list[str], error: str) -> None:
    sim = Sim(tmp_path)
    result = sim.run("pvesh", "create", "/nodes/sim/network", *args)
    assert result.returncode == 255
    assert result.stderr == f"400 Parameter verification failed.\n{error}\n"
    unknown = sim.run("pvesh", "get", "/nodes/sim/network/vmbr7")
    assert unknown.stderr == "400 Parameter verification failed.\niface: interface does not exist\n"


def test_nesting_to_depth_two_and_destroying_the_top(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    boot_vm(sim, 100, "pve1")
    _ok(install_pve(sim, 100))
    pve1 = sim.at("pve1")
    add_bridge(pve1)
    boot_vm(pve1, 100, "pve2")  # vmids are per (nested) cluster: 100 again, one level down
    _ok(install_pve(pve1, 100))
    pve2 = sim.at("pve2")
    add_bridge(pve2)
    boot_vm(pve2, 300, "leaf")
    pve2.enable_content("local", "import")
    pve2.download_debian()
    _ok(pve2.run("pveum", "user", "token", "add", "root@pam", "deep"))
    state = sim.state()
    addresses = [state["nodes"][n]["address"] for n in ("sim", "pve1", "pve2")]
    assert len({*addresses, pve2.vm(300)["address"]}) == 4
    assert state["nodes"]["pve2"] == {"address": pve1.vm(100)["address"], "vmid": 100,
                                      "parent": "pve1"}  # fmt: skip
    image = pve2.root.host_dir("pve2") / "var/lib/vz/import/debian-12.qcow2"
    assert image.resolve().is_relative_to(sim.root.vm_dir("pve1", 100).resolve())
    assert (sim.root.vm_dir("pve2", 300) / "etc/ssh/ssh_host_ed25519_key").is_file()

    destroy = sim.run("qm", "destroy", "100")
    assert destroy.returncode == 255 and "VM 100 is running - destroy failed" in destroy.stderr
    _ok(sim.run("qm", "stop", "100"))
    _ok(sim.run("qm", "destroy", "100"))
    state = sim.state()
    assert list(state["nodes"]) == ["sim"]
    assert state["vms"] == {}
    for table in ("storage", "tokens", "network"):
        assert set(state[table]) <= {"sim"}, table
    assert {task["node"] for task in state["tasks"].values()} == {"sim"}
    assert sorted(p.name for p in (sim.root.path / "hosts").iterdir()) == ["sim"]
    assert sorted(p.name for p in (sim.root.path / "vms").iterdir()) == ["sim"]
    assert list((sim.root.path / "vms" / "sim").iterdir()) == []


def test_init_root_rewrites_the_nested_hosts_launchers(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    boot_vm(sim, 100, "pve1")
    _ok(install_pve(sim, 100))
    launcher = sim.root.vm_dir("sim", 100) / "bin" / "qm"
    launcher.write_text("#!/bin/sh\nexit 1\n")
    init_root(sim.root, ["sim"])
    assert "pveplan.sim._pvecli" in launcher.read_text()
    assert _ok(sim.at("pve1").run("qm", "list")) == ""


def test_a_download_on_a_nested_host_uses_the_nested_storage(pve1: Sim) -> None:
    nested = pve1.at("pve1")
    nested.enable_content("local", "import")  # not in pve-storage's built-in `local`
    nested.download_debian()
    volumes = nested.pvesh("get", "/nodes/pve1/storage/local/content", "--content", "import")
    assert [v["volid"] for v in volumes] == ["local:import/debian-12.qcow2"]
    assert pve1.pvesh("get", "/nodes/sim/storage/local/content", "--content", "import") == []
    file = pve1.root.vm_dir("sim", 100) / "var/lib/vz/import/debian-12.qcow2"
    assert file.read_bytes() == b"pveplan-sim-image debian-12\n"
