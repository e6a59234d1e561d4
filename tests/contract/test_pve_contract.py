"""Tests of the PVE contract checker itself.

Why: the checker is what lets driver tests claim "PVE would accept this argv"; a checker
that accepts garbage, or rejects real calls, would make those claims worthless. Known-good
calls come from pve-api.md and real CLI usage; known-bad ones are the mistakes the checker
exists to catch.
"""

from __future__ import annotations

import shlex
import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from .pve_contract import (
    DEFAULT_SCHEMA_PATH,
    ApiCall,
    check_call,
    check_value,
    load_schema,
    to_api_call,
)

CREATE_VM = (
    "pvesh create /nodes/pve/qemu --vmid 100 --name web1 --memory 2048 --cores 2"
    " --scsihw virtio-scsi-single"
    " --scsi0 local-lvm:0,import-from=local:import/debian-12.qcow2"
    " --net0 virtio,bridge=vmbr0 --ide2 local-lvm:cloudinit --ciuser homestak"
    " --sshkeys ssh-ed25519%20AAAA... --ipconfig0 ip=dhcp --agent 1 --serial0 socket"
    " --vga serial0 --tags 'pveplan;pveplan-n1' --output-format json"
)
UPID = "UPID:pve:00001234:00005678:65000000:qmstart:100:root@pam:"

GOOD = [
    CREATE_VM,
    "pct create 200 local:vztmpl/debian-13-standard.tar.zst --hostname box --rootfs local-lvm:8"
    " --net0 name=eth0,bridge=vmbr0,ip=dhcp --features nesting=1 --unprivileged 1 --swap 256",
    "pct create 201 local:vztmpl/d.tar.zst --hostname box --ssh-public-keys /tmp/keys.pub",
    "pct exec 200 -- cat /etc/ssh/ssh_host_ed25519_key.pub",
    "pct pull 200 /etc/hostname /tmp/hostname",
    "pct resize 200 rootfs 12G",
    "pct set 200 --cores 2 --memory 1024 --features nesting=1",
    "pct start 200",
    "pct destroy 200 --purge 1",
    "pvesh get /nodes/pve/lxc/200/interfaces",
    "pvesh get /cluster/nextid --output-format json",
    "pvesh get /cluster/resources --type vm",
    "pvesh get /nodes/pve/qemu/100/agent/network-get-interfaces",
    "pvesh get /nodes/pve/qemu/100/agent/file-read --file /etc/ssh/ssh_host_ed25519_key.pub",
    f"pvesh get /nodes/pve/tasks/{UPID}/status",
    f"pvesh get /nodes/pve/tasks/{urllib.parse.quote(UPID, safe='')}/status",
    f"pvesh get /nodes/pve/tasks/{UPID}/log --start 0 --limit 50",
    "pvesh create /nodes/pve/storage/local/download-url --content import"
    " --filename debian-12.qcow2 --url https://x/y.qcow2 --checksum abc"
    " --checksum-algorithm sha256",
    "pvesh set /nodes/pve/qemu/100/resize --disk scsi0 --size 10G",
    "pvesh create /nodes/pve/qemu/9000/template",
    "pvesh create /nodes/pve/qemu/9000/clone --newid 101 --name web1 --full 0",
    "pvesh create /nodes/pve/qemu/9000/clone --newid 102 --full 1 --storage local-lvm",
    "qm template 9000",
    "qm clone 9000 101 --name web1 --full 0",
    "pvesh delete /nodes/pve/qemu/100 --purge 1 --destroy-unreferenced-disks 1",
    "pvesh delete /nodes/pve/qemu/100 --purge --skiplock",
    "pveum user token add root@pam pveplan --privsep 0 --output-format json",
    "pvesh create /nodes/pve/qemu --vmid 100 --cicustom user=local:snippets/x.yaml",
    "pvesh create /nodes/pve/qemu/100/agent/ping",
    "pvesh create /nodes/pve/qemu/100/status/start -timeout 30 --noproxy --quiet",
    "pvesh set /nodes/pve/qemu/100/config --delete net1 --delete scsi2 --onboot yes",
    "pvesh set /nodes/pve/qemu/100/config --net1 e1000=BC:24:11:00:00:01,bridge=vmbr1",
    "pvesh set /nodes/pve/qemu/100/config --boot order=scsi0;ide2;net0 --cpu host",
    "pvesh set /nodes/pve/qemu/100/config --ipconfig0 ip=10.0.0.5/24,gw=10.0.0.1",
    "pvesh create /nodes/pve/qemu --vmid=100 --description=a=b,c",
    "qm set 100 --net1 virtio=BC:24:11:00:20:51,bridge=vmbr0,firewall=1,mtu=1400,tag=20"
    " --ipconfig1 ip=10.20.0.51/24,gw=10.20.0.1 --nameserver '10.0.0.53 10.0.0.54'"
    " --searchdomain lab.example --delete net2,ipconfig2",
    "pvesh create /nodes/pve/qemu/100/config --virtio1 local-lvm:20 --sata0 local-lvm:5",
    "qm resize 100 virtio1 30G",
    "/usr/bin/pvesh get /version",
    "qm create 100 --name web1 --memory 2048 --scsi0 local-lvm:0,import-from=/tmp/x.img"
    " --sshkeys /root/key.pub --boot order=scsi0 --tags a,b",
    "qm set 100 --sshkeys /root/key.pub --agent enabled=1,fstrim_cloned_disks=1",
    "qm start 100",
    "qm stop 100 --timeout 10",
    "qm shutdown 100 --forceStop 1",
    "qm reboot 100",
    "qm reset 100",
    "qm destroy 100 --purge 1 --destroy-unreferenced-disks 1",
    "qm config 100",
    "qm status 100 --verbose",
    "qm list",
    "qm list --full 1",
    "qm guest cmd 100 network-get-interfaces",
    "qm agent 100 ping",
    "qm resize 100 scsi0 +10G",
    "pveum user token add root@pam pveplan --privsep 0 --expire 0 --comment 'made by pveplan'",
    "pveum user token list root@pam --output-format json",
    "pveum user token remove root@pam pveplan",
]

