"""Bare Debian machines (`sim._bare`): SSH-able hosts without PVE, which installing
`proxmox-ve` from PVE's repository turns into simulated PVE hosts (homestak's
`pve-setup` rehearsed). Run through the machines' own launchers, as over SSH."""

from __future__ import annotations

import json
from pathlib import Path

from pveplan.sim import SimRoot, init_root, read_state
from pveplan.sim._bare import add_bare_machine, bare_host_at, bare_hosts
from pveplan.sim._state import BARE_MACHINES, host_chain_running
from tests.sim import PUBLIC_KEY, Sim, _run

SOURCES = (
    "Types: deb\nURIs: http://download.proxmox.com/debian/pve\nSuites: trixie\n"
    "Components: pve-no-subscription\n"
    "Signed-By: /usr/share/keyrings/proxmox-archive-keyring.gpg\n"
)


def _machine(tmp_path: Path, name: str = "metal") -> tuple[SimRoot, Path]:
    root = SimRoot(tmp_path / "sim")
    init_root(root, ["sim"])
    add_bare_machine(root, name, PUBLIC_KEY)
    vm = next(v for v in read_state(root)["vms"].values() if v["name"] == name)
    return root, root.vm_dir(BARE_MACHINES, vm["vmid"])


def _tool(tree: Path, tool: str, *args: str):
    return _run([str(tree / "bin" / tool), *args], {"USER": "root", "LOGNAME": "root"})


def test_a_bare_machine_is_debian_with_root_login_and_no_pve(tmp_path: Path) -> None:
    root, tree = _machine(tmp_path)
    assert (tree / "bin" / "apt-get").exists() and not (tree / "bin" / "pvesh").exists()
    assert PUBLIC_KEY in (tree / "root/.ssh/authorized_keys").read_text()
    assert (tree / "etc/ssh/ssh_host_ed25519_key.pub").read_text().startswith("ssh-ed25519 ")
    state = read_state(root)
    assert "metal" not in state["nodes"]
    assert host_chain_running(state, BARE_MACHINES)  # up with no PVE host under it
    # No PVE host lists it as a guest.
    listed = Sim(tmp_path / "sim").pvesh("get", "/nodes/sim/qemu")
    assert listed == []
    status = _tool(tree, "dpkg-query", "-W", "-f=${Status}", "proxmox-ve")
    assert "install ok installed" not in status.stdout


def test_adding_the_same_machine_again_keeps_it(tmp_path: Path) -> None:
    root, tree = _machine(tmp_path)
    key = (tree / "etc/ssh/ssh_host_ed25519_key.pub").read_text()
    again = add_bare_machine(root, "metal", PUBLIC_KEY)
    assert bare_host_at(root, again) == bare_host_at(root, "metal")
    assert (tree / "etc/ssh/ssh_host_ed25519_key.pub").read_text() == key
    assert [h.name for h in bare_hosts(root)] == ["metal"]
    assert (tree / "root/.ssh/authorized_keys").read_text().count(PUBLIC_KEY) == 1


def test_proxmox_ve_is_not_found_before_pves_repository_is_added(tmp_path: Path) -> None:
    _root, tree = _machine(tmp_path)
    assert _tool(tree, "apt-get", "update").returncode == 0
    result = _tool(tree, "apt-get", "install", "-y", "proxmox-ve")
    assert result.returncode == 100
    assert "Unable to locate package proxmox-ve" in result.stderr
    # A source written but not yet read by `apt-get update` is not enough either.
    (tree / "etc/apt/sources.list.d").mkdir(parents=True, exist_ok=True)
    (tree / "etc/apt/sources.list.d/pve-install-repo.sources").write_text(SOURCES)
    _keyring(tree)
    assert _tool(tree, "apt-get", "install", "-y", "proxmox-ve").returncode == 100


