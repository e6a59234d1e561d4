"""Every PVE request the driver can build conforms to PVE 9.1's API schema.

Why: a misspelt parameter, a method the path does not have or an enum value PVE does not
know fails only on a real host, late, with a terse 400. The builders are pure, so each one
is called here with typical values, the way the step kinds call them, and its request is
held against the schema in tests/fixtures/pve (`check_api_request`): the path is one of the
schema's, the method one of its methods, every parameter declared and valid, the required
ones present, and `returns_task` exactly where PVE answers with a task's UPID. A builder
added without a case here fails `test_every_builder_has_a_contract_case`.
"""

from __future__ import annotations

import inspect
from typing import Any, get_args

import msgspec
import pytest

from pveplan.executor.kinds._clone import clone_params
from pveplan.executor.kinds._ct import ct_params
from pveplan.executor.kinds._ct import reconcile as ct_reconcile
from pveplan.executor.kinds._vm import _vm_params, reconcile
from pveplan.executor.kinds._vmdevices import device_changes
from pveplan.executor.kinds._vmsettings import settings_requests
from pveplan.executor.pve import PveRequest, encode_sshkeys
from pveplan.executor.pve import requests as build
from pveplan.executor.pve._privileges import least_privilege_token
from pveplan.planner import CtCreateArgs, VmCloneArgs, VmCreateArgs
from tests.contract.pve_contract import check_api_request, load_schema

NODE = "pve"
UPID = "UPID:pve:00001234:00005678:65000000:qmstart:100:root@pam:"
STEP_ARGS: dict[str, Any] = {  # as planner._compile writes a pve.vm.create step's args
    "name": "web1",
    "type": "vm",
    "vmid": 100,
    "cores": 2,
    "memory": 2048,
    "disk": 20,
    "bridge": "vmbr0",
    "storage": "local-lvm",
    "tags": ["pveplan", "pveplan-lab"],
    "image": "debian-12",
    "cloud_init": {
        "user": "homestak",
        "sudo": True,
        "packages": [],
        "timezone": None,
        "agent": True,
        "serial": True,
        "mode": "push",
    },
}
KEYS = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9v root@driver", "ssh-rsa AAAAB3Nza x@y"]
CREATE_PARAMS = _vm_params(
    msgspec.convert(STEP_ARGS, VmCreateArgs),
    "local:import/debian-12.qcow2",
    KEYS,
    100,
    "local",
)
CONFIG = {"cores": 1, "memory": "1024", "scsi0": "local-lvm:vm-100-disk-0,size=10G"}
# A VM with disks on two buses and two NICs (one VLAN-tagged, MTU, pinned MAC, firewall),
# a static cloud-init address on the second, and DNS.
DEVICE_ARGS = msgspec.convert(
    {
        **STEP_ARGS,
        "disks": [
            {"size": 20, "bus": "scsi", "storage": "local-lvm"},
            {"size": 50, "bus": "virtio", "storage": "local-lvm"},
            {"size": 5, "bus": "sata", "storage": "local-lvm"},
        ],
        "nics": [
            {"bridge": "vmbr0", "model": "virtio", "firewall": True},
            {
                "bridge": "vmbr0",
                "model": "virtio",
                "vlan": 20,
                "mtu": 1400,
                "mac": "BC:24:11:00:20:51",
                "ipconfig": "ip=10.20.0.51/24,gw=10.20.0.1,ip6=auto",
            },
        ],
        "nameserver": "10.0.0.53 10.0.0.54",
        "searchdomain": "lab.example",
    },
    VmCreateArgs,
)
DEVICE_PARAMS = _vm_params(DEVICE_ARGS, "local:import/debian-12.qcow2", KEYS, 101, "local")
# Live: the second disk smaller, the third missing, net1 untagged, a net2 too many.
DEVICE_LIVE = {
    "scsi0": "local-lvm:vm-101-disk-0,size=20G",
    "virtio0": "local-lvm:vm-101-disk-1,size=30G",
    "ide2": "local-lvm:vm-101-cloudinit,media=cdrom",
    "net0": "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,firewall=1",
    "net1": "virtio=BC:24:11:00:20:51,bridge=vmbr0,mtu=1400",
    "net2": "virtio=BC:24:11:AA:BB:CD,bridge=vmbr0",
    "ipconfig0": "ip=dhcp",
}
DEVICE_CHANGES = device_changes(NODE, 101, DEVICE_LIVE, DEVICE_ARGS).requests
DRIFTED = {  # a config changed by hand: what a full refresh's drift sets back
    "net0": "e1000=BC:24:11:00:00:01,bridge=vmbr9,firewall=1",
    "ciuser": "bob",
    "sshkeys": encode_sshkeys(KEYS[:1]),
}
ONBOOT_ARGS = msgspec.convert({**STEP_ARGS, "onboot": True}, VmCreateArgs)
CT_ARGS = msgspec.convert(
    {
        **{k: v for k, v in STEP_ARGS.items() if k not in ("image", "cloud_init")},
        "name": "box1",
        "type": "ct",
        "template": "debian-13-standard",
        "swap": 512,
        "nesting": True,
        "unprivileged": True,
    },
    CtCreateArgs,
)
CT_PARAMS = ct_params(CT_ARGS, "local:vztmpl/debian-13-standard.tar.zst", KEYS)
CT_CONFIG = {"cores": 1, "memory": 512, "swap": 0, "rootfs": "local-lvm:vm-100-disk-0,size=8G"}
DNS = {"nameserver": "10.0.0.53 10.0.0.54", "searchdomain": "lab.example"}
CT_DNS_ARGS = msgspec.convert({**msgspec.to_builtins(CT_ARGS), **DNS}, CtCreateArgs)
CT_DNS_CONFIG = {**CT_CONFIG, "nameserver": "10.0.0.1", "searchdomain": "old.example"}
CLONE_ARGS = msgspec.convert(
    {**{k: v for k, v in STEP_ARGS.items() if k != "image"}, "source": "t", "linked": True, **DNS},
    VmCloneArgs,
)
CLONE_PARAMS = clone_params(CLONE_ARGS, 9000, KEYS, 101, "local")

