"""Inside a simulated VM: cloud-init at first boot, and the Debian tools pveplan runs.

The VMs are created and started with the simulated `qm`, then the guest tools run as
separate processes with `$USER` set the way the simulator's SSH daemon sets it.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pveplan.sim import SimRoot
from pveplan.sim._cloudinit import apply_cloud_init
from tests.sim import PUBLIC_KEY, Sim, encoded_key

OTHER_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDWnMzPXwnJ8nXvJ8OTKUu4Ag1Yh7zL1S9s0wD0Sm6bM bob@test"
)


def _host_key() -> tuple[str, str]:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, public.decode() + " root@edge"


def _snippet(private: str, public: str, extra_user: str = "") -> str:
    indented = "".join(f"    {line}\n" for line in private.strip().splitlines())
    return (
        "#cloud-config\n"
        "hostname: edge\n"
        "users:\n"
        "  - name: homestak\n"
        "    sudo: ALL=(ALL) NOPASSWD:ALL\n"
        "    groups: [adm, sudo]\n"
        f"    ssh_authorized_keys: [{json.dumps(PUBLIC_KEY)}]\n"
        "  - name: bob\n"
        f"    ssh_authorized_keys: [{json.dumps(OTHER_KEY)}]\n"
        f"{extra_user}"
        "ssh_keys:\n"
        "  ed25519_private: |\n"
        f"{indented}"
        f"  ed25519_public: {public}\n"
    )


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> tuple[Sim, dict[str, str]]:
    """VM 300 booted with a `cicustom` user snippet (two users, a pinned host key)."""
    sim = Sim(tmp_path_factory.mktemp("guest"))
    private, public = _host_key()
    snippets = sim.root.host_dir("sim") / "var/lib/vz/snippets"
    (snippets / "edge.yaml").write_text(_snippet(private, public))
    created = sim.run(
        "qm", "create", "300", "--name", "edge", "--net0", "virtio,bridge=vmbr0", "--agent", "1",
        "--ide2", "local-lvm:cloudinit", "--cicustom", "user=local:snippets/edge.yaml",
    )  # fmt: skip
    started = sim.run("qm", "start", "300")
    assert (created.returncode, started.returncode) == (0, 0), created.stderr + started.stderr
    assert started.stdout == "generating cloud-init ISO\n"
    return sim, {"private": private, "public": public}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _ok(result: Any) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


# --- cloud-init ---------------------------------------------------------------------------


def test_cicustom_snippet_is_applied_at_first_boot(edge: tuple[Sim, dict[str, str]]) -> None:
    sim, key = edge
    vm = sim.root.vm_dir("sim", 300)
    keys = vm / "home/homestak/.ssh/authorized_keys"
    assert keys.read_text() == PUBLIC_KEY + "\n"
    assert (_mode(keys), _mode(keys.parent)) == (0o600, 0o700)
    assert (vm / "home/bob/.ssh/authorized_keys").read_text() == OTHER_KEY + "\n"
    host_key = vm / "etc/ssh/ssh_host_ed25519_key"
    assert host_key.read_text() == key["private"].strip() + "\n" and _mode(host_key) == 0o600
    assert (vm / "etc/ssh/ssh_host_ed25519_key.pub").read_text() == key["public"] + "\n"
    assert (vm / "etc/hostname").read_text() == "edge\n"
    users = json.loads((vm / "var/lib/sim/users.json").read_text())["users"]
    assert users["homestak"]["sudo"] == ["ALL=(ALL) NOPASSWD:ALL"] and users["bob"]["sudo"] == []
    assert users["homestak"]["uid"] == 1000 and "sudo" in users["homestak"]["groups"]
    for tool in (
        "sudo",
        "apt-get",
        "dpkg-query",
        "systemctl",
        "timedatectl",
        "useradd",
        "id",
        "hostnamectl",
    ):
        assert _mode(vm / "bin" / tool) == 0o755


@pytest.mark.parametrize(
    ("setting", "root_keys"),
    [("disable_root: false\n", PUBLIC_KEY + "\n"), ("disable_root: true\n", None), ("", None)],
    ids=["false", "true", "absent"],
)
def test_disable_root_false_lets_the_default_keys_in_as_root(
    tmp_path: Path, setting: str, root_keys: str | None
) -> None:
    user_data = f"#cloud-config\n{setting}ssh_authorized_keys: [{json.dumps(PUBLIC_KEY)}]\n"
    root = SimRoot(tmp_path)
    apply_cloud_init(root, "sim", 310, user_data, hostname="pve1")
    vm = root.vm_dir("sim", 310)
    assert (vm / "home/debian/.ssh/authorized_keys").read_text() == PUBLIC_KEY + "\n"
    keys = vm / "root/.ssh/authorized_keys"
    assert (keys.read_text() if keys.exists() else None) == root_keys
    if root_keys is not None:
        assert (_mode(keys), _mode(keys.parent)) == (0o600, 0o700)


def test_python3_is_the_base_interpreter(edge: tuple[Sim, dict[str, str]]) -> None:
    sim, _ = edge
    python = sim.root.vm_dir("sim", 300) / "bin" / "python3"
    code = "import sys; print(sys.prefix); print(sys.version)"
    for flags in (["-I", "-S"], []):
        result = subprocess.run(
            [str(python), *flags, "-c", code], capture_output=True, text=True, check=True
        )
        assert result.stdout == f"{sys.base_prefix}\n{sys.version}\n"  # never the venv's


def test_ciuser_and_sshkeys_without_snippet_get_a_generated_host_key(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    created = sim.run(
        "qm", "create", "301", "--name", "ops1", "--ide2", "local-lvm:cloudinit",
        "--ciuser", "ops", "--sshkeys", "/root/keys.pub",
    )  # fmt: skip
    assert created.returncode == 255 and "unable to open file '/root/keys.pub'" in created.stderr
    (sim.root.host_dir("sim") / "root/keys.pub").write_text(PUBLIC_KEY + "\n")
    create_args = (
        "--name",
        "ops1",
        "--ide2",
        "local-lvm:cloudinit",
        "--ciuser",
        "ops",
        "--sshkeys",
        "/root/keys.pub",
    )
    _ok(sim.run("qm", "create", "301", *create_args))
    _ok(sim.run("qm", "create", "302", "--name", "bare"))  # no cloud-init drive
    _ok(sim.run("qm", "start", "301"))
    _ok(sim.run("qm", "start", "302"))
    vm = sim.root.vm_dir("sim", 301)
    assert (vm / "home/ops/.ssh/authorized_keys").read_text() == PUBLIC_KEY + "\n"
    assert (
        (vm / "etc/ssh/ssh_host_ed25519_key")
        .read_text()
        .startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    )
    assert (vm / "etc/ssh/ssh_host_ed25519_key.pub").read_text().startswith("ssh-ed25519 AAAA")
    assert (vm / "etc/hostname").read_text() == "ops1\n"
    assert _ok(sim.guest(301, "sudo", "-n", "id", "-un", user="ops")) == "root\n"
    bare = sim.root.vm_dir("sim", 302)
    assert (
        list((bare / "home").iterdir()) == [] and (bare / "etc/ssh/ssh_host_ed25519_key").is_file()
    )
    assert sim.vm(302)["status"] == "running"


def test_missing_snippet_fails_the_start_task(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    _ok(
        sim.run(
            "qm",
            "create",
            "303",
            "--ide2",
            "local-lvm:cloudinit",
            "--cicustom",
            "user=local:snippets/gone.yaml",
        )
    )
    result = sim.run("qm", "start", "303")
    assert result.returncode == 255
    assert (
        result.stderr
        == "unable to open file '/var/lib/vz/snippets/gone.yaml' - No such file or directory\n"
    )
    assert sim.vm(303)["status"] == "stopped"


def test_new_user_data_is_applied_on_the_next_start(edge: tuple[Sim, dict[str, str]]) -> None:
    sim, key = edge
    carol = f"  - name: carol\n    ssh_authorized_keys: [{json.dumps(PUBLIC_KEY)}]\n"
    (sim.root.host_dir("sim") / "var/lib/vz/snippets/edge.yaml").write_text(
        _snippet(key["private"], key["public"], carol)
    )
    _ok(sim.run("qm", "stop", "300"))
    _ok(sim.run("qm", "start", "300"))
    assert (
        sim.root.vm_dir("sim", 300) / "home/carol/.ssh/authorized_keys"
    ).read_text() == PUBLIC_KEY + "\n"
    assert (
        _ok(sim.guest(300, "id", "carol")) == "uid=1002(carol) gid=1002(carol) groups=1002(carol)\n"
    )


# --- sudo and root-only tools ----------------------------------------------------------------


def test_sudo_needs_a_nopasswd_rule(edge: tuple[Sim, dict[str, str]]) -> None:
    sim, _ = edge
    refused = sim.guest(300, "sudo", "-n", "id", user="bob")
    assert (refused.returncode, refused.stdout, refused.stderr) == (
        1,
        "",
        "sudo: a password is required\n",
    )
    assert _ok(sim.guest(300, "sudo", "-n", "id", "-u", user="homestak")) == "0\n"
    missing = sim.guest(300, "sudo", "-n", "frob", user="homestak")
    assert (missing.returncode, missing.stderr) == (1, "sudo: frob: command not found\n")


def test_apt_get_and_dpkg_query(edge: tuple[Sim, dict[str, str]]) -> None:
    sim, _ = edge
    denied = sim.guest(300, "apt-get", "install", "-y", "htop", user="homestak")
    assert denied.returncode == 100
    assert denied.stderr.startswith(
        "E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)\n"
    )
    installed = _ok(
        sim.guest(300, "sudo", "apt-get", "install", "-y", "htop", "nginx", user="homestak")
    )
    assert "The following NEW packages will be installed:\n  htop nginx\n" in installed
    assert _ok(sim.guest(300, "dpkg-query", "-W", "-f=${Status}", "htop")) == "install ok installed"
    again = _ok(sim.guest(300, "apt-get", "install", "-y", "htop"))
    assert (
        "0 upgraded, 0 newly installed" in again and "htop is already the newest version" in again
    )
    unknown = sim.guest(300, "dpkg-query", "-W", "-f=${Status}", "nosuchpkg")
    assert (unknown.returncode, unknown.stderr) == (
        1,
        "dpkg-query: no packages found matching nosuchpkg\n",
    )
    _ok(sim.guest(300, "apt-get", "remove", "-y", "htop"))
    assert (
        _ok(sim.guest(300, "dpkg-query", "-W", "-f=${Status}\\n", "htop"))
        == "deinstall ok config-files\n"
    )
    update = sim.guest(300, "apt-get", "update", user="bob")
    assert (update.returncode, update.stderr.splitlines()[-1]) == (
        100,
        "E: Unable to lock directory /var/lib/apt/lists/",
    )


def test_systemctl_units(edge: tuple[Sim, dict[str, str]]) -> None:
    sim, _ = edge
    _ok(sim.guest(300, "apt-get", "install", "-y", "nginx"))
    assert _ok(sim.guest(300, "systemctl", "is-active", "nginx", user="bob")) == "active\n"
    denied = sim.guest(300, "systemctl", "disable", "nginx", user="bob")
    assert (denied.returncode, denied.stderr) == (1, "Failed to disable unit: Access denied\n")
    disabled = sim.guest(300, "sudo", "systemctl", "disable", "--now", "nginx", user="homestak")
    assert (
        disabled.stderr == 'Removed "/etc/systemd/system/multi-user.target.wants/nginx.service".\n'
    )  # systemd 252 quotes the path
    enabled = sim.guest(300, "systemctl", "is-enabled", "nginx")
    active = sim.guest(300, "systemctl", "is-active", "nginx.service")
    assert (enabled.returncode, enabled.stdout, active.returncode, active.stdout) == (
        1,
        "disabled\n",
        3,
        "inactive\n",
    )
    _ok(sim.guest(300, "systemctl", "enable", "--now", "nginx"))
    assert _ok(sim.guest(300, "systemctl", "is-enabled", "nginx")) == "enabled\n"
    assert sim.guest(300, "systemctl", "is-active", "--quiet", "nginx").stdout == ""
    unknown = sim.guest(300, "systemctl", "enable", "ghost")
    assert (unknown.returncode, unknown.stderr) == (
        1,
        "Failed to enable unit: Unit file ghost.service does not exist.\n",
    )
    (sim.root.vm_dir("sim", 300) / "etc/systemd/system/ghost.service").write_text("[Service]\n")
    _ok(sim.guest(300, "systemctl", "start", "ghost"))
    assert _ok(sim.guest(300, "systemctl", "is-active", "ghost")) == "active\n"


def test_timedatectl_and_hostnamectl(edge: tuple[Sim, dict[str, str]]) -> None:
    sim, _ = edge
    assert _ok(sim.guest(300, "timedatectl", "show", "-p", "Timezone", "--value")) == "Etc/UTC\n"
    denied = sim.guest(300, "timedatectl", "set-timezone", "Europe/Berlin", user="bob")
    assert (denied.returncode, denied.stderr) == (
        1,
        "Failed to set time zone: Interactive authentication required.\n",
    )
    bad = sim.guest(300, "timedatectl", "set-timezone", "Mars/Olympus")
    assert (
        bad.stderr == "Failed to set time zone: Invalid or not installed time zone 'Mars/Olympus'\n"
    )
    _ok(sim.guest(300, "sudo", "timedatectl", "set-timezone", "Europe/Berlin", user="homestak"))
    assert (
        _ok(sim.guest(300, "timedatectl", "show", "-p", "Timezone")) == "Timezone=Europe/Berlin\n"
    )
    _ok(sim.guest(300, "hostnamectl", "set-hostname", "edge2"))
    assert (sim.root.vm_dir("sim", 300) / "etc/hostname").read_text() == "edge2\n"
    assert _ok(sim.guest(300, "hostnamectl", "hostname")) == "edge2\n"


def test_useradd_and_id(edge: tuple[Sim, dict[str, str]]) -> None:
    sim, _ = edge
    denied = sim.guest(300, "useradd", "-m", "dave", user="bob")
    assert (denied.returncode, denied.stderr.splitlines()[0]) == (1, "useradd: Permission denied.")
    _ok(
        sim.guest(
            300,
            "sudo",
            "useradd",
            "-m",
            "-s",
            "/bin/bash",
            "-G",
            "sudo,adm",
            "dave",
            user="homestak",
        )
    )
    assert (sim.root.vm_dir("sim", 300) / "home/dave").is_dir()
    users = json.loads((sim.root.vm_dir("sim", 300) / "var/lib/sim/users.json").read_text())[
        "users"
    ]
    uid = users["dave"]["uid"]
    assert uid > 1000 and users["dave"]["shell"] == "/bin/bash"
    expected = f"uid={uid}(dave) gid={uid}(dave) groups={uid}(dave),4(adm),27(sudo)\n"
    assert _ok(sim.guest(300, "id", "dave")) == expected
    exists = sim.guest(300, "useradd", "dave")
    assert (exists.returncode, exists.stderr) == (9, "useradd: user 'dave' already exists\n")
    nogroup = sim.guest(300, "useradd", "-G", "wheel", "erin")
    assert (nogroup.returncode, nogroup.stderr) == (6, "useradd: group 'wheel' does not exist\n")
    unknown = sim.guest(300, "id", "zed")
    assert (unknown.returncode, unknown.stderr) == (1, "id: 'zed': no such user\n")
    assert _ok(sim.guest(300, "id", "-un", user="bob")) == "bob\n"


def test_sshkeys_encoding_matches_the_driver() -> None:
    """The helper the tests use encodes like encodeURIComponent (what PVE accepts)."""
    assert encoded_key("ssh-ed25519 AAAA+/= a@b") == "ssh-ed25519%20AAAA%2B%2F%3D%20a%40b"
