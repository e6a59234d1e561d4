"""iac-driver's flags against the simulator: `--preflight`, `--timeout`, `--vm-id`,
`--context-file`, and the readiness checks refusing a lab before anything is created.

The fast tier covers the parsing and the refusals that need no host
(tests/planner/test_cli_homestak_flags.py); here the checks and runs reach the simulator.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from ..cli_runner import run_cli
from .conftest import Lab
from .test_apply import counts

REHEARSAL = Path(__file__).resolve().parents[1] / "fixtures" / "homestak-rehearsal"

ONE_VM = """
manifest "{name}" {{
  node "edge" {{
    type = "vm"
    spec = "base"
    preset = "vm-small"
    image = "debian-12"
    vmid = {vmid}
  }}
}}
"""


def _rehearsal_site(tmp_path: Path, manifest: str) -> Path:
    """The homestak rehearsal fixture (father is a real host in its node file, its
    site.yaml has no gateway or DNS), with flat-12 copied as `manifest`."""
    site = tmp_path / "site-config"
    shutil.copytree(REHEARSAL, site)
    flat = (site / "manifests" / "flat-12.yaml").read_text()
    (site / "manifests" / f"{manifest}.yaml").write_text(
        flat.replace("name: flat-12", f"name: {manifest}").replace("vmid: 991", "vmid: 997")
    )
    return site


def test_preflight_on_the_simulator_passes_and_creates_nothing(lab: Lab) -> None:
    name = lab.manifest("flags-pre", ONE_VM.format(name="flags-pre", vmid=99690))
    code, out, err = run_cli(lab.args("create", "-M", name, "-H", "sim", "--preflight"))
    assert code == 0, out + err
    assert "SSH and pvesh" in out and out.rstrip().endswith("ready")
    assert lab.vms(name) == []  # checks only
    code, out, err = run_cli(lab.args("test", "-M", "n2-tiered", "-H", "sim", "--preflight"))
    assert code == 0, out + err
    assert "nested virtualization" in out  # a PVE node with children


def test_preflight_of_a_lab_fails_without_gateway_and_passes_once_set(
    lab: Lab, tmp_path: Path
) -> None:
    site = _rehearsal_site(tmp_path, "flags-lab-pre")
    words = ["create", "-M", "flags-lab-pre", "-H", "father", "--simulate", "--site-config"]
    code, out, _ = run_cli([*words, str(site), "--preflight"])
    assert code == 1
    assert "FAIL gateway" in out and "FAIL DNS" in out and "not ready" in out
    site_yaml = site / "site.yaml"
    site_yaml.write_text(
        site_yaml.read_text()
        .replace('gateway: ""', 'gateway: "192.0.2.1"')
        .replace("dns_servers: []", 'dns_servers: ["192.0.2.1"]')
    )
    code, out, err = run_cli([*words, str(site), "--preflight"])
    assert code == 0, out + err
    assert "ok   gateway" in out and "SSH and pvesh" in out  # the rehearsal host answered


def test_a_lab_missing_its_gateway_is_refused_before_anything_is_created(
    lab: Lab, tmp_path: Path
) -> None:
    assert run_cli(["sim", "up"])[0] == 0  # so that "no VM" is the simulator's word
    site = _rehearsal_site(tmp_path, "flags-lab")
    code, out, err = run_cli(
        [
            "create",
            "-M",
            "flags-lab",
            "-H",
            "father",
            "--simulate",
            "--site-config",
            str(site),
            "-y",
        ]
    )
    assert code == 1
    assert "FAIL gateway" in err and "refused before anything was created" in err
    assert "Apply complete" not in out
    assert lab.vms("flags-lab") == []


def test_timeout_stops_the_run_keeps_its_records_and_the_next_run_resumes(
    lab: Lab, tmp_path: Path
) -> None:
    name = lab.manifest("flags-deadline", ONE_VM.format(name="flags-deadline", vmid=99700))
    context = tmp_path / "ctx.json"
    context.write_text(json.dumps({"from_before": "kept"}))
    base = ["-M", name, "-H", "sim", "-y", "--vm-id", "edge=99701", "--context-file", str(context)]
    lab.set_sim_config(agent_delay=300.0)  # the VM takes 300 s to report an address
    try:  # the VM is made in a few seconds, then the run waits for its address until 15 s
        started = time.monotonic()
        code, out, err = run_cli(lab.args("create", *base, "--timeout", "15"))
        assert time.monotonic() - started < 120, "the deadline did not stop the wait"
    finally:
        lab.set_sim_config(agent_delay=0.0)
    assert code == 1, out + err
    assert "deadline" in err and "homestak-compat.md#flags" in err and "Traceback" not in err
    assert "recorded as interrupted" in err and "finished step(s) kept" in err
    (vm,) = lab.vms(name)  # created before the deadline, under the --vm-id given
    assert vm["vmid"] == 99701

    code, out, err = run_cli(["runs", "list", "--workspace", f"{name}@sim", "--json"])
    assert code == 0, err
    assert json.loads(out)[0]["status"] == "interrupted"

    code, out, err = run_cli(lab.args("create", *base))  # resumes from the records
    assert code == 0, out + err
    assert counts(out)["cached"] > 0 and counts(out)["failed"] == 0
    saved = json.loads(context.read_text())
    assert saved["from_before"] == "kept" and saved["edge_vm_id"] == 99701

    code, out, err = run_cli(lab.args("destroy", *base))
    assert code == 0, out + err
    assert lab.vms(name) == []
    assert "edge_vm_id" not in json.loads(context.read_text())


@pytest.mark.parametrize("form", [["manifest", "apply"], ["create"]])
def test_the_manifest_form_runs_like_the_verb(lab: Lab, form: list[str]) -> None:
    name = lab.manifest("flags-form", ONE_VM.format(name="flags-form", vmid=99710))
    code, out, err = run_cli(lab.args(*form, "-M", name, "-H", "sim", "-y"))
    assert code == 0, out + err
    assert len(lab.vms(name)) == 1
    code, out, err = run_cli(lab.args("manifest", "destroy", "-M", name, "-H", "sim", "-y"))
    assert code == 0, out + err
    assert lab.vms(name) == []


def test_test_skipping_verify_and_destroy_keeps_the_nodes(lab: Lab) -> None:
    name = lab.manifest("flags-skip", ONE_VM.format(name="flags-skip", vmid=99720))
    words = ["-M", name, "-H", "sim", "-y"]
    code, out, err = run_cli(lab.args("test", *words, "--skip", "verify", "--skip", "destroy"))
    assert code == 0, out + err
    assert len(lab.vms(name)) == 1  # kept, as asked
    code, out, err = run_cli(lab.args("test", *words, "--skip", "verify"))  # destroys at the end
    assert code == 0, out + err
    assert lab.vms(name) == []
