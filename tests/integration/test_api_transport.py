"""The main example over PVE's HTTPS API with a token, on the simulator (issue 19).

A copy of the example site config whose simulated host says `transport: api` and whose
secrets.yaml holds the host's API token: every PVE operation goes over HTTPS to the
simulated host's own address, its certificate pinned from the simulator, with
`Authorization: PVEAPIToken=...`. Then a token an operator limited (no `VM.Allocate`) is
refused by `preflight`, naming the privilege and its path, and, with preflight skipped, by
the first API call that needs it, with PVE's own message.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pveplan.sim import SimRoot, api_endpoint, stop_daemon
from tests.cli_runner import run_cli
from tests.sim.test_https import connect, request

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "site-config"
ADMIN = f"ops@pve!pveplan={uuid.uuid4()}"
NO_ALLOC_ROLE = "PVEPlanNoAllocate"


class ApiLab:
    def __init__(self, root: Path) -> None:
        self.site = root / "site-config"
        self.store = root / "store"
        self.sim = SimRoot(self.store / "sim")

    def cli(self, *words: str) -> tuple[int, str, str]:
        return run_cli([*words, "--site-config", str(self.site)])

    def set_token(self, token: str) -> None:
        secrets = self.site / "secrets.yaml"
        data = yaml.safe_load(secrets.read_text())
        data["api_tokens"] = {"sim": token}
        secrets.write_text(yaml.safe_dump(data))

    def api_calls(self) -> list[dict]:
        lines = (self.sim.path / "calls.jsonl").read_text().splitlines()
        return [call for call in map(json.loads, lines) if call.get("tool") == "api"]


@pytest.fixture(scope="module")
def api_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiLab]:
    root = tmp_path_factory.mktemp("api-lab")
    shutil.copytree(EXAMPLES, root / "site-config")
    node_file = root / "site-config" / "nodes" / "sim.yaml"
    node_file.write_text(node_file.read_text() + "transport: api\n")
    lab = ApiLab(root)
    lab.set_token(ADMIN)
    try:
        yield lab
    finally:
        stop_daemon(lab.sim)


@pytest.fixture
def env(api_lab: ApiLab, monkeypatch: pytest.MonkeyPatch) -> ApiLab:
    monkeypatch.setenv("PVEPLAN_STORE", str(api_lab.store))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(api_lab.store.parent / "config"))
    monkeypatch.delenv("PVEPLAN_SIM_DIR", raising=False)
    monkeypatch.delenv("HOMESTAK_SITE_CONFIG", raising=False)
    return api_lab


def test_the_main_example_applies_reapplies_and_destroys_over_the_api(env: ApiLab) -> None:
    code, out, err = env.cli("apply", "-M", "n1-push", "-H", "sim", "--yes")
    assert code == 0, out + err
    ran = re.search(r"Apply complete: (\d+) ran, 0 cached, 0 failed", out)
    assert ran and int(ran.group(1)) > 0, out
    calls = env.api_calls()
    created = [c for c in calls if c["method"] == "POST" and c["path"].endswith("/qemu")]
    assert len(created) == 1, "the VM was created through the HTTPS API"
    assert ADMIN.split("=")[1] not in out + err  # the token's secret is never shown

    code, out, err = env.cli("apply", "-M", "n1-push", "-H", "sim", "--yes")
    assert code == 0, out + err
    assert f"0 ran, {ran.group(1)} cached, 0 failed" in out

    code, out, err = env.cli("destroy", "-M", "n1-push", "-H", "sim", "--yes")
    assert code == 0, out + err
    deleted = [c for c in env.api_calls() if c["method"] == "DELETE"]
    assert deleted, "the VM was destroyed through the HTTPS API"


def test_a_template_and_its_linked_clones_are_made_over_the_api(env: ApiLab) -> None:
    code, out, err = env.cli("apply", "-M", "clones", "-H", "sim", "--yes")
    assert code == 0, out + err
    calls = [(c["method"], c["path"]) for c in env.api_calls()]  # only this test clones
    assert calls.count(("POST", "/nodes/{node}/qemu/{vmid}/template")) == 1, calls
    assert calls.count(("POST", "/nodes/{node}/qemu/{vmid}/clone")) == 2, calls
    code, out, err = env.cli("destroy", "-M", "clones", "-H", "sim", "--yes")
    assert code == 0, out + err


def test_drift_is_probed_in_one_api_listing_and_converged_over_the_api(env: ApiLab) -> None:
    import subprocess

    from pveplan.sim import read_state

    code, out, err = env.cli("apply", "-M", "n1-push", "-H", "sim", "--yes")
    assert code == 0, out + err
    qm = str(env.sim.host_dir("sim") / "bin" / "qm")
    subprocess.run([qm, "set", "99001", "--memory", "4096"], check=True, capture_output=True)
    since = len(env.api_calls())
    code, out, err = env.cli("plan", "-M", "n1-push", "-H", "sim", "--detailed-exitcode")
    assert code == 2, out + err
    assert "~ vm edge  memory: 4096 (live) -> 2048 (manifest)" in out
    probe = [(c["method"], c["path"]) for c in env.api_calls()[since:]]
    assert probe == [("GET", "/cluster/resources")], probe
    code, out, err = env.cli("apply", "-M", "n1-push", "-H", "sim", "--yes")
    assert code == 0, out + err
    vm = next(v for v in read_state(env.sim)["vms"].values() if v["vmid"] == 99001)
    assert str(vm["config"]["memory"]) == "2048"
    code, out, err = env.cli("plan", "-M", "n1-push", "-H", "sim", "--detailed-exitcode")
    assert code == 0 and "No changes." in out, out + err
    assert env.cli("destroy", "-M", "n1-push", "-H", "sim", "--yes")[0] == 0


def test_a_full_refresh_reads_each_applied_vms_config_over_the_api(env: ApiLab) -> None:
    import subprocess

    from pveplan.sim import read_state

    code, out, err = env.cli("apply", "-M", "n1-push", "-H", "sim", "--yes")
    assert code == 0, out + err
    qm = str(env.sim.host_dir("sim") / "bin" / "qm")
    vm = next(v for v in read_state(env.sim)["vms"].values() if v["vmid"] == 99001)
    mac = vm["config"]["net0"].split(",")[0].split("=")[1]
    net0 = f"virtio={mac},bridge=vmbr1"
    subprocess.run([qm, "set", "99001", "--net0", net0, "--ciuser", "eve"], check=True)
    since = len(env.api_calls())
    code, out, err = env.cli("plan", "-M", "n1-push", "-H", "sim", "--refresh=full")
    assert code == 0, out + err
    assert "~ vm edge  bridge: vmbr1 (live) -> vmbr0 (manifest)" in out
    assert "~ vm edge  ciuser: eve (live) -> homestak (manifest)" in out
    probe = [(c["method"], c["path"]) for c in env.api_calls()[since:]]
    assert probe == [("GET", "/cluster/resources"), ("GET", "/nodes/{node}/qemu/{vmid}/config")]
    code, out, err = env.cli("apply", "-M", "n1-push", "-H", "sim", "--yes", "--refresh=full")
    assert code == 0, out + err
    made = [(c["method"], c["path"]) for c in env.api_calls()[since:]]
    assert ("PUT", "/nodes/{node}/qemu/{vmid}/cloudinit") in made
    assert not any(method == "DELETE" for method, _ in made)
    vm = next(v for v in read_state(env.sim)["vms"].values() if v["vmid"] == 99001)
    assert vm["config"]["net0"] == f"virtio={mac},bridge=vmbr0"
    assert vm["config"]["ciuser"] == "homestak"
    code, out, err = env.cli("plan", "-M", "n1-push", "-H", "sim", "--refresh=full")
    assert code == 0 and "No changes." in out, out + err
    assert env.cli("destroy", "-M", "n1-push", "-H", "sim", "--yes")[0] == 0


def _limited_token(env: ApiLab) -> str:
    """A token of its own user whose role has everything pveplan needs but VM.Allocate,
    made over the API with the administrator's token, as an operator would."""
    from pveplan.executor.pve._privileges import ROLE

    conn = connect(api_endpoint(env.sim, "sim"))
    try:
        privs = ",".join(p for p in ROLE if p != "VM.Allocate")
        assert (
            request(
                conn,
                "POST",
                "/access/roles",
                {"roleid": NO_ALLOC_ROLE, "privs": privs},
                token=ADMIN,
            )[0]
            == 200
        )
        assert request(conn, "POST", "/access/users", {"userid": "lab@pve"}, token=ADMIN)[0] == 200
        status, _, body = request(
            conn, "POST", "/access/users/lab@pve/token/plan", {"privsep": 0}, token=ADMIN
        )
        assert status == 200, body
        acl = {"path": "/", "roles": NO_ALLOC_ROLE, "users": "lab@pve", "propagate": 1}
        assert request(conn, "PUT", "/access/acl", acl, token=ADMIN)[0] == 200
        return f"{body['data']['full-tokenid']}={body['data']['value']}"
    finally:
        conn.close()


def test_a_token_without_vm_allocate_is_refused_by_preflight_and_by_pve(env: ApiLab) -> None:
    code, out, err = env.cli("preflight", "-M", "n1-push", "-H", "sim")
    assert code == 0, out + err  # the administrator's token holds everything

    limited = _limited_token(env)
    env.set_token(limited)
    try:
        code, out, err = env.cli("preflight", "-M", "n1-push", "-H", "sim")
        assert code == 1
        missing = [line.split() for line in (out + err).splitlines()]
        missing = [words[1:4] for words in missing if words[:1] == ["missing"]]
        assert missing == [["VM.Allocate", "on", "/vms/99001"]], out + err
        assert limited.split("=")[1] not in out + err

        code, out, err = env.cli("apply", "-M", "n1-push", "-H", "sim", "--yes")
        assert code != 0
        assert "Permission check failed (/vms/" in out + err and "VM.Allocate)" in out + err
        assert limited.split("=")[1] not in out + err
    finally:
        env.set_token(ADMIN)
        env.cli("destroy", "-M", "n1-push", "-H", "sim", "--yes")
