"""Pull mode end to end: nodes that fetch their spec over HTTPS and converge themselves.

Everything is real: the driver's spec server (HTTPS on loopback, its certificate made in
the store), the simulator's VMs running cloud-init's runcmd at first boot (the constant
bootstrap, which installs pveplan's bundle from the server, then `spec get` and `config
apply` against the node's own store), and the driver's `config.await_report` polling the
server for each node's report. The seeds' system tests ST-1 (single-node pull) and ST-5
(mixed modes) are the n1-pull and n2-mixed cases.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pveplan.planner import read_plan_file
from pveplan.sim import read_state
from pveplan.store import open_store
from tests.cli_runner import run_cli

from .conftest import Lab
from .test_apply import counts

CANARY_SITE = "CANARY-site-token-9d2b71"
CANARY_NODE = "CANARY-node-token-5a7c03"


def plan_json(lab: Lab, name: str) -> dict:
    code, out, err = run_cli(lab.args("plan", "-M", name, "-H", "sim", "--json"))
    assert code in (0, 2), err
    return json.loads(out)


def expected_hashes(lab: Lab, name: str, tmp_path: Path) -> dict[str, str]:
    """identity -> the spec hash the plan expects, read from a saved plan file."""
    path = tmp_path / f"{name}.plan.json"
    code, _, err = run_cli(lab.args("plan", "-M", name, "-H", "sim", "-o", str(path)))
    assert code in (0, 2), err
    found: dict[str, str] = {}
    # Read through the plan-file reader: format /2 stores shared args in templates.
    for _, step in read_plan_file(path).plan.walk():
        if step.kind == "config.await_report":
            found[step.args["identity"]] = step.args["spec_hash"]
    return found


def vm_tree(lab: Lab, name: str) -> Path:
    """The directory tree of the (only) VM called `name`, at any depth."""
    state = read_state(lab.sim)
    found = [
        lab.sim.vm_dir(vm["node"], vm["vmid"])
        for vm in state["vms"].values()
        if vm["config"].get("name") == name
    ]
    assert len(found) == 1, f"{name}: {found}"
    return found[0]


def vm_entry(lab: Lab, name: str) -> dict:
    return next(v for v in read_state(lab.sim)["vms"].values() if v["config"].get("name") == name)


def marker(tree: Path, name: str) -> dict | None:
    path = tree / "root" / ".pveplan" / "state" / name
    return json.loads(path.read_text()) if path.exists() else None


def installed(tree: Path) -> set[str]:
    data = json.loads((tree / "var" / "lib" / "sim" / "packages.json").read_text())
    return {name for name, entry in data.items() if entry.get("status") == "installed"}


def node_command(lab: Lab, name: str, *words: str) -> subprocess.CompletedProcess:
    """`pveplan WORDS` run inside VM `name` as root, as its timer or an admin would."""
    tree = vm_tree(lab, name)
    config = json.loads((tree / "root" / ".pveplan" / "pull" / "pull.json").read_text())
    launcher = tree / "root" / ".pveplan" / "bundles" / config["bundle"] / "bundle" / "run.py"
    return subprocess.run(
        [sys.executable, "-I", "-S", str(launcher), *words],
        env=vm_env(lab, name),
        cwd=tree / "root",
        capture_output=True,
        text=True,
        timeout=120,
    )


def vm_env(lab: Lab, name: str) -> dict[str, str]:
    """The environment of a root shell in VM `name` (the simulator's session env)."""
    from pveplan.sim import session_env

    tree = vm_tree(lab, name)
    entry = vm_entry(lab, name)
    return session_env(lab.sim, tree, entry["node"], entry["vmid"], "root", tree / "root")


def server_log(lab: Lab) -> str:
    """What the spec servers logged: apply's own (serve.log) and `pveplan serve`'s stderr."""
    paths = (lab.store / "serve.log", lab.root / "serve.stderr")
    return "".join(p.read_text() for p in paths if p.exists())


class Serving:
    """A `pveplan serve` process on an ephemeral port, as a user would run it."""

    def __init__(self, lab: Lab) -> None:
        env = {**os.environ, "PVEPLAN_STORE": str(lab.store)}
        self.log = (lab.root / "serve.stderr").open("a")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pveplan.cli",
                "serve",
                "--port=0",
                f"--site-config={lab.site}",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self.banner = [self.process.stdout.readline() for _ in range(3)]
        assert self.banner[0].startswith("spec server on https://127.0.0.1:"), self.banner
        self.url = self.banner[0].split()[3]
        self.fingerprint = self.banner[1].split()[-1]

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        finally:
            self.log.close()


@pytest.fixture
def serving(lab: Lab):
    server = Serving(lab)
    yield server
    if server.process.poll() is None:
        server.stop()


def test_n1_pull_converges_by_itself_and_reports_the_planned_spec(
    lab: Lab, tmp_path: Path, serving: Serving
):
    """ST-1, with `pveplan serve` running (apply uses it), so later runs on the node can
    report to it too."""
    expected = expected_hashes(lab, "n1-pull", tmp_path)
    code, out, err = run_cli(lab.args("apply", "-M", "n1-pull", "-H", "sim", "--yes"))
    assert code == 0, out + err
    tree = vm_tree(lab, "edge")
    complete = marker(tree, "complete.json")
    assert complete is not None and complete["spec_hash"] == expected["edge"]
    assert marker(tree, "failure.json") is None
    assert (tree / "root" / ".pveplan" / "state" / "spec.yaml").stat().st_mode & 0o777 == 0o600
    assert {"htop", "curl"} <= installed(tree)  # the spec's packages, installed by the node
    assert "POST /report/edge 200" in server_log(lab)
    # The driver never logged in: no push, and the node's own store ran the config.
    assert "config.push" not in out
    # Idempotent: a re-apply runs nothing.
    code, out, err = run_cli(lab.args("apply", "-M", "n1-pull", "-H", "sim", "--yes"))
    assert code == 0, out + err
    assert counts(out)["ran"] == 0

    # A second `config apply` on the converged node changes nothing...
    again = node_command(lab, "edge", "config", "apply")
    assert again.returncode == 0, again.stderr
    assert marker(tree, "complete.json")["changed"] == []
    assert marker(tree, "complete.json")["drift"] == []
    # ...and after drift it repairs exactly what drifted, and says so.
    removed = subprocess.run(
        ["apt-get", "remove", "-y", "htop"],
        env=vm_env(lab, "edge"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert removed.returncode == 0, removed.stderr
    sudoers = tree / "etc" / "sudoers.d" / "pveplan-homestak"
    sudoers.write_text("homestak ALL=(ALL) ALL\n")
    drift = node_command(lab, "edge", "config", "apply")
    assert drift.returncode == 0, drift.stderr
    repaired = marker(tree, "complete.json")
    assert sorted(repaired["changed"]) == sorted(
        a for a in repaired["changed"] if "package" in a or "sudo" in a
    )
    assert len(repaired["changed"]) == 2, repaired
    assert any("htop" in line for line in repaired["drift"]), repaired
    assert "htop" in installed(tree)
    assert "NOPASSWD" in sudoers.read_text()
    assert "htop" in server_log(lab)  # the report's drift, logged by the server
    final = node_command(lab, "edge", "config", "apply")
    assert final.returncode == 0 and marker(tree, "complete.json")["changed"] == []

    # Pinned to another certificate, the node refuses the server before sending a byte.
    fetches = server_log(lab).count("GET /spec/edge")
    wrong = ":".join(["AB"] * 32)
    refused = node_command(lab, "edge", "spec", "get", "--fingerprint", wrong, "--timeout", "5")
    assert refused.returncode == 1
    assert "pinned" in refused.stderr and "Traceback" not in refused.stderr
    assert server_log(lab).count("GET /spec/edge") == fetches
    assert marker(tree, "failure.json")["phase"] == "spec"

    code, out, err = run_cli(lab.args("destroy", "-M", "n1-pull", "-H", "sim", "--yes"))
    assert code == 0, out + err
    assert lab.vms("n1-pull") == []


def test_n2_pull_test_verb_reaches_the_nested_pull_node(lab: Lab):
    code, out, err = run_cli(
        lab.args("test", "-M", "n2-pull", "-H", "sim", "--yes", "--json-output")
    )
    assert code == 0, err[-3000:]
    report = json.loads(out)
    assert report["success"] is True
    assert sorted(n["name"] for n in report["nodes"]) == ["edge", "root-pve"]
    assert all(n["ip"] for n in report["nodes"])
    assert lab.vms("n2-pull") == []


def test_n2_mixed_push_host_and_pull_leaf(lab: Lab, tmp_path: Path):
    """ST-5: the PVE host is configured over SSH, the leaf under it pulls its own spec."""
    expected = expected_hashes(lab, "n2-mixed", tmp_path)
    code, out, err = run_cli(lab.args("apply", "-M", "n2-mixed", "-H", "sim", "--yes"))
    assert code == 0, (out + err)[-3000:]
    complete = marker(vm_tree(lab, "edge"), "complete.json")
    assert complete is not None and complete["spec_hash"] == expected["edge"]
    # The host was pushed: its spec's packages arrived over SSH (no pull files on it).
    host = vm_tree(lab, "root-pve")
    assert "chrony" in installed(host)
    assert not (host / "root" / ".pveplan" / "pull").exists()
    code, out, err = run_cli(lab.args("destroy", "-M", "n2-mixed", "-H", "sim", "--yes"))
    assert code == 0, out + err
    assert lab.vms("n2-mixed") == []


def _token_site(lab: Lab) -> None:
    """Specs under the stage (site token) and prod (node token) postures, with canaries."""
    secrets = lab.site / "secrets.yaml"
    text = secrets.read_text()
    if CANARY_SITE not in text:
        text = text.replace("auth:\n", f'auth:\n  site_token: "{CANARY_SITE}"\n')
        text += f'\nnode_tokens:\n  static-node: "{CANARY_NODE}"\n'
        secrets.write_text(text)
    base = (lab.site / "specs" / "base.yaml").read_text()
    (lab.site / "specs" / "pull-stage.yaml").write_text(
        base.replace("posture: dev", "posture: stage")
    )
    (lab.site / "specs" / "pull-prod.yaml").write_text(
        base.replace("posture: dev", "posture: prod")
    )


MIX = {
    "schema_version": 2,
    "name": "pull-mix",
    "execution": {"default_mode": "push"},
    "nodes": [
        {"name": "mix-push", "type": "vm", "spec": "base", "image": "debian-12", "vmid": 99961},
        {
            "name": "mix-stage",
            "type": "vm",
            "spec": "pull-stage",
            "image": "debian-12",
            "vmid": 99962,
            "execution": {"mode": "pull"},
        },
        {
            "name": "mix-prod",
            "type": "vm",
            "spec": "pull-prod",
            "image": "debian-12",
            "vmid": 99963,
            "execution": {"mode": "pull"},
        },
    ],
}


def test_push_and_pull_side_by_side_with_token_postures_leak_no_token(lab: Lab, tmp_path: Path):
    _token_site(lab)
    (lab.site / "manifests" / "pull-mix.yaml").write_text(yaml.safe_dump(MIX, sort_keys=False))
    expected = expected_hashes(lab, "pull-mix", tmp_path)
    assert sorted(expected) == ["mix-prod", "mix-stage"]
    code, out, err = run_cli(
        lab.args("test", "-M", "pull-mix", "-H", "sim", "--yes", "--json-output")
    )
    assert code == 0, err[-3000:]
    assert json.loads(out)["success"] is True
    # No token or secret value in the plan file, the output, the run record, the server log
    # or any process's command line.
    plan_file = (tmp_path / "pull-mix.plan.json").read_text()
    with open_store(lab.store) as store:
        run = store.runs("pull-mix@sim", limit=1)[0]
        events = json.dumps([e.message for e in store.run_events(run.id)])
    calls = (
        (lab.sim.path / "calls.jsonl").read_text()
        if (lab.sim.path / "calls.jsonl").exists()
        else ""
    )
    for where, text in {
        "plan file": plan_file,
        "output": out + err,
        "run record": events,
        "server log": server_log(lab),
        "simulator command records": calls,
    }.items():
        assert CANARY_SITE not in text, where
        assert CANARY_NODE not in text, where
        assert "signing-key" not in text, where


def test_apply_uses_a_running_spec_server_which_reloads_on_sighup(lab: Lab, serving: Serving):
    assert len(serving.fingerprint) == 95  # 32 colon-separated pairs
    assert "edge" in serving.banner[2]
    code, out, err = run_cli(lab.args("apply", "-M", "n1-pull", "-H", "sim", "--yes"))
    assert code == 0, out + err
    assert "using the running spec server" in err
    code, out, err = run_cli(lab.args("destroy", "-M", "n1-pull", "-H", "sim", "--yes"))
    assert code == 0, out + err
    # A manifest added later is published after SIGHUP.
    late = lab.site / "manifests" / "late.yaml"
    text = (lab.site / "manifests" / "n1-pull.yaml").read_text()
    late.write_text(
        text.replace("name: n1-pull", "name: late").replace("name: edge", "name: late-edge")
    )
    try:
        serving.process.send_signal(signal.SIGHUP)
        from pveplan.executor.pull._client import PullClient

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with PullClient(serving.url, serving.fingerprint) as client:
                if "late-edge" in client.get_json("/specs")["specs"]:
                    break
            time.sleep(0.1)
        else:
            pytest.fail("SIGHUP did not reload the site config")
    finally:
        late.unlink()
    assert serving.stop() == 0  # SIGTERM: a graceful stop
    assert not (lab.store / "serve.json").exists()
