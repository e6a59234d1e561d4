"""homestak's `pve-setup` on the simulator: a bare Debian machine becomes a PVE host.

The machine is one of the simulator's bare hosts (docs/simulator.md, "Bare Debian
hosts"): Debian with root's key and no PVE, on its own loopback address. `pveplan
--scenario pve-setup --remote ADDR` installs PVE from its repository, bridges vmbr0, makes
an API token (into the site's secrets.yaml) and writes nodes/HOST.yaml; the second run
runs nothing; `create -M n1-push -H HOST` then works on the new host, and destroy cleans up.
"""

from __future__ import annotations

import json
import os
import time
import types

import yaml

from pveplan.sim import ensure_bare_host, read_state
from tests.cli_runner import run_cli

from .conftest import Lab


def _driver_public_key() -> str:
    from pveplan.cli._session import driver_key

    return driver_key(types.SimpleNamespace(env=os.environ))[1]  # type: ignore[arg-type]


def test_pve_setup_by_address_makes_a_pve_host_that_create_then_uses(lab: Lab) -> None:
    bare = ensure_bare_host(lab.sim.path, "metal", _driver_public_key())
    assert "metal" not in read_state(lab.sim)["nodes"]  # no PVE yet

    started = time.monotonic()
    code, out, err = run_cli(
        lab.args("--scenario", "pve-setup", "--remote", bare.address, "--json-output")
    )
    first = time.monotonic() - started
    assert code == 0, out + err
    report = json.loads(out)
    assert report["scenario"] == "pve-setup" and report["success"] is True
    assert [p["status"] for p in report["phases"]] == ["passed"] * 7
    assert "7 ran" in err and "Traceback" not in err
    assert "root@pam!tofu" in err and "docs/homestak-compat.md#scenarios" in err

    # A PVE host now, with the node file and token `create -H metal` needs.
    state = read_state(lab.sim)
    assert state["nodes"]["metal"]["address"] == bare.address
    node = yaml.safe_load((lab.site / "nodes" / "metal.yaml").read_text())
    assert node["node"] == "metal" and node["ip"] == bare.address
    assert node["ssh_host_key"] == bare.host_key and node["api_fingerprint"]
    secrets = yaml.safe_load((lab.site / "secrets.yaml").read_text())
    assert secrets["api_tokens"]["metal"].startswith("pveplan@pve!pveplan=")
    assert (lab.site / "secrets.yaml").stat().st_mode & 0o077 == 0
    bridges = state["network"]["metal"]["ifaces"]
    assert bridges["vmbr0"]["type"] == "bridge" and "vmbr0" in state["network"]["metal"]["active"]

    # The second run does nothing: every phase is recorded.
    started = time.monotonic()
    code, out, err = run_cli(lab.args("scenario", "pve-setup", "--remote", bare.address))
    again = time.monotonic() - started
    assert code == 0, out + err
    assert "0 ran, 7 cached" in out, out
    print(f"pve-setup: first run {first:.1f}s, re-run {again:.1f}s")
    # By its name (nodes/metal.yaml now pins its key): another workspace, so each step
    # runs, and finds everything in place (the token kept, the node file unchanged).
    node_file = (lab.site / "nodes" / "metal.yaml").read_text()
    code, out, err = run_cli(lab.args("scenario", "pve-setup", "-H", "metal"))
    assert code == 0, out + err
    assert (lab.site / "nodes" / "metal.yaml").read_text() == node_file
    again_token = yaml.safe_load((lab.site / "secrets.yaml").read_text())["api_tokens"]["metal"]
    assert again_token == secrets["api_tokens"]["metal"]

    # metal is a lab, not the simulator's own host: create's preflight wants the network
    # its VMs get, as an operator sets it in site.yaml after pve-setup.
    site_yaml = lab.site / "site.yaml"
    site = yaml.safe_load(site_yaml.read_text())
    site["defaults"].update(gateway="192.0.2.1", dns_servers=["192.0.2.53"])
    site_yaml.write_text(yaml.safe_dump(site, sort_keys=False))
    try:
        code, out, err = run_cli(lab.args("create", "-M", "n1-push", "-H", "metal"))
        assert code == 0, out + err
        guests = [vm for vm in read_state(lab.sim)["vms"].values() if vm["node"] == "metal"]
        assert [vm["status"] for vm in guests] == ["running"]
    finally:
        code, out, err = run_cli(lab.args("destroy", "-M", "n1-push", "-H", "metal", "--yes"))
    assert code == 0, out + err
    assert [vm for vm in read_state(lab.sim)["vms"].values() if vm["node"] == "metal"] == []