BAD = [
    ("pvesh get /no/such/path", "no API path"),
    ("pvesh set /cluster/nextid", "no PUT method"),
    ("pvesh get /nodes/pve/qemu/100/agent/ping", "no GET method"),
    ("pvesh get /nodes/pve/qemu/100/agent/file-read", "file: missing required parameter"),
    ("pvesh get /cluster/resources --kind vm", "kind: unknown parameter"),
    ("pvesh create /nodes/pve/qemu --vmid 99", "vmid: value must have a minimum value of 100"),
    ("pvesh create /nodes/pve/qemu --vmid abc", "type check ('integer') failed"),
    ("pvesh create /nodes/pve/qemu --vmid 100 --name web_1", "name: invalid format"),
    ("pvesh create /nodes/pve/qemu --vmid 100 --name -web", "valid DNS name"),
    ("pvesh delete /nodes/pve/qemu/100 --purge maybe", "purge: type check ('boolean')"),
    ("pvesh create /nodes/pve/qemu --vmid 100 --sshkeys ssh-ed25519+AAAA", "urlencoded"),
    ("pvesh create /nodes/pve/qemu --vmid 100 --sshkeys 'ssh-ed25519 AAAA'", "urlencoded"),
    ("pvesh create /nodes/pve/qemu --vmid 100 --scsihw foo", "scsihw: value 'foo'"),
    ("pvesh create /nodes/pve/qemu --name web1", "vmid: missing required parameter"),
    ("pvesh create /nodes/pve/qemu/9000/clone --name web1", "newid: missing required parameter"),
    ("pvesh create /nodes/pve/qemu/9000/clone --newid 101 --full maybe", "full: type check"),
    ("pvesh create /nodes/pve/qemu --vmid 100 --node pve", "node: comes from the path"),
    ("pvesh create /nodes/pve_1/qemu --vmid 100", "node (in path)"),
    ("pvesh get /nodes/pve/qemu/12/config", "vmid (in path)"),
    ("pvesh create /nodes/pve/qemu --vmid 100 --scsi31 local-lvm:1", "index out of range"),
    ("pvesh create /nodes/pve/qemu --vmid 100 --net0 virtio,bridg=vmbr0", "invalid key"),
    ("pvesh create /nodes/pve/qemu --vmid 100 --net0 bridge=vmbr0", "model: property is missing"),
    ("pvesh create /nodes/pve/qemu --vmid 100 --net0 virtio,firewall=maybe", "firewall"),
    ("pvesh create /nodes/pve/qemu --vmid 100 --scsi0 local-lvm:0,discard=yes", "discard"),
    ("pvesh create /nodes/pve/qemu --vmid 100 --scsi0 noColon", "unable to parse volume ID"),
    ("pvesh create /nodes/pve/qemu --vmid 100 --memory 8", "minimum value of 16"),
    ("pvesh create /nodes/pve/qemu --vmid 100 --ipconfig0 ip=10.0.0.5", "ipv4 network"),
    ("pvesh create /nodes/pve/qemu --vmid 100 --ipconfig0 ipv4=dhcp", "invalid key"),
    ("qm set 100 --net1 virtio,bridge=vmbr0,tag=5000", "maximum value of 4094"),
    ("qm set 100 --net1 virtio,bridge=vmbr0,mtu=70000", "maximum value of 65520"),
    ("qm set 100 --virtio16 local-lvm:20", "index out of range"),
    ("pvesh create /nodes/pve/qemu --vmid 100 --cicustom users=local:x", "invalid key"),
    ("pvesh create /nodes/pve/qemu --vmid 100 --boot orde=scsi0", "invalid key"),
    ("pvesh create /nodes/pve/qemu --vmid 100 --tags 'a!b'", "invalid characters in tag"),
    ("pvesh create /nodes/pve/qemu --vmid 100 --serial0 tcp", "regex pattern"),
    ("pvesh create /nodes/pve/qemu --vmid 100 --description " + "x" * 8193, "8192 characters"),
    ("pvesh create /nodes/pve/qemu --vmid 100 --cores 2 --cores 3", "given 2 times"),
    ("pvesh create /nodes/pve/qemu --vmid 100 --cores", "requires a value"),
    ("pvesh create /nodes/pve/qemu --vmid 100 --output-format xml", "output-format"),
    ("pvesh create /nodes/pve/qemu --vmid 100 extra", "unexpected argument"),
    ("pvesh set /nodes/pve/qemu/100/resize --disk scsi0 --size 10X", "regex pattern"),
    (
        "pvesh create /nodes/pve/storage/local/download-url --content import"
        " --filename d.qcow2 --url https://x/y.qcow2 --checksum abc",
        "'checksum' requires this property",
    ),
    ("pvesh ls /nodes", "unsupported verb"),
    ("pvesh get --type vm", "path must follow"),
    ("qm frobnicate 100", "unknown or unsupported subcommand"),
    ("qm guest exec 100 ls", "unknown or unsupported subcommand"),
    ("qm create", "missing argument <vmid>"),
    ("qm create 100 --vmid 100", "positional argument"),
    ("qm start 99", "vmid (in path)"),
    ("qm start 100 101", "unexpected argument '101'"),
    ("qm destroy --purge 100", "purge: type check ('boolean')"),
    ("qm status 100 --verbos", "verbos: unknown parameter"),
    ("qm guest cmd 100 reboot-now", "command: value 'reboot-now'"),
    ("qm resize 100 scsi99 +1G", "disk: value 'scsi99'"),
    ("qm set 100 --sshkeys /k --scsihw foo", "scsihw"),
    ("pveum user token add root@pam 'bad!id'", "tokenid (in path)"),
    ("pveum user token add rootpam tok", "userid (in path)"),
    ("pveum user token add root@pam tok --privsep 2", "privsep: type check"),
    ("pveum user token delete root@pam tok", "unknown or unsupported subcommand"),
    ("vzdump 100", "unsupported tool"),
    ("pct exec 100 cat /etc/hostname", "must follow `--`"),
    ("pct exec 99 -- true", "not a valid VM ID"),
    ("pct pull 100 /etc/hostname", "not enough arguments"),
    ("pct set 100 --unprivilegd 1", "unprivilegd: unknown parameter"),
    ("pct resize 100 rootfs 10X", "regex pattern"),
    ("pct create 100 local:vztmpl/d.tar.zst --net0 bridge=vmbr0", "name: property is missing"),
    ("pvesh create /nodes/pve/lxc --vmid 100", "ostemplate: missing required parameter"),
    ("pvesh create /nodes/pve/lxc --vmid 100 --ostemplate t --features nestin=1", "invalid key"),
]


