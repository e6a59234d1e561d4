"""cloud-init's `write_files` and `runcmd` in a simulated VM, and the Debian tools that a VM
converging itself (pull mode) runs: sudo with sudoers drop-ins, apt-get remove/purge,
systemctl on unit files a user wrote, getent, usermod, timedatectl.

Everything runs as real processes: `qm start` through the host's launcher, the runcmd
runner it spawns, the guest tools through the VM's launchers. Waits are bounded polls.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from pveplan.sim import start_daemon, stop_daemon
from tests.executor import group_alive, wait_until
from tests.sim import Sim

BOOT_FINISHED = "var/lib/cloud/instance/boot-finished"
ENV_CODE = (
    "import json, os, sys\n"
    "path = os.environ['PVEPLAN_SYSROOT'] + '/var/tmp/env.json'\n"
    "os.makedirs(os.path.dirname(path), exist_ok=True)\n"
    "with open(path, 'w') as out:\n"
    "    json.dump({'env': dict(os.environ), 'cwd': os.getcwd(), 'exe': sys.executable,\n"
    "               'flags': [sys.flags.isolated, sys.flags.no_site]}, out)\n"
)


def _ok(result: Any) -> str:
    assert result.returncode == 0, result.stderr
    return str(result.stdout)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _boot(sim: Sim, vmid: int, user_data: str | dict[str, Any], *, name: str = "edge") -> float:
    """Write VM `vmid`'s user snippet, create the VM if needed, `qm start` it; the seconds
    `qm start` took."""
    text = user_data if isinstance(user_data, str) else yaml.safe_dump(user_data)
    snippets = sim.root.host_dir(sim.node) / "var/lib/vz/snippets"
    (snippets / f"user-{vmid}.yaml").write_text("#cloud-config\n" + text)
    if f"{sim.node}/{vmid}" not in sim.state()["vms"]:
        _ok(sim.run(
            "qm", "create", vmid, "--name", name, "--net0", "virtio,bridge=vmbr0",
            "--ide2", f"{sim.vm_storage}:cloudinit", "--cicustom", f"user=local:snippets/user-{vmid}.yaml",
        ))  # fmt: skip
    started = time.monotonic()
    _ok(sim.run("qm", "start", vmid))
    return time.monotonic() - started


def _record(sim: Sim, vmid: int) -> dict[str, Any]:
    path = sim.root.vm_dir(sim.node, vmid) / "var/lib/sim/runcmd.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _finished(sim: Sim, vmid: int, timeout: float = 10.0) -> dict[str, Any]:
    wait_until(lambda: bool(_record(sim, vmid).get("finished")), timeout=timeout, what="runcmd")
    return _record(sim, vmid)


def _process(pgid: int, argv: list[str]) -> int | None:
    """The live process of group `pgid` running exactly `argv`, if any."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")[:-1]
        except (OSError, IndexError):
            continue
        if fields[0] not in "ZX" and int(fields[2]) == pgid and cmdline == [*map(str.encode, argv)]:
            return int(entry.name)
    return None


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


# --- write_files ---------------------------------------------------------------------------


