"""The simulated `pvesh`, `qm` and `pveum` answer like PVE 9.1 (pve-api.md).

Every command runs as a real process through the launchers `init_root` writes, so exit
codes, stdout/stderr separation and the state file's locking are all exercised.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from pveplan.sim import SimRoot, locked_state, read_state
from pveplan.sim._setup import add_host_node, init_root
from tests.sim import IMAGE_SHA256, PUBLIC_KEY, Sim, encoded_key

UPID_RE = re.compile(r"^UPID:sim:[0-9A-F]{8}:[0-9A-F]{8,9}:[0-9A-F]{8}:(\w+):([^:]*):root@pam:$")
CONF_MISSING = "Configuration file 'nodes/sim/qemu-server/{}.conf' does not exist\n"


@pytest.fixture(scope="module")
def booted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Sim, Any]:
    """VM 100 imported from the sim's debian-12 image, with cloud-init, started."""
    sim = Sim(tmp_path_factory.mktemp("booted"))
    sim.download_debian()
    created = sim.run(
        "pvesh",
        "create",
        "/nodes/sim/qemu",
        *("--vmid", "100", "--name", "web1", "--memory", "2048", "--cores", "2"),
        *("--scsihw", "virtio-scsi-single", "--net0", "virtio,bridge=vmbr0"),
        *("--scsi0", "local-lvm:0,import-from=local:import/debian-12.qcow2,iothread=1,discard=on"),
        *("--ide2", "local-lvm:cloudinit", "--ciuser", "homestak", "--sshkeys", encoded_key()),
        *("--agent", "1", "--tags", "Web,db;web", "--output-format", "json"),
    )
    started = sim.run("qm", "start", "100")
    assert (created.returncode, started.returncode) == (0, 0), created.stderr + started.stderr
    return sim, created


# --- setup ------------------------------------------------------------------------------


def test_init_root_is_idempotent_and_writes_executable_launchers(tmp_path: Path) -> None:
    root = SimRoot(tmp_path)
    init_root(root, ["sim", "pve2"])
    first = read_state(root)
    init_root(root, ["sim"])
    assert read_state(root) == first
    assert set(first["nodes"]) == {"sim", "pve2"}
    assert first["nodes"]["sim"]["address"] != first["nodes"]["pve2"]["address"]
    assert first["storage"]["sim"] == {"local": {}, "local-lvm": {}}
    for sub in (
        "root/.ssh",
        "etc/ssh",
        "var/lib/vz/import",
        "var/lib/vz/template/iso",
        "var/lib/vz/template/cache",
        "var/lib/vz/dump",
    ):
        assert (root.host_dir("sim") / sub).is_dir()
    # PVE 9's installer leaves `local` without snippets: no directory for them
    assert not (root.host_dir("sim") / "var/lib/vz/snippets").exists()
    launcher = root.host_dir("sim") / "bin" / "pvesh"
    assert stat.S_IMODE(launcher.stat().st_mode) == 0o755
    text = launcher.read_text()
    assert text.startswith(f"#!{sys.executable}\n")
    assert repr(str(root.path)) in text and "'sim'" in text