@pytest.mark.parametrize("command", GOOD)
def test_known_good_calls_conform(command: str) -> None:
    assert check_call(shlex.split(command)) == []


@pytest.mark.parametrize(("command", "expected"), BAD)
def test_known_bad_calls_are_rejected(command: str, expected: str) -> None:
    problems = check_call(shlex.split(command))
    assert problems, command
    assert any(expected in problem for problem in problems), problems


def test_empty_argv_is_a_problem() -> None:
    assert check_call([]) == ["empty argv"]


def test_schema_indexes_every_path_and_method() -> None:
    schema = load_schema()
    assert len(schema.endpoints) == 435
    assert sum(len(e.methods) for e in schema.endpoints.values()) == 649
    assert load_schema() is schema
    assert load_schema(DEFAULT_SCHEMA_PATH) is schema
    assert set(schema.endpoints["/nodes/{node}/qemu/{vmid}"].methods) >= {"GET", "DELETE"}


def test_upid_path_parameter_takes_the_whole_segment() -> None:
    resolved = load_schema().resolve(f"/nodes/pve/tasks/{UPID}/status")
    assert resolved is not None
    endpoint, values = resolved
    assert endpoint.template == "/nodes/{node}/tasks/{upid}/status"
    assert values == {"node": "pve", "upid": UPID}


