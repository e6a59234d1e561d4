"""A VM with two disks and two NICs (one VLAN-tagged) on the simulator: apply, re-apply
with nothing to do, grow the second disk and change the VLAN in place, destroy."""

from __future__ import annotations

import re

from tests.cli_runner import run_cli

from .conftest import Lab
from .test_api_transport import ApiLab, api_lab, env  # noqa: F401 (fixtures)
from .test_apply import counts, resources

DEVICES = """
manifest "devs" {{
  settings = {{ nameserver = "10.0.0.53", searchdomain = "lab.example" }}
  node "db" {{
    type = "vm"
    preset = "vm-xsmall"
    image = "debian-13"
    vmid = 99071
    disks = [{{ size = 8 }}, {{ size = {second} }}]
    nics = [
      {{ bridge = "vmbr0", firewall = true }},
      {{
        bridge = "vmbr0"
        vlan = {vlan}
        mtu = 1400
        mac = "BC:24:11:00:70:71"
        ipconfig = "ip=10.20.0.71/24,gw=10.20.0.1"
      }},
    ]
  }}
}}
"""


def _size(value: str) -> str:
    match = re.search(r"size=(\w+)", value)
    assert match is not None, value
    return match.group(1)


def test_two_disks_two_nics_apply_change_in_place_destroy(lab: Lab) -> None:
    name = lab.manifest("devs", DEVICES.format(second=4, vlan=20))
    apply = lab.args("apply", "-M", name, "-H", "sim", "--yes")
    code, out, err = run_cli(apply)
    assert code == 0, out + err
    assert counts(out)["failed"] == 0
    (vm,) = lab.vms(name)
    config = vm["config"]
    assert vm["status"] == "running"
    assert _size(config["scsi0"]) == "8G" and _size(config["scsi1"]) == "4G"
    assert config["boot"] == "order=scsi0"
    assert config["net0"].startswith("virtio=") and "firewall=1" in config["net0"]
    assert config["net1"] == "virtio=BC:24:11:00:70:71,bridge=vmbr0,mtu=1400,tag=20"
    assert config["ipconfig0"] == "ip=dhcp"
    assert config["ipconfig1"] == "ip=10.20.0.71/24,gw=10.20.0.1"
    assert (config["nameserver"], config["searchdomain"]) == ("10.0.0.53", "lab.example")
    created = resources(lab, "devs@sim")["node.db.create"]

    code, out, err = run_cli(apply)
    assert code == 0, out + err
    assert counts(out)["ran"] == 0
    # the live VM, probed (its listing's disk is the boot disk's): no drift, no change
    code, out, err = run_cli(lab.args("plan", "-M", name, "-H", "sim", "--detailed-exitcode"))
    assert code == 0, out + err

    # grow the second disk and move the second NIC to VLAN 30: shown in place, done in place
    lab.manifest("devs", DEVICES.format(second=6, vlan=30))
    code, out, err = run_cli(lab.args("plan", "-M", name, "-H", "sim"))
    assert code == 0, out + err
    assert "disks[1].size: 4 -> 6 (in place)" in out
    assert "nics[1].vlan: 20 -> 30 (in place)" in out
    assert "0 to replace" in out
    code, out, err = run_cli(apply)
    assert code == 0, out + err
    assert counts(out)["failed"] == 0
    (after,) = lab.vms(name)
    assert after["vmid"] == 99071
    assert after["config"]["vmgenid"] == config["vmgenid"]  # the same VM, not recreated
    assert after["config"]["scsi0"] == config["scsi0"]
    assert _size(after["config"]["scsi1"]) == "6G"
    assert after["config"]["net1"] == "virtio=BC:24:11:00:70:71,bridge=vmbr0,mtu=1400,tag=30"
    assert after["config"]["net0"] == config["net0"]  # its generated MAC kept
    assert resources(lab, "devs@sim")["node.db.create"]["uuid"] == created["uuid"]

    code, out, err = run_cli(apply)
    assert code == 0, out + err
    assert counts(out)["ran"] == 0

    code, out, err = run_cli(lab.args("destroy", "-M", name, "-H", "sim", "--yes"))
    assert code == 0, out + err
    assert lab.vms(name) == []
    assert resources(lab, "devs@sim") == {}


def test_the_same_over_the_https_api(env: ApiLab) -> None:  # noqa: F811 (a fixture)
    """Create with both disks and NICs, then grow and retag in place, through PVE's API."""
    from pveplan.sim import read_state

    (env.site / "manifests" / "devs.pvp").write_text(DEVICES.format(second=4, vlan=20))
    assert env.cli("apply", "-M", "devs", "-H", "sim", "--yes")[0] == 0
    before = next(v for v in read_state(env.sim)["vms"].values() if v["vmid"] == 99071)
    (env.site / "manifests" / "devs.pvp").write_text(DEVICES.format(second=6, vlan=30))
    since = len(env.api_calls())
    code, out, err = env.cli("apply", "-M", "devs", "-H", "sim", "--yes")
    assert code == 0, out + err
    calls = [(c["method"], c["path"].rsplit("/", 1)[-1]) for c in env.api_calls()[since:]]
    assert ("PUT", "resize") in calls and ("PUT", "config") in calls
    after = next(v for v in read_state(env.sim)["vms"].values() if v["vmid"] == 99071)
    assert after["config"]["vmgenid"] == before["config"]["vmgenid"]
    assert _size(after["config"]["scsi1"]) == "6G" and "tag=30" in after["config"]["net1"]
    assert env.cli("destroy", "-M", "devs", "-H", "sim", "--yes")[0] == 0