def test_nested_host_node_is_its_vm(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    assert sim.create_vm(200).returncode == 0
    with locked_state(sim.root) as state:
        address = add_host_node(sim.root, state, "pve-nested", 200, parent="sim")
    assert address == sim.vm(200)["address"]
    state = sim.state()
    assert state["nodes"]["pve-nested"] == {"address": address, "vmid": 200, "parent": "sim"}
    assert state["nodes"]["sim"]["parent"] is None
    assert state["storage"]["pve-nested"] == {"local": {}}
    link = sim.root.host_dir("pve-nested")
    assert os.readlink(link) == "../vms/sim/200"  # relative: the root may move
    assert link.resolve() == sim.root.vm_dir("sim", 200).resolve()
    assert (sim.root.vm_dir("sim", 200) / "bin" / "qm").is_file()
    assert (sim.root.vm_dir("sim", 200) / "var/lib/vz/snippets").is_dir()
    taken = pytest.raises(ValueError, match="already has a node named 'pve-nested'")
    with taken, locked_state(sim.root) as state:
        add_host_node(sim.root, state, "pve-nested", 200, parent="sim")
    unknown = pytest.raises(ValueError, match="no single VM 201 on node 'sim'")
    with unknown, locked_state(sim.root) as state:
        add_host_node(sim.root, state, "other", 201, parent="sim")
    assert set(sim.state()["nodes"]) == {"sim", "pve-nested"}


# --- conventions ---------------------------------------------------------------------------


def test_version_nextid_and_output_formats(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    assert sim.pvesh("get", "/version") == {
        "release": "9.1",
        "repoid": "5a2f2f5d2b3c1e07",
        "version": "9.1.9",
    }
    raw = sim.run("pvesh", "get", "/cluster/nextid", "--output-format", "json")
    assert raw.stdout == '"100"\n'  # a JSON string, as real PVE returns it
    assert sim.run("pvesh", "get", "/cluster/nextid").stdout == "100\n"
    pretty = sim.run("pvesh", "get", "/version", "--output-format", "json-pretty").stdout
    assert pretty.startswith('{\n   "release": "9.1",')


def test_unknown_path_and_foreign_node(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    unknown = sim.run("pvesh", "get", "/x")
    assert (unknown.returncode, unknown.stderr) == (1, "No 'get' handler defined for '/x'\n")
    foreign = sim.run("pvesh", "get", "/nodes/pve9/qemu", "--output-format", "json")
    assert foreign.returncode == 255
    assert foreign.stderr.startswith("hostname lookup 'pve9' failed - ")
    assert sim.pvesh("get", "/nodes/localhost/qemu") == []


def test_calls_are_recorded_and_latency_is_slept(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    sim.configure(latency=0.4)
    began = time.monotonic()
    sim.run("pvesh", "get", "/x")
    assert time.monotonic() - began >= 0.4
    records = [json.loads(line) for line in sim.root.calls.read_text().splitlines()]
    assert [{k: r[k] for k in ("tool", "argv", "node", "exit")} for r in records] == [
        {"tool": "pvesh", "argv": ["get", "/x"], "node": "sim", "exit": 1}
    ]


# --- create ------------------------------------------------------------------------------

PARAM_ERRORS = [
    (["--vmid", "99"], "vmid: value must have a minimum value of 100\n"),
    (["--vmid", "abc"], "vmid: type check ('integer') failed - got 'abc'\n"),
    (
        ["--vmid", "300", "--name", "bad_name"],
        "name: invalid format - value does not look like a valid DNS name\n\n",
    ),
    (
        ["--vmid", "300", "--tags", "ok;bad!tag"],
        "tags: invalid format - invalid characters in tag\n\n",
    ),
    (
        ["--vmid", "300", "--memory", "8"],
        "memory: invalid format - format error\n\nmemory.current: value must have a minimum value of 16\n",
    ),
    (
        ["--vmid", "300", "--sshkeys", "ssh-ed25519 AAAA"],
        "sshkeys: invalid format - invalid urlencoded string: ssh-ed25519 AAAA\n\n",
    ),
    (
        ["--vmid", "300", "--scsi0", "local-lvm:8,import-from=local:import/debian-12.qcow2"],
        "scsi0: 'import-from' requires special syntax - use <storage ID>:0,import-from=<source>\n",
    ),
    (
        ["--vmid", "300", "--scsi0", "local-lvm:0,import-from=local:iso/debian.iso"],
        "scsi0: local:iso/debian.iso has wrong type 'iso' - needs to be 'images' or 'import'\n",
    ),
    (
        ["--vmid", "300", "--frobnicate", "1"],
        "frobnicate: property is not defined in schema and the schema does not allow additional properties\n",
    ),
    (
        ["--vmid", "300", "--scsi31", "local-lvm:1"],
        "scsi31: property is not defined in schema and the schema does not allow additional properties\n",
    ),
]


@pytest.mark.parametrize(
    ("args", "error"), PARAM_ERRORS, ids=[e.split(":")[0] for _, e in PARAM_ERRORS]
)
def test_create_parameter_errors(booted: tuple[Sim, Any], args: list[str], error: str) -> None:
    sim, _ = booted
    result = sim.run("pvesh", "create", "/nodes/sim/qemu", *args)
    assert result.returncode == 255
    assert result.stderr == "400 Parameter verification failed.\n" + error
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--vmid", "100"], "unable to create VM 100 - VM 100 already exists on node 'sim'\n"),
        (
            ["--vmid", "300", "--sshkeys", quote("ssh-ed25519 bm90LWEta2V5", safe="")],
            "SSH public key validation error\n",
        ),
        (["--vmid", "300", "--scsi0", "nas:4"], "storage 'nas' does not exist\n"),
    ],
)
def test_create_synchronous_failures(booted: tuple[Sim, Any], args: list[str], error: str) -> None:
    sim, _ = booted
    result = sim.run("pvesh", "create", "/nodes/sim/qemu", *args)
    assert (result.returncode, result.stderr) == (255, error)


def test_create_prints_the_task_log_then_the_upid(booted: tuple[Sim, Any]) -> None:
    sim, created = booted
    *log, last = created.stdout.splitlines()
    assert log == [
        "ide2: successfully created disk 'local-lvm:vm-100-cloudinit,media=cdrom'",
        "importing disk 'local:import/debian-12.qcow2' to VM 100 ...",
        '  Logical volume "vm-100-disk-0" created.',
        "transferred 0.0 B of 2.0 GiB (0.00%)",
        "transferred 2.0 GiB of 2.0 GiB (100.00%)",
        "scsi0: successfully created disk 'local-lvm:vm-100-disk-0,discard=on,iothread=1,size=2G'",
    ]
    upid = json.loads(last)
    assert UPID_RE.match(upid).groups() == ("qmcreate", "100")
    status = sim.task(upid)
    assert {k: status[k] for k in ("status", "exitstatus", "type", "id", "user", "node")} == {
        "status": "stopped",
        "exitstatus": "OK",
        "type": "qmcreate",
        "id": "100",
        "user": "root@pam",
        "node": "sim",
    }
    assert int(upid.split(":")[2], 16) == status["pid"]
    task_log = sim.pvesh("get", f"/nodes/sim/tasks/{upid}/log")
    assert task_log[0] == {"n": 1, "t": log[0]} and task_log[-1] == {"n": 7, "t": "TASK OK"}


def test_created_config_shape(booted: tuple[Sim, Any]) -> None:
    sim, _ = booted
    config = sim.pvesh("get", "/nodes/sim/qemu/100/config")
    assert "vmid" not in config
    assert re.fullmatch(r"[0-9a-f]{40}", config.pop("digest"))
    assert re.fullmatch(r"virtio=BC:24:11(:[0-9A-F]{2}){3},bridge=vmbr0", config.pop("net0"))
    assert re.fullmatch(r"creation-qemu=10\.1\.2,ctime=\d+", config.pop("meta"))
    assert re.fullmatch(r"uuid=[0-9a-f-]{36}", config.pop("smbios1"))
    assert re.fullmatch(r"[0-9a-f-]{36}", config.pop("vmgenid"))
    assert config == {
        "agent": "1",
        "boot": "order=scsi0;ide2;net0",
        "ciuser": "homestak",
        "cores": 2,
        "ide2": "local-lvm:vm-100-cloudinit,media=cdrom",
        "memory": "2048",
        "name": "web1",
        "scsi0": "local-lvm:vm-100-disk-0,discard=on,iothread=1,size=2G",
        "scsihw": "virtio-scsi-single",
        "sshkeys": encoded_key(),
        "tags": "db;web",
    }
    volumes = sim.state()["storage"]["sim"]["local-lvm"]
    assert volumes["local-lvm:vm-100-disk-0"]["size"] == 2 * 1024**3
    qm_lines = sim.run("qm", "config", "100").stdout.splitlines()
    assert qm_lines == sorted(qm_lines) and "cores: 2" in qm_lines and "tags: db;web" in qm_lines
    assert not any(line.startswith("digest:") for line in qm_lines)


def test_qm_create_reads_sshkeys_from_a_file(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    key_file = sim.root.host_dir("sim") / "root" / "key.pub"
    key_file.write_text(PUBLIC_KEY + "\n")
    result = sim.run("qm", "create", "101", "--sshkeys", "/root/key.pub", "--memory", "512")
    assert (result.returncode, result.stderr) == (0, "")
    assert sim.vm(101)["config"]["sshkeys"] == quote(PUBLIC_KEY + "\n", safe="")
    usage = sim.run("qm", "create", "102", "--memory", "4")
    assert usage.returncode == 255
    assert usage.stderr.endswith(
        "memory.current: value must have a minimum value of 16\nqm create <vmid> [OPTIONS]\n"
    )


# --- reading VMs ---------------------------------------------------------------------------


def test_status_current_list_and_resources(booted: tuple[Sim, Any]) -> None:
    sim, _ = booted
    status = sim.pvesh("get", "/nodes/sim/qemu/100/status/current")
    assert {
        k: status[k]
        for k in ("vmid", "name", "status", "qmpstatus", "agent", "cpus", "maxmem", "tags")
    } == {
        "vmid": 100,
        "name": "web1",
        "status": "running",
        "qmpstatus": "running",
        "agent": 1,
        "cpus": 2,
        "maxmem": 2048 * 1024**2,
        "tags": "db;web",
    }
    assert status["ha"] == {"managed": 0} and status["maxdisk"] == 2 * 1024**3 and status["pid"] > 0
    assert sim.run("qm", "status", "100").stdout == "status: running\n"
    listing = sim.run("qm", "list").stdout.splitlines()
    assert (
        listing[0]
        == "      VMID NAME                 STATUS     MEM(MB)    BOOTDISK(GB) PID       "
    )
    assert listing[1].startswith(
        "       100 web1                 running    2048               2.00 "
    )
    (resource,) = sim.pvesh("get", "/cluster/resources", "--type", "vm")
    assert {
        k: resource[k]
        for k in ("id", "type", "vmid", "node", "name", "status", "template", "maxcpu", "tags")
    } == {
        "id": "qemu/100",
        "type": "qemu",
        "vmid": 100,
        "node": "sim",
        "name": "web1",
        "status": "running",
        "template": 0,
        "maxcpu": 2,
        "tags": "db;web",
    }
    (vm,) = sim.pvesh("get", "/nodes/sim/qemu")
    assert (vm["vmid"], vm["status"], vm["name"]) == (100, "running", "web1")
    taken = sim.run("pvesh", "get", "/cluster/nextid", "--vmid", "100")
    assert (taken.returncode, taken.stderr) == (
        255,
        "400 Parameter verification failed.\nvmid: VM 100 already exists\n",
    )
    assert sim.pvesh("get", "/cluster/nextid") == "101"


def test_agent_network_interfaces(booted: tuple[Sim, Any]) -> None:
    sim, _ = booted
    result = sim.pvesh("get", "/nodes/sim/qemu/100/agent/network-get-interfaces")["result"]
    lo, ens18 = result
    assert lo["name"] == "lo" and [a["ip-address"] for a in lo["ip-addresses"]] == [
        "127.0.0.1",
        "::1",
    ]
    mac = sim.vm(100)["config"]["net0"].split(",")[0].split("=")[1].lower()
    assert ens18["name"] == "ens18" and ens18["hardware-address"] == mac
    ipv4, ipv6 = ens18["ip-addresses"]
    assert ipv4 == {"ip-address": sim.vm(100)["address"], "ip-address-type": "ipv4", "prefix": 8}
    assert ipv6["ip-address"].startswith("fe80::") and ipv6["prefix"] == 64
    assert set(ens18["statistics"]) >= {"rx-bytes", "tx-bytes", "rx-packets", "tx-packets"}
    qm_output = sim.run("qm", "guest", "cmd", "100", "network-get-interfaces").stdout
    assert json.loads(qm_output)[1]["ip-addresses"][0] == ipv4
    assert qm_output.startswith('[\n   {\n      "hardware-address": "00:00:00:00:00:00",')
    ping = sim.run("qm", "agent", "100", "ping")
    assert (ping.returncode, ping.stdout) == (0, "")
    assert sim.pvesh("create", "/nodes/sim/qemu/100/agent/ping") == {"result": {}}


def test_storage_content_lists_downloads_and_disks(booted: tuple[Sim, Any]) -> None:
    sim, _ = booted
    (image,) = sim.pvesh("get", "/nodes/sim/storage/local/content", "--content", "import")
    assert {k: image[k] for k in ("volid", "content", "format", "size")} == {
        "volid": "local:import/debian-12.qcow2",
        "content": "import",
        "format": "qcow2",
        "size": len(b"pveplan-sim-image debian-12\n"),
    }
    disks = sim.pvesh("get", "/nodes/sim/storage/local-lvm/content", "--vmid", "100")
    assert [d["volid"] for d in disks] == ["local-lvm:vm-100-cloudinit", "local-lvm:vm-100-disk-0"]
    missing = sim.run("pvesh", "get", "/nodes/sim/storage/nas/content")
    assert (missing.returncode, missing.stderr) == (255, "storage 'nas' does not exist\n")


# --- power, tasks ----------------------------------------------------------------------------


def test_starting_a_running_vm_fails_in_the_task(booted: tuple[Sim, Any]) -> None:
    sim, _ = booted
    result = sim.run(
        "pvesh", "create", "/nodes/sim/qemu/100/status/start", "--output-format", "json"
    )
    assert (result.returncode, result.stderr) == (0, "VM 100 already running\n")
    status = sim.task(json.loads(result.stdout.splitlines()[-1]))
    assert (status["status"], status["exitstatus"], status["type"]) == (
        "stopped",
        "VM 100 already running",
        "qmstart",
    )
    task_log = sim.pvesh("get", f"/nodes/sim/tasks/{status['upid']}/log")
    assert task_log[-1]["t"] == "TASK ERROR: VM 100 already running"
    qm = sim.run("qm", "start", "100")
    assert (qm.returncode, qm.stderr) == (255, "VM 100 already running\n")


def test_missing_vm_behaviours(tmp_path: Path) -> None:
    """pve-api.md §6: start/stop fail in the task, reboot/status/destroy synchronously."""
    sim = Sim(tmp_path)
    start = sim.pvesh("create", "/nodes/sim/qemu/999/status/start")
    assert sim.task(start)["exitstatus"] == CONF_MISSING.format(999).rstrip("\n")
    stop = sim.pvesh("create", "/nodes/sim/qemu/999/status/stop")
    assert (
        sim.task(stop)["exitstatus"] == "unable to find configuration file for VM 999 on node 'sim'"
    )
    for argv, error in [
        (
            ("create", "/nodes/sim/qemu/999/status/reboot"),
            "unable to find configuration file for VM 999 on node 'sim'\n",
        ),
        (("get", "/nodes/sim/qemu/999/status/current"), CONF_MISSING.format(999)),
        (("delete", "/nodes/sim/qemu/999"), CONF_MISSING.format(999)),
        (("get", "/nodes/sim/qemu/999/agent/network-get-interfaces"), CONF_MISSING.format(999)),
    ]:
        result = sim.run("pvesh", *argv)
        assert (result.returncode, result.stderr) == (255, error)


def test_task_lookup_errors(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    bad = sim.run("pvesh", "get", "/nodes/sim/tasks/UPID:nonsense/status")
    assert (bad.returncode, bad.stderr) == (
        255,
        "400 Parameter verification failed.\nupid: unable to parse worker upid\n",
    )
    unknown = sim.run(
        "pvesh",
        "get",
        "/nodes/sim/tasks/UPID:sim:0000AAAA:0000BBBB:6B000000:qmstart:100:root@pam:/status",
    )
    assert (unknown.returncode, unknown.stderr) == (255, "no such task\n")


def test_power_cycle_resize_and_destroy(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    assert sim.create_vm(150, "--protection", "0").returncode == 0
    assert sim.run("qm", "start", "150").returncode == 0
    running = sim.run("pvesh", "delete", "/nodes/sim/qemu/150")
    assert (running.returncode, running.stderr) == (255, "VM 150 is running - destroy failed\n")
    assert sim.run("qm", "reboot", "150").returncode == 0
    assert sim.run("qm", "shutdown", "150").returncode == 0
    assert sim.vm(150)["status"] == "stopped"
    stopped_reboot = sim.run("qm", "reboot", "150")
    assert (stopped_reboot.returncode, stopped_reboot.stderr) == (255, "VM 150 not running\n")
    assert sim.task(sim.pvesh("create", "/nodes/sim/qemu/150/status/stop"))["exitstatus"] == "OK"
    grown = sim.pvesh("set", "/nodes/sim/qemu/150/resize", "--disk", "scsi0", "--size", "+6G")
    assert sim.task(grown)["exitstatus"] == "OK"
    assert sim.vm(150)["config"]["scsi0"] == "local-lvm:vm-150-disk-0,size=10G"
    shrink = sim.run(
        "pvesh", "set", "/nodes/sim/qemu/150/resize", "--disk", "scsi0", "--size", "2G"
    )
    assert (shrink.returncode, shrink.stderr) == (0, "shrinking disks is not supported\n")
    destroyed = sim.run("qm", "destroy", "150", "--purge", "--destroy-unreferenced-disks", "1")
    assert destroyed.returncode == 0, destroyed.stderr
    state = sim.state()
    assert "sim/150" not in state["vms"] and state["storage"]["sim"]["local-lvm"] == {}
    assert not sim.root.vm_dir("sim", 150).exists()


def test_config_set_delete_and_digest(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    assert sim.create_vm(160, "--tags", "a", "--onboot", "1").returncode == 0
    digest = sim.pvesh("get", "/nodes/sim/qemu/160/config")["digest"]
    changed = sim.run(
        "pvesh",
        "set",
        "/nodes/sim/qemu/160/config",
        "--tags",
        "Z y",
        "--delete",
        "onboot",
        "--digest",
        digest,
    )
    assert (changed.returncode, changed.stdout, changed.stderr) == (0, "", "")
    config = sim.vm(160)["config"]
    assert config["tags"] == "y;z" and "onboot" not in config
    stale = sim.run(
        "pvesh", "set", "/nodes/sim/qemu/160/config", "--cores", "4", "--digest", digest
    )
    assert (stale.returncode, stale.stderr) == (
        255,
        "checksum mismatch (file change by other user?)\n",
    )
    nothing = sim.run("qm", "set", "160")
    assert (nothing.returncode, nothing.stderr) == (255, "no options specified\n")
    both = sim.run("qm", "set", "160", "--cores", "2", "--delete", "cores")
    assert both.stderr.startswith(
        "400 Parameter verification failed.\ndelete: you can't use '-cores' and -delete cores' at the same time\n"
    )


# --- faults, agent ----------------------------------------------------------------------------


def test_task_faults_fail_the_worker_not_the_call(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    sim.configure(
        faults=[
            {"op": "create", "vmid": 171, "message": "create failed: simulated"},
            {"op": "start", "vmid": 170, "message": "start failed: simulated", "times": 1},
        ]
    )
    failed_create = sim.create_vm(171)
    assert (failed_create.returncode, failed_create.stderr) == (0, "create failed: simulated\n")
    assert (
        sim.task(json.loads(failed_create.stdout.splitlines()[-1]))["exitstatus"]
        == "create failed: simulated"
    )
    assert "sim/171" not in sim.state()["vms"]
    assert sim.create_vm(170).returncode == 0
    failed = sim.run(
        "pvesh", "create", "/nodes/sim/qemu/170/status/start", "--output-format", "json"
    )
    assert (failed.returncode, failed.stderr) == (0, "start failed: simulated\n")
    assert sim.task(json.loads(failed.stdout))["exitstatus"] == "start failed: simulated"
    assert sim.vm(170)["status"] == "stopped"
    assert sim.run("qm", "start", "170").returncode == 0  # `times: 1` is used up
    assert sim.vm(170)["status"] == "running"


def test_agent_errors_in_pve_order(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    sim.configure(agent_delay=60.0, faults=[{"op": "agent", "vmid": 181}])
    assert sim.create_vm(180).returncode == 0
    assert sim.run("qm", "create", "181", "--agent", "1", "--net0", "virtio").returncode == 0
    assert sim.run("qm", "create", "182").returncode == 0
    path = "/nodes/sim/qemu/{}/agent/network-get-interfaces"
    cases = [(182, "No QEMU guest agent configured\n"), (180, "VM 180 is not running\n")]
    for vmid, error in cases:
        result = sim.run("pvesh", "get", path.format(vmid))
        assert (result.returncode, result.stderr) == (255, error)
    assert sim.run("qm", "start", "180").returncode == 0
    early = sim.run("pvesh", "get", path.format(180))
    assert (early.returncode, early.stderr) == (255, "QEMU guest agent is not running\n")
    sim.configure(agent_delay=0.0, faults=[{"op": "agent", "vmid": 181}])
    assert sim.pvesh("get", path.format(180))["result"][1]["name"] == "ens18"
    assert sim.run("qm", "start", "181").returncode == 0
    faulted = sim.run("qm", "agent", "181", "ping")
    assert (faulted.returncode, faulted.stderr) == (255, "QEMU guest agent is not running\n")


# --- download, tokens -------------------------------------------------------------------------


def test_download_rules_and_checksum(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    base = "/nodes/sim/storage/local/download-url"
    wrong = sim.run(
        "pvesh", "create", base, "--content", "import", "--filename", "debian-12.qcow2",
        "--url", "sim://images/debian-12.qcow2", "--checksum", "0" * 64, "--checksum-algorithm", "sha256",
    )  # fmt: skip
    assert wrong.returncode == 0
    assert wrong.stderr == f"checksum mismatch: got '{IMAGE_SHA256}' != expect '{'0' * 64}'\n"
    assert not (sim.root.host_dir("sim") / "var/lib/vz/import/debian-12.qcow2").exists()
    for args, error in [
        (
            ("--content", "import", "--filename", "d.img", "--url", "https://x/d.img"),
            "filename: invalid filename or wrong extension",
        ),
        (
            ("--content", "import", "--filename", "d.qcow2", "--url", "ftp://x/d.qcow2"),
            "url: value does not match the regex pattern",
        ),
        (
            (
                "--content",
                "import",
                "--filename",
                "d.qcow2",
                "--url",
                "https://x",
                "--checksum",
                "ab",
            ),
            "checksum-algorithm: missing property required by 'checksum'",
        ),
    ]:
        result = sim.run("pvesh", "create", base, *args)
        assert (result.returncode, result.stderr) == (
            255,
            f"400 Parameter verification failed.\n{error}\n",
        )
    lvm = sim.run(
        "pvesh",
        "create",
        "/nodes/sim/storage/local-lvm/download-url",
        "--content",
        "import",
        "--filename",
        "d.qcow2",
        "--url",
        "https://x/d.qcow2",
    )
    assert lvm.stderr == "can't upload to storage type 'lvmthin', not a file based storage!\n"
    sim.download_debian()
    image = sim.root.host_dir("sim") / "var/lib/vz/import/debian-12.qcow2"
    assert image.read_bytes() == b"pveplan-sim-image debian-12\n"


def test_pveum_token_add(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    added = sim.run(
        "pveum",
        "user",
        "token",
        "add",
        "root@pam",
        "pveplan",
        "--privsep",
        "0",
        "--output-format",
        "json",
    )
    token = json.loads(added.stdout)
    assert set(token) == {"full-tokenid", "info", "value"}
    assert (token["full-tokenid"], token["info"]) == ("root@pam!pveplan", {"privsep": "0"})
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", token["value"]
    )
    assert sim.state()["tokens"]["sim"]["root@pam!pveplan"] == {
        "privsep": 0,
        "value": token["value"],
    }
    again = sim.run("pveum", "user", "token", "add", "root@pam", "pveplan")
    assert (again.returncode, again.stderr) == (
        255,
        "400 Parameter verification failed.\ntokenid: Token already exists.\n",
    )
    text = sim.run(
        "pvesh", "create", "/access/users/root@pam/token/sample", "--privsep", "0"
    ).stdout
    value = re.search(r"│ value        │ (\S+) │", text)[1]
    assert text == CAPTURED_TOKEN_TABLE.replace("ed1c77c5-3738-43d0-bd07-ffc7b25977fd", value)


# pve-api fixtures/captured/cli_pveum_token_add_output_text.txt (real PVE output).
CAPTURED_TOKEN_TABLE = """\
┌──────────────┬──────────────────────────────────────┐
│ key          │ value                                │
╞══════════════╪══════════════════════════════════════╡
│ full-tokenid │ root@pam!sample                      │
├──────────────┼──────────────────────────────────────┤
│ info         │ {"privsep":"0"}                      │
├──────────────┼──────────────────────────────────────┤
│ value        │ ed1c77c5-3738-43d0-bd07-ffc7b25977fd │
└──────────────┴──────────────────────────────────────┘
"""


def test_python_module_entry_point(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "pveplan.sim._pvecli", "pvesh", str(sim.root.path), "sim", "get", "/cluster/nextid"],
        capture_output=True, text=True, check=False, env={**os.environ},
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, "100\n")