def test_write_files_land_in_the_tree_with_their_modes(tmp_path: Path) -> None:
    sim = Sim(tmp_path / "sim")
    vm = sim.root.vm_dir("sim", 300)
    outside = tmp_path / "outside"
    outside.mkdir()
    (vm / "etc").mkdir(parents=True)
    (vm / "etc/outside").symlink_to(outside)  # a symlink out of the tree, there before boot
    token = base64.b64encode(b"secret\x00\xff").decode()
    script = base64.b64encode(gzip.compress(b"#!/bin/sh\necho hello\n")).decode()
    user_data = f"""\
users:
  - name: homestak
write_files:
  - path: /etc/pveplan/site.yaml
    content: "name: edge\\n"
    permissions: '0600'
    owner: root:root
  - path: /root/.pveplan/token
    encoding: b64
    content: {token}
    permissions: '0400'
  - path: etc/motd
    content: "line1\\n"
  - path: /etc/motd
    content: "line2\\n"
    append: true
  - path: /usr/local/bin/hello
    encoding: gz+b64
    content: {script}
    permissions: 0755
  - path: /home/homestak/notes.txt
    content: deferred
    defer: true
    owner: homestak:homestak
  - path: /etc/../../escape
    content: x
  - path: /etc/outside/evil
    content: x
  - path: /etc/plain
    content: default mode
"""
    _boot(sim, 300, user_data)
    assert (vm / "etc/pveplan/site.yaml").read_text() == "name: edge\n"
    assert _mode(vm / "etc/pveplan/site.yaml") == 0o600
    assert _mode(vm / "etc/pveplan") == 0o755
    assert (vm / "root/.pveplan/token").read_bytes() == b"secret\x00\xff"
    assert _mode(vm / "root/.pveplan/token") == 0o400
    assert (vm / "etc/motd").read_text() == "line1\nline2\n"
    assert (vm / "usr/local/bin/hello").read_text() == "#!/bin/sh\necho hello\n"
    assert _mode(vm / "usr/local/bin/hello") == 0o755  # YAML's 0755 is octal
    assert (vm / "home/homestak/notes.txt").read_text() == "deferred"
    assert _mode(vm / "etc/plain") == 0o644
    assert list(outside.iterdir()) == [] and not (tmp_path / "escape").exists()
    log = (vm / "var/log/cloud-init.log").read_text()
    assert "Failed to write /etc/../../escape: '/etc/../../escape' leaves the VM's tree" in log
    assert "Failed to write /etc/outside/evil: '/etc/outside/evil' leaves the VM's tree" in log
    files = json.loads((vm / "var/lib/sim/files.json").read_text())
    assert files["/home/homestak/notes.txt"] == {
        "owner": "homestak:homestak",
        "permissions": "0644",
    }
    assert files["/etc/pveplan/site.yaml"] == {"owner": "root:root", "permissions": "0600"}

    (vm / "etc/plain").write_text("changed")
    _ok(sim.run("qm", "stop", 300))
    _boot(sim, 300, user_data)  # the same instance: write_files ran once
    assert (vm / "etc/plain").read_text() == "changed"
    assert (vm / "etc/motd").read_text() == "line1\nline2\n"


# --- runcmd --------------------------------------------------------------------------------


