"""`pveplan output` after a real nested apply: what the next tool reads works with it.

The inventory is parsed by the real `ansible-inventory`, and the ssh_config include and
the Ansible connection arguments are used by the real OpenSSH client against the
simulated VMs (the nested one through its PVE host), each host key checked against the
known_hosts file pveplan wrote. `ansible-inventory` comes with the test extra
(ansible-core); without it that test skips, unless PVEPLAN_REQUIRE_ANSIBLE=1 (CI sets
it), which makes it fail instead, as PVEPLAN_REQUIRE_POSTGRES does for PostgreSQL.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_runner import run_cli

from .conftest import Lab

MANIFEST = """\
manifest "outputs-lab" {
  pattern = "tiered"
  node "out-pve" {
    type = "pve"  spec = "pve"  preset = "vm-large"  image = "pve-9"  vmid = 97501
    node "out-inner" { type = "vm"  spec = "base"  preset = "vm-small"  image = "debian-12"  vmid = 97511 }
  }
  node "out-flat" { type = "vm"  spec = "base"  preset = "vm-small"  image = "debian-12"  vmid = 97502 }
}
"""


@pytest.fixture(scope="module")
def applied(lab_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The manifest applied once for the module; its `output --json`."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PVEPLAN_STORE", str(lab_root / "store"))
        patch.setenv("XDG_CONFIG_HOME", str(lab_root / "config"))
        patch.delenv("PVEPLAN_SIM_DIR", raising=False)
        lab = Lab(lab_root)
        name = lab.manifest("outputs-lab", MANIFEST)
        code, out, err = run_cli(lab.args("apply", "-M", name, "-H", "sim", "-y"))
        assert code == 0, out + err
        code, out, err = run_cli(lab.args("output", "-M", name, "-H", "sim", "--json"))
        assert code == 0, err
    return json.loads(out)


def _ansible_inventory() -> str:
    """The `ansible-inventory` beside this Python (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / "ansible-inventory"
    found = str(beside) if beside.exists() else shutil.which("ansible-inventory")
    if found is None:
        reason = "ansible-inventory is not installed (ansible-core, in the test extra)"
        if os.environ.get("PVEPLAN_REQUIRE_ANSIBLE") == "1":
            pytest.fail(f"PVEPLAN_REQUIRE_ANSIBLE=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    return found


def _ssh(argv: list[str]) -> subprocess.CompletedProcess[str]:
    if shutil.which("ssh") is None:
        pytest.skip("no OpenSSH client (ssh) to try the configuration with")
    return subprocess.run(
        ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_output_json_reports_every_node_from_the_store(applied: dict, lab: Lab) -> None:
    nodes = {n["name"]: n for n in applied["nodes"]}
    assert set(nodes) == {"out-pve", "out-inner", "out-flat"}
    assert applied["source"] == "store"
    assert nodes["out-inner"]["parent"] == "out-pve"
    assert nodes["out-pve"]["type"] == "pve"
    assert nodes["out-flat"]["parent"] is None
    vms = {v["name"]: v for v in lab.vms()}
    for name, node in nodes.items():
        assert node["status"] == "applied"
        assert node["vmid"] == vms[name]["vmid"]
        assert node["address"] == vms[name]["address"]
        assert node["user"] == "homestak"
        assert node["fingerprint"].startswith("SHA256:")


def test_ansible_inventory_parses_with_every_node_and_address(
    applied: dict, lab: Lab, tmp_path: Path
) -> None:
    ansible = _ansible_inventory()
    inventory = tmp_path / "inventory.yml"
    key = str(lab.root / "config" / "pveplan" / "driver_ed25519")
    words = ("output", "-M", "outputs-lab", "-H", "sim", "--format", "ansible-inventory")
    code, _, err = run_cli([*lab.args(*words), "-o", str(inventory), "--identity-file", key])
    assert code == 0, err
    env = {**os.environ, "ANSIBLE_HOME": str(tmp_path / "ansible"), "LC_ALL": "C.UTF-8"}
    listed = subprocess.run(
        [ansible, "-i", str(inventory), "--list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    parsed = json.loads(listed.stdout)
    hostvars = parsed["_meta"]["hostvars"]
    for node in applied["nodes"]:
        assert hostvars[node["name"]]["ansible_host"] == node["address"]
        assert hostvars[node["name"]]["ansible_user"] == "homestak"
    assert set(parsed["pve"]["hosts"]) == {"out-pve"}
    assert set(parsed["vm"]["hosts"]) == {"out-inner", "out-flat"}
    assert set(parsed["parent_out_pve"]["hosts"]) == {"out-inner"}
    # Ansible's own connection arguments reach the nested VM, keys checked at every hop.
    inner = hostvars["out-inner"]
    assert inner["ansible_ssh_private_key_file"] == key
    result = _ssh(
        [
            *shlex.split(inner["ansible_ssh_common_args"]),
            *("-i", key, "-p", str(inner["ansible_port"]), "-l", inner["ansible_user"]),
            inner["ansible_host"],
            "hostname",
        ]
    )
    assert result.returncode == 0, result.stderr


def test_ssh_config_reaches_every_node_with_pinned_keys(
    applied: dict, lab: Lab, tmp_path: Path
) -> None:
    config = tmp_path / "ssh_config"
    key = lab.root / "config" / "pveplan" / "driver_ed25519"
    words = ("output", "-M", "outputs-lab", "-H", "sim", "--format", "ssh-config")
    code, _, err = run_cli([*lab.args(*words), "-o", str(config), "--identity-file", str(key)])
    assert code == 0, err
    text = config.read_text()
    assert "ProxyJump root@out-pve" in text
    assert text.count("StrictHostKeyChecking yes") == 3
    for node in applied["nodes"]:
        result = _ssh(["-F", str(config), node["name"], "echo", "reached"])
        assert result.returncode == 0, (node["name"], result.stderr)
        assert result.stdout.strip() == "reached"
    # A key that is not the pinned one is refused: the file pins, it does not trust.
    known = Path(f"{config}.known_hosts")
    lines = known.read_text().splitlines()
    flat = next(n for n in applied["nodes"] if n["name"] == "out-flat")
    other = next(n for n in applied["nodes"] if n["name"] == "out-pve")
    known.write_text(
        "\n".join(
            line.replace(flat["host_key"], other["host_key"])
            if line.split()[0].strip("[").startswith(flat["address"] + "]")
            else line
            for line in lines
        )
        + "\n"
    )
    result = _ssh(["-F", str(config), "out-flat", "true"])
    assert result.returncode != 0
    assert "host key" in result.stderr.lower() or "verification failed" in result.stderr.lower()
