"""The simulator's disks and NICs, as PVE 9.1 documents them: `scsiN`/`virtioN`/`sataN`,
`netN` with tag/mtu/macaddr/firewall, `ipconfigN`, nameserver and searchdomain; what
PVE refuses at once (the schema) and what only when the VM starts (MTU, bridge)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pveplan.sim import SimRoot, init_root, register_token

from .test_rest import NODE, TOKEN, Api

VM = f"/nodes/{NODE}/qemu"


@pytest.fixture
def api(tmp_path: Path) -> Api:
    root = SimRoot(tmp_path / "sim")
    init_root(root, [NODE])
    register_token(root, NODE, TOKEN)
    return Api(root)


def _task_ok(api: Api, upid: str) -> tuple[bool, str]:
    status = api.data("GET", f"/nodes/{NODE}/tasks/{upid}/status")
    return status["exitstatus"] == "OK", status["exitstatus"]


def _create(api: Api, **params: object) -> dict:
    upid = api.data("POST", VM, {"vmid": 100, "name": "db", **params})
    assert _task_ok(api, upid)[0]
    return api.data("GET", f"{VM}/100/config")


def test_disks_on_three_buses_and_two_nics(api: Api) -> None:
    config = _create(
        api,
        scsi0="local-lvm:8",
        virtio0="local-lvm:4",
        sata0="local-lvm:2",
        net0="virtio,bridge=vmbr0,firewall=1",
        net1="virtio=BC:24:11:00:20:51,bridge=vmbr0,tag=20,mtu=1400",
        ipconfig1="ip=10.20.0.51/24,gw=10.20.0.1",
        nameserver="10.0.0.53 10.0.0.54",
        searchdomain="lab.example",
    )
    assert config["virtio0"].endswith("size=4G") and config["sata0"].endswith("size=2G")
    assert config["net0"].startswith("virtio=BC:24:11:") and config["net0"].endswith(
        ",bridge=vmbr0,firewall=1"
    )
    assert config["net1"] == "virtio=BC:24:11:00:20:51,bridge=vmbr0,mtu=1400,tag=20"
    assert config["ipconfig1"] == "ip=10.20.0.51/24,gw=10.20.0.1"
    assert config["boot"] == "order=sata0;net0"  # PVE: ide, sata, scsi, virtio
    # any disk grows; none shrinks
    upid = api.data("PUT", f"{VM}/100/resize", {"disk": "virtio0", "size": "6G"})
    assert _task_ok(api, upid)[0]
    assert api.data("GET", f"{VM}/100/config")["virtio0"].endswith("size=6G")
    upid = api.data("PUT", f"{VM}/100/resize", {"disk": "sata0", "size": "1G"})
    assert _task_ok(api, upid) == (False, "shrinking disks is not supported")


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"ipconfig1": "ip=10.0.0.5/40"}, "ipconfig1.ip"),
        ({"ipconfig1": "ip=10.0.0.5,gw=10.0.0.1"}, "ipconfig1.ip"),
        ({"ipconfig1": "ip6=fe80::1/200"}, "ipconfig1.ip6"),
        ({"ipconfig1": "ipv4=dhcp"}, "ipconfig1.ipv4"),
        ({"net1": "virtio,bridge=vmbr0,tag=4095"}, "net1.tag"),
        ({"net1": "virtio,bridge=vmbr0,mtu=65521"}, "net1.mtu"),
        ({"net1": "virtio,macaddr=zz:24:11:00:00:01"}, "net1.macaddr"),
        ({"nameserver": "10.0.0.1 not_an/address"}, "nameserver"),
        ({"virtio16": "local-lvm:1"}, "virtio16"),
    ],
)
def test_what_the_schema_refuses_is_a_400_naming_the_key(
    api: Api, params: dict[str, str], error: str
) -> None:
    answer = api.call("POST", VM, {"vmid": 100, **params})
    assert answer.status == 400, answer.body
    assert answer.body is not None and error in answer.body["errors"]


@pytest.mark.parametrize(
    ("net1", "message"),
    [
        ("virtio,bridge=vmbr0,mtu=9000", "MTU '9000' is bigger than the bridge MTU '1500'"),
        ("virtio,bridge=vmbr0,mtu=500", "MTU '500' is smaller than the IPv4 minimum MTU '576'"),
        ("virtio,bridge=vmbr9,tag=20", "bridge 'vmbr9' does not exist"),
    ],
)
def test_a_nic_its_bridge_cannot_carry_fails_at_start(api: Api, net1: str, message: str) -> None:
    _create(api, net0="virtio,bridge=vmbr0", net1=net1)
    upid = api.data("POST", f"{VM}/100/status/start")
    ok, status = _task_ok(api, upid)
    assert not ok and message in status