def test_runcmd_runs_once_per_instance_in_order_with_the_vm_environment(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    vm = sim.root.vm_dir("sim", 301)
    order = 'echo {} >> "$PVEPLAN_SYSROOT/order"'
    cloud: dict[str, Any] = {
        "runcmd": [
            ["python3", "-I", "-S", "-c", ENV_CODE],
            order.format("one"),
            ["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"],
            ["no-such-command"],
            order.format("two"),
        ]
    }
    _boot(sim, 301, cloud)
    record = _finished(sim, 301)
    assert (record["done"], record["stopped"], record["exits"]) == (True, None, [0, 0, 3, 127, 0])
    assert (vm / "order").read_text() == "one\ntwo\n"
    assert (vm / BOOT_FINISHED).read_text().endswith(" - v. 22.4.2\n")
    seen = json.loads((vm / "var/tmp/env.json").read_text())
    env = seen["env"]
    assert (env["PVEPLAN_SYSROOT"], env["HOME"], env["USER"], env["LOGNAME"]) == (
        str(vm),
        str(vm / "root"),
        "root",
        "root",
    )
    assert env["PATH"].split(":")[0] == str(vm / "bin")
    assert (env["PVEPLAN_SIM_ROOT"], env["PVEPLAN_SIM_NODE"], env["PVEPLAN_SIM_VMID"]) == (
        str(sim.root.path),
        "sim",
        "301",
    )
    assert (seen["cwd"], seen["exe"], seen["flags"]) == (str(vm), str(vm / "bin/python3"), [1, 1])
    output = (vm / "var/log/cloud-init-output.log").read_text()
    assert "to-stdout\nto-stderr\nsh: 1: no-such-command: not found\n" in output
    assert output.splitlines()[-1].startswith("Cloud-init v. 22.4.2 finished at ")
    assert _ok(sim.guest(301, "cloud-init", "status", "--wait")) == "\nstatus: done\n"

    _ok(sim.run("qm", "stop", 301))
    (vm / BOOT_FINISHED).unlink()
    _boot(sim, 301, cloud)  # the same user-data: runcmd is per instance, it does not run again
    assert _record(sim, 301) == record
    assert (vm / "order").read_text() == "one\ntwo\n"
    assert (vm / BOOT_FINISHED).exists()  # but the final stage of this boot did finish

    _ok(sim.run("qm", "stop", 301))
    _boot(sim, 301, {"runcmd": [order.format("three")]})  # new user-data: a new instance
    assert _finished(sim, 301)["exits"] == [0]
    assert (vm / "order").read_text() == "one\ntwo\nthree\n"


def test_qm_start_returns_and_qm_stop_kills_a_long_runcmd(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    vm = sim.root.vm_dir("sim", 302)
    cloud = {
        "runcmd": [
            'echo started > "$PVEPLAN_SYSROOT/started"',
            ["sleep", "300"],
            'echo never > "$PVEPLAN_SYSROOT/never"',
        ]
    }
    assert _boot(sim, 302, cloud) < 10  # the runcmd runs after the boot, in the background
    wait_until(lambda: (vm / "started").exists(), timeout=10, what="the first entry")
    runner = _record(sim, 302)["pid"]
    wait_until(lambda: _process(runner, ["sleep", "300"]) is not None, what="sleep 300")
    sleeper = _process(runner, ["sleep", "300"])
    assert sleeper is not None and group_alive(runner)
    started = time.monotonic()
    _ok(sim.run("qm", "stop", 302))
    assert time.monotonic() - started < 5
    assert not group_alive(runner) and not _alive(sleeper)
    record = _record(sim, 302)
    assert (record["done"], record["stopped"], record["exits"]) == (False, "stop", [0])
    assert not (vm / "never").exists() and not (vm / BOOT_FINISHED).exists()

    _boot(sim, 302, cloud)  # cut short, yet not run again: cloud-init's semaphore is taken
    assert _record(sim, 302)["pid"] == runner and not (vm / "never").exists()
    assert _ok(sim.guest(302, "cloud-init", "status")) == "status: done\n"
    _ok(sim.run("qm", "shutdown", 302))


def test_the_runner_stops_at_its_time_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PVEPLAN_SIM_RUNCMD_LIMIT", "1")
    sim = Sim(tmp_path)
    _boot(sim, 303, {"runcmd": [["sleep", "300"]]})
    record = _record(sim, 303)
    assert record["limit"] == 1.0
    record = _finished(sim, 303, timeout=5)
    assert (record["stopped"], record["done"], record["exits"]) == ("time limit", False, [])
    wait_until(lambda: not group_alive(record["pid"]), what="the runner's group to go")
    assert sim.vm(303)["status"] == "running"  # the VM runs on; only its runcmd was cut
    assert (
        "runcmd stopped: time limit"
        in (sim.root.vm_dir("sim", 303) / "var/log/cloud-init-output.log").read_text()
    )
    _ok(sim.run("qm", "stop", 303))


def test_the_runner_stops_with_the_daemon(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    try:
        info = start_daemon(sim.root)
        _boot(sim, 304, {"runcmd": [["sleep", "300"]]})
        runner = _record(sim, 304)["pid"]
        assert _record(sim, 304)["daemon"] == info["pid"]
        wait_until(lambda: _process(runner, ["sleep", "300"]) is not None, what="sleep 300")
    finally:
        stop_daemon(sim.root)
    record = _finished(sim, 304, timeout=5)
    assert record["stopped"] == "daemon stopped"
    wait_until(lambda: not group_alive(runner), what="the runner's group to go")
    _ok(sim.run("qm", "stop", 304))


def test_a_guest_runcmd_stops_with_its_host(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    _ok(sim.create_vm(100, "--name", "pve1"))
    _ok(sim.run("qm", "start", 100))
    _ok(sim.guest(100, "apt-get", "install", "-y", "proxmox-ve"))
    pve1 = sim.at("pve1")
    network = "/nodes/pve1/network"
    _ok(pve1.run("pvesh", "create", network, "--iface", "vmbr0", "--type", "bridge",
                 "--bridge_ports", "eth0", "--autostart", "1"))  # fmt: skip
    _ok(pve1.run("pvesh", "set", network))
    _boot(pve1, 300, {"runcmd": [["sleep", "300"]]}, name="leaf")
    runner = _record(pve1, 300)["pid"]
    wait_until(lambda: _process(runner, ["sleep", "300"]) is not None, what="sleep 300")
    _ok(sim.run("qm", "stop", 100))  # the host goes down: its guests with it
    record = _finished(pve1, 300, timeout=5)
    assert record["stopped"] == "host stopped"
    wait_until(lambda: not group_alive(runner), what="the guest's runner to go")
    assert pve1.vm(300)["status"] == "running"  # suspended with its host, as for SSH
    _ok(sim.run("qm", "destroy", 100))
    assert not sim.root.vm_dir("pve1", 300).exists()


# --- sudo and sudoers ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Sim:
    """VM 310: cloud-init users homestak (NOPASSWD sudo), alice, bob, carol (group ops),
    dave and erin; no runcmd."""
    sim = Sim(tmp_path_factory.mktemp("cloudinit"))
    users: list[Any] = [
        {"name": "homestak", "sudo": "ALL=(ALL) NOPASSWD:ALL", "groups": ["sudo"]},
        *({"name": name} for name in ("alice", "bob", "dave", "erin")),
        {"name": "carol", "groups": "ops"},
    ]
    _boot(sim, 310, {"hostname": "edge", "users": users})
    return sim


def _drop_in(sim: Sim, name: str, text: str) -> Path:
    path = sim.root.vm_dir("sim", 310) / "etc/sudoers.d" / name
    path.write_text(text)
    path.chmod(0o440)
    return path


def _sudo(sim: Sim, user: str, *command: str) -> Any:
    return sim.guest(310, "sudo", "-n", *command, user=user)


def _refused(result: Any) -> bool:
    return (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        "sudo: a password is required\n",
    )


def test_cloud_init_writes_its_sudoers_drop_in(edge: Sim) -> None:
    vm = edge.root.vm_dir("sim", 310)
    drop_in = vm / "etc/sudoers.d/90-cloud-init-users"
    text = drop_in.read_text()
    assert text.startswith("# Created by cloud-init v. 22.4.2 on ")
    assert text.endswith("\n# User rules for homestak\nhomestak ALL=(ALL) NOPASSWD:ALL\n")
    assert _mode(drop_in) == 0o440 and _mode(vm / "etc/sudoers") == 0o440
    assert "%sudo\tALL=(ALL:ALL) ALL\n" in (vm / "etc/sudoers").read_text()  # Debian's own
    assert _ok(_sudo(edge, "homestak", "id", "-u")) == "0\n"


def test_sudoers_drop_ins_are_honoured(edge: Sim) -> None:
    assert _refused(_sudo(edge, "alice", "id", "-u"))
    _drop_in(edge, "alice", "# pveplan\n\nalice ALL=(ALL:ALL) NOPASSWD: ALL  # all of it\n")
    assert _ok(_sudo(edge, "alice", "id", "-u")) == "0\n"
    assert _ok(_sudo(edge, "alice", "-u", "bob", "id", "-un")) == "bob\n"  # (ALL:ALL)
    _drop_in(edge, "bob", "bob ALL=(ALL) ALL\n")  # no NOPASSWD: sudo would ask
    assert _refused(_sudo(edge, "bob", "id"))
    for ignored in ("bob.disabled", "bob~"):  # what sudo's @includedir skips
        _drop_in(edge, ignored, "bob ALL=(ALL) NOPASSWD:ALL\n")
    assert _refused(_sudo(edge, "bob", "id"))
    _drop_in(edge, "erin", "erin ALL=(root) NOPASSWD: /usr/bin/id\n")
    assert _ok(_sudo(edge, "erin", "id", "-u")) == "0\n"
    assert _refused(_sudo(edge, "erin", "apt-get", "update"))


def test_group_rules_follow_the_groups(edge: Sim) -> None:
    _drop_in(edge, "ops", "%ops ALL=(ALL) NOPASSWD:ALL\n")
    assert _ok(_sudo(edge, "carol", "id", "-u")) == "0\n"
    assert _refused(_sudo(edge, "dave", "id", "-u"))
    denied = edge.guest(310, "usermod", "-aG", "ops", "dave", user="dave")
    assert (denied.returncode, denied.stderr.splitlines()[0]) == (1, "usermod: Permission denied.")
    _ok(edge.guest(310, "sudo", "usermod", "-aG", "ops", "dave", user="homestak"))
    assert _ok(_sudo(edge, "dave", "id", "-u")) == "0\n"
    assert _ok(edge.guest(310, "id", "-Gn", "dave")) == "dave ops\n"
    missing = edge.guest(310, "usermod", "-aG", "wheel", "dave")
    assert (missing.returncode, missing.stderr) == (6, "usermod: group 'wheel' does not exist\n")
    nobody = edge.guest(310, "usermod", "-aG", "ops", "zed")
    assert (nobody.returncode, nobody.stderr) == (6, "usermod: user 'zed' does not exist\n")


def test_a_broken_sudoers_file_stops_sudo(edge: Sim) -> None:
    broken = _drop_in(edge, "broken", "\nhomestak ALL\n")
    try:
        result = _sudo(edge, "homestak", "id")
        assert result.returncode == 1
        assert result.stderr.splitlines()[:3] == [
            ">>> /etc/sudoers.d/broken: syntax error near line 2 <<<",
            "sudo: parse error in /etc/sudoers.d/broken near line 2",
            "sudo: no valid sudoers sources found, quitting",
        ]
    finally:
        broken.unlink()
    assert _ok(_sudo(edge, "homestak", "id", "-u")) == "0\n"


# --- Debian tools ----------------------------------------------------------------------------


def test_apt_get_remove_and_purge(edge: Sim) -> None:
    _ok(edge.guest(310, "apt-get", "install", "-y", "nginx"))
    assert _ok(edge.guest(310, "systemctl", "is-enabled", "nginx")) == "enabled\n"
    removed = _ok(edge.guest(310, "apt-get", "remove", "-y", "nginx"))
    assert "The following packages will be REMOVED:\n  nginx\n" in removed
    status = edge.guest(310, "dpkg-query", "-W", "-f=${Status}", "nginx")
    assert _ok(status) == "deinstall ok config-files"
    enabled = edge.guest(310, "systemctl", "is-enabled", "nginx")
    assert (enabled.returncode, enabled.stdout, enabled.stderr) == (
        1,
        "",
        "Failed to get unit file state for nginx.service: No such file or directory\n",
    )
    active = edge.guest(310, "systemctl", "is-active", "nginx")
    assert (active.returncode, active.stdout) == (3, "inactive\n")
    purged = _ok(edge.guest(310, "apt-get", "purge", "-y", "nginx"))
    assert "  nginx*\n" in purged and "Purging configuration files for nginx" in purged
    gone = edge.guest(310, "dpkg-query", "-W", "nginx")
    assert (gone.returncode, gone.stderr) == (1, "dpkg-query: no packages found matching nginx\n")
    denied = edge.guest(310, "apt-get", "remove", "-y", "sudo", user="bob")
    assert denied.returncode == 100


def test_systemctl_on_unit_files_a_user_wrote(edge: Sim) -> None:
    units = edge.root.vm_dir("sim", 310) / "etc/systemd/system"
    (units / "pveplan-converge.service").write_text(
        "[Unit]\nDescription=pveplan converge\n\n[Service]\nType=oneshot\nExecStart=/bin/true\n"
    )
    (units / "pveplan-converge.timer").write_text(
        "[Timer]\nOnBootSec=1min\nOnUnitActiveSec=15min\n\n[Install]\nWantedBy=timers.target\n"
    )
    _ok(edge.guest(310, "systemctl", "daemon-reload"))
    timer = "pveplan-converge.timer"
    disabled = edge.guest(310, "systemctl", "is-enabled", timer)
    assert (disabled.returncode, disabled.stdout) == (1, "disabled\n")
    enabled = edge.guest(310, "sudo", "systemctl", "enable", "--now", timer, user="homestak")
    assert enabled.stderr == (
        f"Created symlink /etc/systemd/system/timers.target.wants/{timer} → "
        f"/etc/systemd/system/{timer}.\n"
    )
    assert _ok(edge.guest(310, "systemctl", "is-enabled", timer)) == "enabled\n"
    assert _ok(edge.guest(310, "systemctl", "is-active", timer)) == "active\n"
    static = edge.guest(310, "systemctl", "is-enabled", "pveplan-converge")
    assert (static.returncode, static.stdout) == (0, "static\n")  # no [Install] section
    off = edge.guest(310, "systemctl", "disable", "--now", timer)
    assert off.stderr == f'Removed "/etc/systemd/system/timers.target.wants/{timer}".\n'
    assert edge.guest(310, "systemctl", "is-active", timer).returncode == 3
    _ok(edge.guest(310, "systemctl", "stop", "pveplan-converge.service"))
    (units / timer).unlink()
    _ok(edge.guest(310, "systemctl", "daemon-reload"))
    unknown = edge.guest(310, "systemctl", "is-enabled", timer)
    assert (unknown.returncode, unknown.stderr) == (
        1,
        f"Failed to get unit file state for {timer}: No such file or directory\n",
    )
    denied = edge.guest(310, "systemctl", "daemon-reload", user="bob")
    assert (denied.returncode, denied.stderr) == (1, "Failed to reload daemon: Access denied\n")


def test_systemctl_reload_ssh(edge: Sim) -> None:
    _ok(edge.guest(310, "systemctl", "reload", "ssh"))
    _ok(edge.guest(310, "systemctl", "reload", "sshd"))  # Debian's alias
    _ok(edge.guest(310, "systemctl", "stop", "ssh"))
    inactive = edge.guest(310, "systemctl", "reload", "ssh")
    assert (inactive.returncode, inactive.stderr) == (1, "Job for ssh.service invalid.\n")
    _ok(edge.guest(310, "systemctl", "start", "ssh"))
    assert _ok(edge.guest(310, "systemctl", "is-active", "ssh")) == "active\n"


def test_id_getent_and_timedatectl(edge: Sim) -> None:
    users = json.loads((edge.root.vm_dir("sim", 310) / "var/lib/sim/users.json").read_text())
    uid = users["users"]["alice"]["uid"]
    assert _ok(edge.guest(310, "id", "-u", "alice")) == f"{uid}\n"
    assert _ok(edge.guest(310, "id", "-g", "alice")) == f"{uid}\n"
    passwd = _ok(edge.guest(310, "getent", "passwd", "alice"))
    assert passwd == f"alice:x:{uid}:{uid}::/home/alice:/bin/bash\n"
    assert _ok(edge.guest(310, "getent", "passwd", "root")) == "root:x:0:0:root:/root:/bin/bash\n"
    missing = edge.guest(310, "getent", "passwd", "zed")
    assert (missing.returncode, missing.stdout, missing.stderr) == (2, "", "")
    assert _ok(edge.guest(310, "getent", "group", "sudo")) == "sudo:x:27:homestak\n"
    show = ("timedatectl", "show", "-p", "Timezone", "--value")
    assert _ok(edge.guest(310, *show)) == "Etc/UTC\n"
    _ok(edge.guest(310, "timedatectl", "set-timezone", "Europe/Berlin"))
    assert _ok(edge.guest(310, *show)) == "Europe/Berlin\n"
    etc = edge.root.vm_dir("sim", 310) / "etc"
    assert os.readlink(etc / "localtime") == "/usr/share/zoneinfo/Europe/Berlin"
    assert (etc / "timezone").read_text() == "Europe/Berlin\n"