CASES: dict[str, list[PveRequest]] = {
    "cluster_resources": [build.cluster_resources("vm")],
    "next_id": [build.next_id(), build.next_id(101)],
    "version": [build.version()],
    "nodes": [build.nodes()],
    "task_status": [build.task_status(NODE, UPID)],
    "vm_config": [build.vm_config(NODE, 100)],
    "vm_status": [build.vm_status(NODE, 100)],
    "create_vm": [
        build.create_vm(NODE, 100, CREATE_PARAMS),
        build.create_vm(NODE, 999, {}),
        build.create_vm(NODE, 101, DEVICE_PARAMS),
    ],
    "set_vm_config": [
        build.set_vm_config(NODE, 100, {"cores": 4, "memory": 4096}),
        build.set_vm_config(NODE, 100, {"description": "pveplan: image=x\npveplan: destroying"}),
        *reconcile(NODE, 100, CONFIG, cores=2, memory=2048, disk=20),
        *(r for r in DEVICE_CHANGES if r.method == "PUT" and r.path.endswith("/config")),
        *settings_requests(NODE, 100, DRIFTED, ONBOOT_ARGS, KEYS)[:1],
        build.set_vm_config(NODE, 101, CLONE_PARAMS),
    ],
    "update_vm_config": [r for r in DEVICE_CHANGES if r.method == "POST"],
    "resize_disk": [
        build.resize_disk(NODE, 100, "scsi0", "20G"),
        *(r for r in DEVICE_CHANGES if r.path.endswith("/resize")),
    ],
    "regenerate_cloudinit": [
        build.regenerate_cloudinit(NODE, 100),
        *settings_requests(NODE, 100, DRIFTED, ONBOOT_ARGS, KEYS)[1:],
    ],
    "vm_power": [build.vm_power(NODE, 100, a) for a in get_args(build.PowerAction)],
    "snapshots": [build.snapshots(NODE, 100)],
    "create_snapshot": [build.create_snapshot(NODE, 100, "pveplan-1a2b3c4d", "before: x")],
    "delete_snapshot": [build.delete_snapshot(NODE, 100, "pveplan-1a2b3c4d")],
    "destroy_vm": [build.destroy_vm(NODE, 100), build.destroy_vm(NODE, 100, skiplock=True)],
    "make_template": [build.make_template(NODE, 9000)],
    "clone_vm": [
        build.clone_vm(NODE, 9000, 101, name="web1", full=False),
        build.clone_vm(NODE, 9000, 102, name="web2", full=True, storage="local-lvm"),
        build.clone_vm(NODE, 9000, 103, name="web3", full=False, storage="local-lvm", target=NODE),
    ],
    "agent_interfaces": [build.agent_interfaces(NODE, 100)],
    "agent_file_read": [build.agent_file_read(NODE, 100, "/etc/ssh/ssh_host_ed25519_key.pub")],
    "ct_config": [build.ct_config(NODE, 100)],
    "ct_status": [build.ct_status(NODE, 100)],
    "create_ct": [
        build.create_ct(NODE, 100, CT_PARAMS),
        build.create_ct(NODE, 100, ct_params(CT_DNS_ARGS, "local:vztmpl/d.tar.zst", KEYS)),
    ],
    "set_ct_config": [
        *ct_reconcile(NODE, 100, CT_CONFIG, CT_ARGS),
        *ct_reconcile(NODE, 100, CT_DNS_CONFIG, CT_DNS_ARGS),
        *ct_reconcile(NODE, 100, CT_DNS_CONFIG, CT_ARGS),
        build.set_ct_config(NODE, 100, {"tags": "pveplan;pveplan-lab"}),
    ],
    "resize_ct": [build.resize_ct(NODE, 100, "rootfs", "20G")],
    "ct_power": [build.ct_power(NODE, 100, a) for a in get_args(build.CtPowerAction)],
    "destroy_ct": [build.destroy_ct(NODE, 100)],
    "ct_interfaces": [build.ct_interfaces(NODE, 100)],
    "storage_content": [
        build.storage_content(NODE, "local", "import"),
        build.storage_content(NODE, "local", "vztmpl"),
    ],
    "node_storage": [build.node_storage(NODE, "local-zfs")],
    "set_storage_content": [
        build.set_storage_content("local", ["backup", "images", "import", "iso", "snippets"]),
    ],
    "download_url": [
        build.download_url(
            NODE,
            "local",
            filename="d.qcow2",
            url="https://x/d.qcow2",
            content="import",
            sha256=None,
        ),
        build.download_url(
            NODE, "local", filename="d.qcow2", url="https://x/d", content="import", sha256="ab" * 32
        ),
        build.download_url(
            NODE,
            "local",
            filename="debian-13-standard-abababababababab.tar.zst",
            url="http://download.proxmox.com/images/system/debian-13-standard_13.1-1_amd64.tar.zst",
            content="vztmpl",
            sha256="ab" * 32,
        ),
    ],
    "networks": [build.networks(NODE), build.networks(NODE, "bridge")],
    "create_bridge": [build.create_bridge(NODE, "vmbr0", "eth0")],
    "reload_network": [build.reload_network(NODE)],
    "create_token": [
        build.create_token("root@pam", "pveplan", privsep=False),
        build.create_token("root@pam", "pveplan", privsep=True),
    ],
    "permissions": [build.permissions(), build.permissions("root@pam!pveplan", "/vms/100")],
    "create_role": [least_privilege_token("pveplan@pve", "apply")[0]],
    "create_user": [least_privilege_token("pveplan@pve", "apply")[1]],
    "grant_role": [
        r for r in least_privilege_token("pveplan@pve", "apply") if r.path == "/access/acl"
    ],
}
ALL = [pytest.param(r, id=f"{name}-{i}") for name, rs in CASES.items() for i, r in enumerate(rs)]


