"""`pveplan config apply` (and `spec get`) for real, inside simulated VMs.

Each VM is created and booted with the simulator's `qm`; pveplan then runs as a separate
process with the environment the simulator gives a root session on that VM (its `bin/`
first on PATH, PVEPLAN_SYSROOT = its tree), so every apt-get, useradd and systemctl is
the VM's, and every file lands in the VM's tree. What the node did is checked with the
VM's own tools and files.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from pveplan.sim import session_env
from pveplan.store import open_store
from tests.pull._support import CERT, KEY, catalog, node_token, running_server
from tests.sim import PUBLIC_KEY, Sim

REPO = Path(__file__).resolve().parents[2]
ALICE_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDWnMzPXwnJ8nXvJ8OTKUu4Ag1Yh7zL1S9s0wD0Sm6bM alice"
SPEC_HASH = "a1b2c3d4" * 8
BUNDLE = "ab" * 32
ALL_STEPS = [
    "config.timezone",
    "config.packages",
    "config.fail2ban",
    "config.user.alice",
    "config.ssh_keys.alice",
    "config.sudo.alice",
    "config.services",
    "config.sshd",
    "config.converge_timer",
]


def spec_document(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "spec": "base",
        "hostname": None,
        "domain": None,
        "users": [{"name": "alice", "sudo": True, "ssh_keys": ["ssh_keys.alice"]}],
        "packages": ["htop", "nginx"],
        "services": {"enable": ["nginx"], "disable": ["cron"]},
        "timezone": "America/Denver",
        "posture": "prod",
        "posture_settings": {
            "auth": {"method": "node_token"},
            "ssh": {"permit_root_login": "no", "password_authentication": "no"},
            "sudo": {"nopasswd": True},
            "fail2ban": {"enabled": True},
        },
        "network": None,
        "pve": None,
        "config": {},
        "run": {"trigger": "schedule", "interval": "30m"},
    }
    body.update(spec)
    return {
        "identity": "edge",
        "spec_name": "base",
        "spec_hash": SPEC_HASH,
        "spec": body,
        "secrets": {"ssh_keys.alice": ALICE_KEY},
    }


class Node:
    """A booted simulated VM, and pveplan run on it as root."""

    def __init__(self, sim: Sim, vmid: int, name: str = "edge") -> None:
        snippet = sim.root.host_dir("sim") / f"var/lib/vz/snippets/{name}-{vmid}.yaml"
        snippet.write_text(
            "#cloud-config\n"
            f"hostname: {name}\n"
            "users:\n"
            "  - name: homestak\n"
            "    sudo: ALL=(ALL) NOPASSWD:ALL\n"
            "    groups: [sudo]\n"
            f"    ssh_authorized_keys: [{json.dumps(PUBLIC_KEY)}]\n"
        )
        created = sim.run(
            "qm", "create", vmid, "--name", name, "--net0", "virtio,bridge=vmbr0",
            "--agent", "1", "--ide2", "local-lvm:cloudinit",
            "--cicustom", f"user=local:snippets/{snippet.name}",
        )  # fmt: skip
        started = sim.run("qm", "start", vmid)
        assert (created.returncode, started.returncode) == (0, 0), created.stderr + started.stderr
        self.sim, self.vmid = sim, vmid
        self.tree = sim.root.vm_dir("sim", vmid)
        self.state = self.tree / "root/.pveplan/state"
        self.env = session_env(sim.root, self.tree, "sim", vmid, "root", self.tree / "root")

    def write(self, relative: str, data: bytes, mode: int = 0o600) -> None:
        path = self.tree / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)

    def write_spec(self, document: dict[str, Any]) -> None:
        self.write("root/.pveplan/state/spec.yaml", msgspec.yaml.encode(document))

    def write_pull(self, server: str, fingerprint: str, token: str | None = None) -> None:
        pull = {
            "server": server,
            "fingerprint": fingerprint,
            "identity": "edge",
            "instance": f"vm-{self.vmid}",
            "bundle": BUNDLE,
        }
        self.write("root/.pveplan/pull/pull.json", json.dumps(pull).encode(), 0o644)
        if token is not None:
            self.write("root/.pveplan/pull/token", token.encode())

    def pveplan(self, *words: str) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "PYTHONPATH": str(REPO)}
        return subprocess.run(
            [sys.executable, "-m", "pveplan.cli", *words],
            env=env,
            cwd=self.tree / "root",
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def tool(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self.sim.guest(self.vmid, name, *args)

    def marker(self, name: str) -> dict[str, Any] | None:
        path = self.state / name
        return json.loads(path.read_text()) if path.exists() else None


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Sim:
    return Sim(tmp_path_factory.mktemp("node-sim"))


def _installed(node: Node, package: str) -> bool:
    result = node.tool("dpkg-query", "-W", "-f=${Status}", package)
    return result.returncode == 0 and result.stdout == "install ok installed"


def _apply(node: Node) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    result = node.pveplan("config", "apply", "--no-report")
    assert result.returncode == 0, result.stdout + result.stderr
    assert node.marker("failure.json") is None
    complete = node.marker("complete.json")
    assert complete is not None
    return result, complete


def test_converge_then_nothing_then_exactly_the_drift(sim: Sim) -> None:
    node = Node(sim, 300)
    node.write_pull("https://127.0.0.1:9", "00" * 32)  # the bundle the timer runs
    node.write_spec(spec_document())

    result, complete = _apply(node)
    assert result.stdout.startswith("edge: converged on spec base (a1b2c3d4): 9 changed\n")
    assert "  repaired: packages missing: htop, nginx (config.packages)\n" in result.stdout
    assert sorted(complete["changed"]) == sorted(ALL_STEPS)
    assert complete["drift"] == [] and complete["spec_hash"] == SPEC_HASH
    assert complete["instance"] == "vm-300"
    tree = node.tree
    assert all(_installed(node, p) for p in ("htop", "nginx", "fail2ban"))
    assert node.tool("id", "-nG", "alice").stdout.split() == ["alice", "sudo"]
    keys = tree / "home/alice/.ssh/authorized_keys"
    assert keys.read_text() == ALICE_KEY + "\n" and stat.S_IMODE(keys.stat().st_mode) == 0o600
    sudoers = tree / "etc/sudoers.d/pveplan-alice"
    assert sudoers.read_text().splitlines()[-1] == "alice ALL=(ALL) NOPASSWD:ALL"
    assert stat.S_IMODE(sudoers.stat().st_mode) == 0o440
    for unit, code in (("nginx", 0), ("fail2ban", 0), ("cron", 1), ("pveplan-converge.timer", 0)):
        assert node.tool("systemctl", "is-enabled", unit).returncode == code, unit
    zone = node.tool("timedatectl", "show", "-p", "Timezone", "--value").stdout
    assert zone == "America/Denver\n"
    drop_in = (tree / "etc/ssh/sshd_config.d/pveplan.conf").read_text().splitlines()
    assert drop_in[1:] == ["PermitRootLogin no", "PasswordAuthentication no"]
    service = (tree / "etc/systemd/system/pveplan-converge.service").read_text()
    assert f"/root/.pveplan/bundles/{BUNDLE}/bundle/run.py config apply" in service
    assert (
        "OnUnitActiveSec=30min" in (tree / "etc/systemd/system/pveplan-converge.timer").read_text()
    )
    spec_file = node.state / "spec.yaml"
    assert stat.S_IMODE(spec_file.stat().st_mode) == 0o600

    result, complete = _apply(node)  # nothing drifted: every step cached after its probe
    assert result.stdout == "edge: converged on spec base (a1b2c3d4): 0 changed\n"
    assert (complete["changed"], complete["drift"]) == ([], [])

    assert node.tool("apt-get", "remove", "-y", "htop").returncode == 0
    assert node.tool("systemctl", "disable", "nginx").returncode == 0
    sudoers.chmod(0o640)
    sudoers.write_text(sudoers.read_text() + "alice ALL=(ALL) ALL\n")
    sudoers.chmod(0o440)

    result, complete = _apply(node)
    drifted = ["config.packages", "config.sudo.alice", "config.services"]
    assert complete["changed"] == drifted
    assert complete["drift"] == [
        "config.packages: packages missing: htop",
        "config.sudo.alice: /etc/sudoers.d/pveplan-alice differs from the spec",
        "config.services: service nginx not enabled",
    ]
    assert "  repaired: packages missing: htop (config.packages)\n" in result.stdout
    assert (
        _installed(node, "htop") and node.tool("systemctl", "is-enabled", "nginx").returncode == 0
    )
    assert sudoers.read_text().splitlines()[-1] == "alice ALL=(ALL) NOPASSWD:ALL"

    result, complete = _apply(node)
    assert (complete["changed"], complete["drift"]) == ([], [])


def test_a_missing_package_fails_with_one_clear_message(sim: Sim) -> None:
    node = Node(sim, 301)
    node.write_spec(spec_document(run=None, posture_settings=None))
    _apply(node)
    assert node.marker("complete.json") is not None

    node.write_spec(spec_document(run=None, posture_settings=None, packages=["no_such_package"]))
    result = node.pveplan("config", "apply", "--no-report")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stdout.startswith("edge: failed to converge on spec base (a1b2c3d4)")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "config.packages" in errors[0]
    assert "Unable to locate package no_such_package" in errors[0]
    failure = node.marker("failure.json")
    assert failure is not None and failure["phase"] == "config"
    assert "no_such_package" in failure["error"]
    assert node.marker("complete.json") is None  # the stale success is gone


def test_a_node_without_a_spec_says_so(sim: Sim) -> None:
    node = Node(sim, 302)
    result = node.pveplan("config", "apply", "--no-report")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "spec.yaml does not exist: run `pveplan spec get` first" in result.stderr
    failure = node.marker("failure.json")
    assert failure is not None and failure["phase"] == "config"


def test_spec_get_then_config_apply_reports_to_the_server(sim: Sim) -> None:
    """The real spec server serves the document (node token) and records the report."""
    node = Node(sim, 303)
    document = spec_document(run=None)
    published = catalog("node_token", nodes=("edge",))
    spec = published.specs["edge"]
    served = msgspec.structs.replace(
        published,
        specs={"edge": msgspec.structs.replace(spec, document=json.dumps(document).encode())},
    )
    with running_server(served, cert=(CERT, KEY)) as server:
        node.write_pull(server.info.url, server.info.fingerprint, node_token("edge"))
        fetched = node.pveplan("spec", "get", "--timeout", "10")
        assert fetched.returncode == 0, fetched.stderr
        assert fetched.stdout == "edge: fetched spec base (a1b2c3d4)\n"
        saved = msgspec.yaml.decode((node.state / "spec.yaml").read_bytes())
        assert saved == document
        assert stat.S_IMODE((node.state / "spec.yaml").stat().st_mode) == 0o600

        applied = node.pveplan("config", "apply")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert "warning" not in applied.stderr
        assert " converged " in server.wait_for_log("report edge instance=vm-303")
        status = server.server.status("edge", "vm-303")
        assert status.phase == "reported" and status.report is not None
        report = status.report
        assert (report.status, report.spec_hash, report.instance) == (
            "converged",
            SPEC_HASH,
            "vm-303",
        )
        assert sorted(report.changed) == sorted(
            a for a in ALL_STEPS if a != "config.converge_timer"
        )

    # The server is gone: the convergence still succeeds, the report is a warning.
    applied = node.pveplan("config", "apply")
    assert applied.returncode == 0
    assert "warning: the report was not delivered" in applied.stderr
    assert node.marker("complete.json") is not None


def test_a_symlinked_authorized_keys_is_not_followed(sim: Sim) -> None:
    """Root converging a user's files must not read or write through the user's links."""
    node = Node(sim, 304)
    assert node.tool("useradd", "-m", "-s", "/bin/bash", "-G", "sudo", "alice").returncode == 0
    secret = node.tree / "etc/shadow"
    secret.write_text("root:$6$TOPSECRET:19000:0:99999:7:::\n")
    ssh = node.tree / "home/alice/.ssh"
    ssh.mkdir()
    (ssh / "authorized_keys").symlink_to(secret)
    node.write_spec(spec_document(run=None, posture_settings=None, packages=[], services={}))
    result = node.pveplan("config", "apply", "--no-report")
    assert result.returncode == 1
    assert "/home/alice/.ssh/authorized_keys is a symbolic link: refusing to follow it" in (
        result.stderr
    )
    assert secret.read_text().startswith("root:$6$TOPSECRET")
    assert (ssh / "authorized_keys").is_symlink()


def test_a_second_run_at_the_same_time_is_refused_and_marks_nothing(sim: Sim) -> None:
    node = Node(sim, 305)
    node.write_spec(spec_document(run=None, posture_settings=None))
    _apply(node)
    before = (node.state / "complete.json").read_bytes()
    with (
        open_store(node.tree / "root/.pveplan/store") as store,
        store.lock_workspace("config@edge"),
    ):
        result = node.pveplan("config", "apply", "--no-report")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "error: another convergence of this node is running" in result.stderr
    assert (node.state / "complete.json").read_bytes() == before