def test_literal_segments_win_over_parameters() -> None:
    resolved = load_schema().resolve("/nodes/pve/qemu/100/agent/ping")
    assert resolved is not None
    assert resolved[0].template == "/nodes/{node}/qemu/{vmid}/agent/ping"


@pytest.mark.parametrize(
    ("command", "method", "path"),
    [
        ("qm create 100", "POST", "/nodes/localhost/qemu"),
        ("qm set 100", "PUT", "/nodes/localhost/qemu/{vmid}/config"),
        ("qm destroy 100", "DELETE", "/nodes/localhost/qemu/{vmid}"),
        ("qm status 100", "GET", "/nodes/localhost/qemu/{vmid}/status/current"),
        ("qm guest cmd 100 ping", "POST", "/nodes/localhost/qemu/{vmid}/agent"),
        ("pveum user token list root@pam", "GET", "/access/users/{userid}/token"),
        ("pvesh delete /x", "DELETE", "/x"),
    ],
)
def test_cli_maps_onto_the_api_method_its_handler_calls(
    command: str, method: str, path: str
) -> None:
    call = to_api_call(shlex.split(command))
    assert isinstance(call, ApiCall)
    assert (call.method, call.path) == (method, path)


def test_qm_sshkeys_is_a_file_path_but_pvesh_sshkeys_must_be_encoded() -> None:
    assert check_call(["qm", "create", "100", "--sshkeys", "/root/.ssh/id ed25519.pub"]) == []
    pvesh = ["pvesh", "create", "/nodes/pve/qemu", "--vmid", "100", "--sshkeys"]
    assert check_call([*pvesh, "/root/.ssh/id ed25519.pub"]) != []