def test_a_pve_source_whose_keyring_is_missing_is_not_read(tmp_path: Path) -> None:
    _root, tree = _machine(tmp_path)
    (tree / "etc/apt/sources.list.d/pve-install-repo.sources").write_text(SOURCES)
    update = _tool(tree, "apt-get", "update")
    assert update.returncode == 100 and "is not signed" in update.stderr
    assert _tool(tree, "apt-get", "install", "-y", "proxmox-ve").returncode == 100


def test_wget_fetches_the_simulated_internet_into_the_machine(tmp_path: Path) -> None:
    from pveplan.sim import download_bytes
    from pveplan.sim._storage import internet_bytes

    _root, tree = _machine(tmp_path)
    url = "https://enterprise.proxmox.com/debian/proxmox-archive-keyring-trixie.gpg"
    keyring = "/usr/share/keyrings/proxmox-archive-keyring.gpg"
    assert _tool(tree, "wget", "-q", "-O", keyring, url).returncode == 0
    assert (tree / keyring.lstrip("/")).read_bytes() == download_bytes(url)
    assert download_bytes(url) == bytes(internet_bytes(url, None))  # as download-url's
    assert _tool(tree, "wget", "-O", "/../../x", url).returncode == 1  # never outside
    assert _tool(tree, "wget", "-O", "part", url).returncode == 0  # relative: root's home
    assert (tree / "root/part").exists()


def _keyring(tree: Path) -> None:
    (tree / "usr/share/keyrings/proxmox-archive-keyring.gpg").write_bytes(b"keyring")


def test_installing_proxmox_ve_from_its_repository_makes_a_pve_host(tmp_path: Path) -> None:
    root, tree = _machine(tmp_path)
    (tree / "etc/apt/sources.list.d").mkdir(parents=True, exist_ok=True)
    (tree / "etc/apt/sources.list.d/pve-install-repo.sources").write_text(SOURCES)
    _keyring(tree)
    assert _tool(tree, "apt-get", "update").returncode == 0
    result = _tool(tree, "apt-get", "install", "-y", "proxmox-ve")
    assert result.returncode == 0, result.stderr
    state = read_state(root)
    assert state["nodes"]["metal"]["parent"] == BARE_MACHINES
    assert host_chain_running(state, "metal")
    # It now answers as a PVE host named after its hostname: PVE on Debian, so storage
    # `local` only and eth0 without a bridge until one is made.
    pvesh = _tool(tree, "pvesh", "get", "/nodes", "--output-format", "json")
    assert [n["node"] for n in json.loads(pvesh.stdout)] == ["metal"]
    metal = Sim(tmp_path / "sim").at("metal")
    storages = {s["storage"] for s in metal.pvesh("get", "/nodes/metal/storage")}
    assert storages == {"local"}
    ifaces = {n["iface"] for n in metal.pvesh("get", "/nodes/metal/network")}
    assert "vmbr0" not in ifaces and "eth0" in ifaces
    active = _tool(tree, "systemctl", "is-active", "pveproxy")
    assert active.returncode == 0


def test_chown_records_an_owner_for_users_the_machine_has(tmp_path: Path) -> None:
    _root, tree = _machine(tmp_path)
    assert _tool(tree, "useradd", "-m", "-s", "/bin/bash", "homestak").returncode == 0
    (tree / "home/homestak/.ssh").mkdir(parents=True, exist_ok=True)
    (tree / "home/homestak/.ssh/authorized_keys").write_text(PUBLIC_KEY + "\n")
    result = _tool(tree, "chown", "-R", "homestak:", "/home/homestak/.ssh")
    assert result.returncode == 0, result.stderr
    files = json.loads((tree / "var/lib/sim/files.json").read_text())
    assert files["/home/homestak/.ssh/authorized_keys"]["owner"] == "homestak:homestak"
    assert _tool(tree, "chown", "nobody", "/etc/hostname").returncode == 1
    assert _tool(tree, "chown", "homestak", "/../../etc/passwd").returncode == 1