def test_every_builder_has_a_contract_case() -> None:
    builders = {
        name
        for name, obj in vars(build).items()
        if inspect.isfunction(obj) and obj.__module__ == build.__name__ and name[0] != "_"
    }
    assert builders == set(CASES)


@pytest.mark.parametrize("request_", ALL)
def test_request_conforms_to_the_api_schema(request_: PveRequest) -> None:
    problems = check_api_request(
        request_.method, request_.path, request_.path_params, request_.params
    )
    assert problems == [], str(request_)


@pytest.mark.parametrize("request_", ALL)
def test_returns_task_exactly_where_pve_answers_with_a_upid(request_: PveRequest) -> None:
    """PVE's async methods return the UPID as a string; every other method used here
    returns an object, an array, null or (nextid) an integer."""
    returns = load_schema().endpoints[request_.path].methods[request_.method].returns
    assert request_.returns_task == (returns.get("type") == "string")


@pytest.mark.parametrize("request_", ALL)
def test_the_filled_path_routes_to_the_same_template(request_: PveRequest) -> None:
    for encode in (False, True):
        resolved = load_schema().resolve(request_.filled_path(encode=encode))
        assert resolved is not None
        endpoint, values = resolved
        assert endpoint.template == request_.path
        assert values == {k: str(v) for k, v in request_.path_params.items()}