@pytest.mark.parametrize("value", ["1", "0", "on", "off", "yes", "no", "true", "FALSE", ""])
def test_cli_booleans_accept_what_parse_boolean_accepts(value: str) -> None:
    argv = ["pvesh", "delete", "/nodes/pve/qemu/100", f"--purge={value}"]
    assert check_call(argv) == []


def test_check_value_follows_pve_order_and_reports_one_problem() -> None:
    vmid = {"type": "integer", "format": "pve-vmid", "minimum": 100, "maximum": 999999999}
    assert check_value(vmid, "100") == []
    assert check_value(vmid, "99") == ["value must have a minimum value of 100"]
    assert check_value(vmid, "0100") == ["invalid format - value does not look like a valid VM ID"]
    assert check_value({"type": "string", "enum": None}, "anything") == []
    assert check_value({"type": "string", "format": "no-such-format"}, "anything") == []


# ---------------------------------------------------------------- property-based

_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_TAG = st.from_regex(r"[a-z0-9_][a-z0-9_\-+.]{0,10}", fullmatch=True)
_SSH_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=40)
_CREATE_PARAMS: dict[str, st.SearchStrategy[str]] = {
    "name": st.lists(_LABEL, min_size=1, max_size=3).map(".".join),
    "memory": st.integers(16, 1 << 20).map(str),
    "cores": st.integers(1, 128).map(str),
    "sockets": st.integers(1, 4).map(str),
    "scsihw": st.sampled_from(["lsi", "virtio-scsi-pci", "virtio-scsi-single", "pvscsi"]),
    "scsi0": st.sampled_from(["local-lvm:32", "local-lvm:0,import-from=local:import/a.qcow2"]),
    "net0": st.builds(
        "{},bridge=vmbr{}{}".format,
        st.sampled_from(["virtio", "e1000", "vmxnet3"]),
        st.integers(0, 9),
        st.sampled_from(["", ",firewall=1", ",tag=5", ",link_down=off"]),
    ),
    "ipconfig0": st.sampled_from(["ip=dhcp", "ip=10.0.0.5/24,gw=10.0.0.1", "ip6=auto"]),
    "sshkeys": _SSH_TEXT.map(lambda s: urllib.parse.quote(s, safe="-_.!~*'()")),
    "tags": st.lists(_TAG, max_size=4).map(";".join),
    "agent": st.sampled_from(["0", "1", "enabled=1,fstrim_cloned_disks=1"]),
    "onboot": st.sampled_from(["0", "1", "yes", "off"]),
    "serial0": st.just("socket"),
    "description": st.text(max_size=200),
}


@st.composite
def _create_argv(draw: st.DrawFn) -> list[str]:
    names = draw(st.lists(st.sampled_from(sorted(_CREATE_PARAMS)), unique=True))
    vmid = draw(st.integers(100, 999_999_999))
    argv = ["pvesh", "create", "/nodes/pve/qemu", "--vmid", str(vmid)]
    for name in names:
        argv += [f"--{name}", draw(_CREATE_PARAMS[name])]
    return argv


def _is_known(name: str) -> bool:
    spec = load_schema().endpoints["/nodes/{node}/qemu"].methods["POST"]
    return spec.lookup(name)[0] is not None or name in ("output-format", "noproxy", "quiet")


_UNKNOWN_NAME = st.from_regex(r"[a-z][a-z0-9-]{1,15}", fullmatch=True).filter(
    lambda name: (
        not _is_known(name) and name not in ("node", "noheader", "noborder", "human-readable")
    )
)


@given(argv=_create_argv(), data=st.data())
def test_valid_create_calls_pass_and_renamed_params_fail(
    argv: list[str], data: st.DataObject
) -> None:
    assert check_call(argv) == []
    flags = [i for i, token in enumerate(argv) if token.startswith("--")]
    index = data.draw(st.sampled_from(flags))
    unknown = data.draw(_UNKNOWN_NAME)
    renamed = [*argv[:index], f"--{unknown}", *argv[index + 1 :]]
    problems = check_call(renamed)
    assert any(f"{unknown}: unknown parameter" in problem for problem in problems), problems