def test_user_setup_makes_the_homestak_user_with_sudo_and_the_sites_keys(lab: Lab) -> None:
    import subprocess

    bare = ensure_bare_host(lab.sim.path, "plain", _driver_public_key())
    code, out, err = run_cli(lab.args("scenario", "run", "user-setup", "--remote", bare.address))
    assert code == 0, out + err
    assert "3 ran" in out
    vm = next(v for v in read_state(lab.sim)["vms"].values() if v["name"] == "plain")
    tree = lab.sim.vm_dir(vm["node"], vm["vmid"])
    keys = (tree / "home/homestak/.ssh/authorized_keys").read_text()
    site_keys = yaml.safe_load((lab.site / "secrets.yaml").read_text())["ssh_keys"]
    assert all(key.strip() in keys for key in site_keys.values())
    sudo = subprocess.run(
        [str(tree / "bin" / "sudo"), "-n", "id", "-u"],
        capture_output=True,
        text=True,
        env={**os.environ, "USER": "homestak", "LOGNAME": "homestak"},
        check=False,
    )
    assert sudo.returncode == 0 and sudo.stdout.strip() == "0", sudo.stderr

    code, out, err = run_cli(lab.args("scenario", "user-setup", "--remote", bare.address))
    assert code == 0 and "0 ran, 3 cached" in out, out + err


def test_push_vm_roundtrip_is_test_with_n1_push(lab: Lab) -> None:
    code, out, err = run_cli(
        lab.args("--scenario", "push-vm-roundtrip", "-H", "sim", "--yes", "--json-output")
    )
    assert code == 0, out + err
    report = json.loads(out)
    assert report["success"] is True
    assert [n["name"] for n in report["nodes"]] == ["edge"]
    assert lab.vms("n1-push") == []  # created, verified, destroyed


def test_pve_setup_after_a_lost_store_adopts_the_host_and_its_token(
    lab: Lab, tmp_path, monkeypatch
) -> None:
    """The first test's host, set up again from an empty store (the simulator kept): every
    step finds what it would make already there, the token through secrets.yaml."""
    bare = ensure_bare_host(lab.sim.path, "metal", _driver_public_key())
    token = yaml.safe_load((lab.site / "secrets.yaml").read_text())["api_tokens"].get("metal")
    if token is None:  # run on its own: set it up first
        code, out, err = run_cli(lab.args("scenario", "pve-setup", "--remote", bare.address))
        assert code == 0, out + err
        token = yaml.safe_load((lab.site / "secrets.yaml").read_text())["api_tokens"]["metal"]
    monkeypatch.setenv("PVEPLAN_STORE", str(tmp_path / "fresh-store"))
    monkeypatch.setenv("PVEPLAN_SIM_DIR", str(lab.sim.path))
    code, out, err = run_cli(lab.args("scenario", "pve-setup", "--remote", bare.address))
    assert code == 0, out + err
    assert "7 ran" in out
    assert yaml.safe_load((lab.site / "secrets.yaml").read_text())["api_tokens"]["metal"] == token


def test_a_failed_pve_setup_reports_the_failed_phase_and_its_error(lab: Lab) -> None:
    """A node file someone wrote by hand for the host is not overwritten: the run fails at
    that phase, after installing PVE, and the JSON report says where and why."""
    bare = ensure_bare_host(lab.sim.path, "handmade", _driver_public_key())
    mine = lab.site / "nodes" / "handmade.yaml"
    mine.write_text("node: handmade  # written by hand\n")
    try:
        code, out, err = run_cli(
            lab.args("--scenario", "pve-setup", "--remote", bare.address, "--json-output")
        )
        assert code == 1, out + err
        report = json.loads(out)
        assert report["success"] is False
        status = {p["name"]: p["status"] for p in report["phases"]}
        assert status["pve_install"] == "passed" and status["node_file"] == "failed"
        assert "not written by pveplan" in report["error"]
        assert mine.read_text() == "node: handmade  # written by hand\n"
    finally:
        mine.unlink()