def test_no_builder_sends_none() -> None:
    for requests in CASES.values():
        for request in requests:
            assert None not in request.params.values()


def test_the_create_request_is_the_vm_the_kind_means() -> None:
    request = CASES["create_vm"][0]
    assert request.params["vmid"] == 100
    assert request.params["scsi0"] == "local-lvm:0,import-from=local:import/debian-12.qcow2"
    assert request.params["sshkeys"] == encode_sshkeys(KEYS)
    assert request.params["cicustom"] == "user=local:snippets/pveplan-100-user.yaml"
    assert request.params["tags"] == "pveplan;pveplan-lab"


def test_the_create_request_is_the_container_the_kind_means() -> None:
    params = CASES["create_ct"][0].params
    assert params["ostemplate"] == "local:vztmpl/debian-13-standard.tar.zst"
    assert params["rootfs"] == "local-lvm:20"
    assert params["net0"] == "name=eth0,bridge=vmbr0,ip=dhcp"
    assert params["features"] == "nesting=1"
    assert params["ssh-public-keys"] == "\n".join(KEYS)
    assert params["hostname"] == "box1"


def test_ct_reconcile_sets_sizes_in_place_and_grows_the_rootfs() -> None:
    config_set, resize = ct_reconcile(NODE, 100, CT_CONFIG, CT_ARGS)
    assert config_set.params == {
        "cores": 2,
        "memory": 2048,
        "swap": 512,
        "features": "nesting=1",
    }
    assert resize.params == {"disk": "rootfs", "size": "20G"}
    bigger = {**CT_CONFIG, "rootfs": "local-lvm:vm-100-disk-0,size=30G"}
    assert all(r.path.endswith("/config") for r in ct_reconcile(NODE, 100, bigger, CT_ARGS))


def test_dns_reaches_a_clone_and_a_container_and_changes_in_place() -> None:
    """The settings' or a node's DNS is set on a clone after cloning and in a container's
    create, and reconciled in place on a live one (set when it differs, deleted when the
    manifest no longer names it): never dropped."""
    assert {k: CLONE_PARAMS[k] for k in DNS} == DNS
    create = ct_params(CT_DNS_ARGS, "local:vztmpl/d.tar.zst", KEYS)
    assert {k: create[k] for k in DNS} == DNS
    assert not set(DNS) & set(CT_PARAMS)  # unset: PVE's default, the host's
    changed = ct_reconcile(NODE, 100, CT_DNS_CONFIG, CT_DNS_ARGS)[0].params
    assert {k: changed[k] for k in DNS} == DNS
    dropped = ct_reconcile(NODE, 100, CT_DNS_CONFIG, CT_ARGS)[0].params
    assert dropped["delete"] == "nameserver,searchdomain"
    same = {**CT_DNS_CONFIG, **DNS}
    assert not set(DNS) & set(ct_reconcile(NODE, 100, same, CT_DNS_ARGS)[0].params)


# --- the checker catches what it exists to catch ----------------------------------------

BAD = [
    (build.PveRequest(method="GET", path="/nodes/{node}/qemus", path_params={"node": NODE}), "not a path"),
    (build.PveRequest(method="POST", path="/version"), "no POST method"),
    (build.PveRequest(method="GET", path="/nodes/{node}/network"), "path parameters"),
    (build.set_vm_config(NODE, 100, {"cors": 2}), "cors: unknown parameter"),
    (build.set_vm_config(NODE, 100, {"scsihw": "virtio"}), "scsihw: value 'virtio'"),
    (build.set_vm_config(NODE, 100, {"cores": True}), "a boolean for a integer"),
    (build.set_vm_config(NODE, 100, {"vmid": 101}), "comes from the path"),
    (build.vm_config(NODE, 99), "vmid (in path)"),
    (build.PveRequest(method="POST", path="/nodes/{node}/qemu", path_params={"node": NODE}), "vmid: missing required"),
    (build.networks(NODE, "bridges"), "type: value 'bridges'"),
    (build.destroy_vm("pve_1", 100), "node (in path)"),
    (build.cluster_resources("vms"), "type: value 'vms'"),  # type: ignore[arg-type]
]  # fmt: skip


@pytest.mark.parametrize(("request_", "expected"), BAD)
def test_bad_requests_are_rejected(request_: PveRequest, expected: str) -> None:
    problems = check_api_request(
        request_.method, request_.path, request_.path_params, request_.params
    )
    assert any(expected in problem for problem in problems), problems


# --- what the VM kind decides -------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"cores": 2, "memory": "2048", "scsi0": "x:vm-100-disk-0,size=20G"}, []),
        ({"cores": 2, "memory": "current=2048", "scsi0": "x,size=32G"}, []),  # never shrinks
        ({"cores": 1, "memory": "2048", "scsi0": "x,size=20G"}, [("PUT config", {"cores": 2})]),
        (
            {"cores": 2, "memory": "512", "scsi0": "x,size=10G"},
            [("PUT config", {"memory": 2048}), ("PUT resize", {"disk": "scsi0", "size": "20G"})],
        ),
        (
            {},
            [
                ("PUT config", {"cores": 2, "memory": 2048}),
                ("PUT resize", {"disk": "scsi0", "size": "20G"}),
            ],
        ),
    ],
)
def test_reconcile_asks_only_for_what_differs(
    config: dict[str, Any], expected: list[tuple[str, dict[str, Any]]]
) -> None:
    requests = reconcile(NODE, 100, config, cores=2, memory=2048, disk=20)
    got = [(f"{r.method} {r.path.rsplit('/', 1)[-1]}", r.params) for r in requests]
    assert got == expected
    assert all(r.path_params == {"node": NODE, "vmid": 100} for r in requests)


def test_device_changes_cover_every_request_shape() -> None:
    """The device reconcile makes each of its three requests for the live VM above: the
    NICs, addresses and DNS set (and net2 detached) at once, the sata disk allocated
    (POST: a task), the virtio disk grown; all three are in the contract cases."""
    by_kind = {(r.method, r.path.rsplit("/", 1)[-1]): r for r in DEVICE_CHANGES}
    assert set(by_kind) == {("PUT", "config"), ("POST", "config"), ("PUT", "resize")}
    put = by_kind[("PUT", "config")].params
    assert put["net1"] == "virtio=BC:24:11:00:20:51,bridge=vmbr0,mtu=1400,tag=20"
    assert put["delete"] == "net2"
    assert put["ipconfig1"].startswith("ip=10.20.0.51/24") and put["nameserver"]
    assert by_kind[("POST", "config")].params == {"sata0": "local-lvm:5"}
    assert by_kind[("PUT", "resize")].params == {"disk": "virtio0", "size": "50G"}
    assert DEVICE_PARAMS["boot"] == "order=scsi0" and DEVICE_PARAMS["virtio0"] == "local-lvm:50"
