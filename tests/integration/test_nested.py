"""Nested PVE hosts: subtrees shipped as subplans to real remote executors, over real SSH.

Each nested host is a simulated VM on which `pve.install` installed PVE, so it runs its
own `pvesh` and guests; the driver ships it the pveplan bundle and runs `pveplan executor
--stdio` there (as root, in the VM's own directory, with its own store).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import yaml

from pveplan.sim import read_state
from pveplan.store import open_store
from tests.cli_runner import run_cli

from .conftest import Lab
from .test_apply import counts


def deep(name: str, levels: int, base: int, *, leaf_memory: int = 1024) -> str:
    """A tiered manifest: `levels` pve hosts in a chain, and one VM at the bottom."""
    nodes = []
    for level in range(levels):
        nodes.append(
            {
                "name": f"pve{level + 1}",
                "type": "pve",
                "spec": "pve",
                "preset": "vm-medium",
                "image": "pve-9",
                "vmid": base + level,
                **({"parent": f"pve{level}"} if level else {}),
            }
        )
    nodes.append(
        {
            "name": "leaf",
            "type": "vm",
            "spec": "base",
            "preset": "vm-small",
            "memory": leaf_memory,
            "image": "debian-12",
            "vmid": base + levels,
            "parent": f"pve{levels}",
        }
    )
    return yaml.safe_dump(
        {"schema_version": 2, "name": name, "pattern": "tiered", "nodes": nodes}, sort_keys=False
    )


def write_yaml(lab: Lab, name: str, text: str) -> str:
    (lab.site / "manifests" / f"{name}.yaml").write_text(text)
    return name


def level_counts(lab: Lab, workspace: str) -> dict[str, Counter]:
    """Per level of the last run ("sim", "pve1", "pve1 › pve2", ...): steps by outcome."""
    with open_store(lab.store) as store:
        run = store.runs(workspace, limit=1)[0]
        events = store.run_events(run.id)
    found: dict[str, Counter] = {}
    for event in events:
        if event.kind in ("finished", "cached", "failed", "skipped"):
            found.setdefault(event.host, Counter())[event.kind] += 1
    return found


def ran_steps(lab: Lab, workspace: str) -> dict[str, set[str]]:
    with open_store(lab.store) as store:
        run = store.runs(workspace, limit=1)[0]
        events = store.run_events(run.id)
    found: dict[str, set[str]] = {}
    for event in events:
        if event.kind == "finished":
            found.setdefault(event.host, set()).add(event.address)
    return found


def nested_hosts(lab: Lab) -> set[str]:
    return {n for n, info in read_state(lab.sim)["nodes"].items() if info.get("vmid")}


def test_n2_tiered_test_verb_reaches_every_node_and_cleans_up(lab: Lab) -> None:
    code, out, err = run_cli(
        lab.args("test", "-M", "n2-tiered", "-H", "sim", "--json-output", "--yes")
    )
    assert code == 0, out + err
    report = json.loads(out)
    assert report["success"] is True
    by_name = {n["name"]: n for n in report["nodes"]}
    assert set(by_name) == {"root-pve", "edge"}
    assert by_name["edge"]["vm_id"] == 99021 and by_name["edge"]["ip"].startswith("127.")
    assert lab.vms("n2-tiered") == []
    assert "root-pve" not in nested_hosts(lab)


def test_n3_deep_reapply_is_cached_and_a_leaf_change_runs_only_down_its_chain(lab: Lab) -> None:
    name = write_yaml(lab, "deep3", deep("deep3", 2, 97010))
    code, out, err = run_cli(lab.args("apply", "-M", name, "-H", "sim", "--yes"))
    assert code == 0, out + err
    vms = {v["name"]: v for v in lab.vms(name)}
    assert {n: (v["node"], v["status"]) for n, v in vms.items()} == {
        "pve1": ("sim", "running"),
        "pve2": ("pve1", "running"),
        "leaf": ("pve2", "running"),
    }
    # every level ran against its own store, in the VM's own directory
    remote = lab.sim.vm_dir("sim", 97010) / "root" / ".pveplan" / "store"
    with open_store(remote) as store:
        assert store.runs(f"{name}@pve1", limit=1)[0].status == "ok"

    code, out, err = run_cli(lab.args("apply", "-M", name, "-H", "sim", "--yes"))
    assert code == 0, out + err
    assert counts(out)["ran"] == 0
    levels = level_counts(lab, f"{name}@sim")
    assert set(levels) == {"sim", "pve1", "pve1 › pve2"}
    assert all(c["finished"] == 0 and c["cached"] > 0 for c in levels.values()), levels

    write_yaml(lab, name, deep("deep3", 2, 97010, leaf_memory=1536))
    code, plan_out, err = run_cli(lab.args("plan", "-M", name, "-H", "sim"))
    assert code == 0, plan_out + err
    # the changed leaf is the one change shown, under the two hosts above it; the delegates
    # and the leaf's later steps are summed up as its dependents
    changed = [
        line.strip() for line in plan_out.splitlines() if line.strip()[:2] in ("~ ", "+ ", "- ")
    ]
    assert changed == [
        "~ vm pve1 › pve2 › leaf (memory)",
        "~ node.leaf.create  pve.vm.create",
    ], plan_out
    assert "pve1 ›" in plan_out and "pve2 ›" in plan_out
    assert "dependent steps" in plan_out, plan_out
    code, out, err = run_cli(lab.args("apply", "-M", name, "-H", "sim", "--yes"))
    assert code == 0, out + err
    ran = ran_steps(lab, f"{name}@sim")
    assert {level: ran[level] for level in ("sim", "pve1")} == {
        "sim": {"node.pve1.delegate"},
        "pve1": {"node.pve2.delegate"},
    }, ran
    assert set(ran) == {"sim", "pve1", "pve1 › pve2"}
    assert "node.leaf.create" in ran["pve1 › pve2"]
    assert all(a.startswith("node.leaf.") for a in ran["pve1 › pve2"]), ran
    leaf = next(v for v in lab.vms(name) if v["name"] == "leaf")
    assert str(leaf["config"]["memory"]).endswith("1536")
    # the remote levels' logs are in the driver's run record
    with open_store(lab.store) as store:
        run_id = store.runs(f"{name}@sim", limit=1)[0].id
    code, shown, err = run_cli(["runs", "show", str(run_id)])
    assert code == 0 and "pve1 › pve2" in shown and "node.leaf.create" in shown, shown + err

    code, out, err = run_cli(lab.args("destroy", "-M", name, "-H", "sim", "--yes"))
    assert code == 0, out + err
    assert lab.vms(name) == []
    assert not {"pve1", "pve2"} & nested_hosts(lab)


def test_seed_n3_deep_yaml_test_verb(lab: Lab) -> None:
    manifest = str(lab.site / "manifests" / "n3-deep.yaml")
    code, out, err = run_cli(
        lab.args("test", "--manifest-file", manifest, "-H", "sim", "--json-output", "--yes")
    )
    assert code == 0, out + err
    report = json.loads(out)
    assert [(n["name"], n["status"]) for n in report["nodes"]] == [
        ("root-pve", "completed"),
        ("leaf-pve", "completed"),
        ("edge", "completed"),
    ]
    assert lab.vms("n3-deep") == []
    assert not {"root-pve", "leaf-pve"} & nested_hosts(lab)


def test_four_levels_work_like_two(lab: Lab) -> None:
    name = write_yaml(lab, "deep4", deep("deep4", 3, 96010))
    code, out, err = run_cli(lab.args("test", "-M", name, "-H", "sim", "--json-output", "--yes"))
    assert code == 0, out + err
    report = json.loads(out)
    assert {n["name"] for n in report["nodes"]} == {"pve1", "pve2", "pve3", "leaf"}
    assert all(n["status"] == "completed" for n in report["nodes"])
    assert lab.vms(name) == []


def _secret_values(lab: Lab) -> list[str]:
    values: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, str) and len(node) >= 8:
            values.append(node)

    walk(yaml.safe_load((lab.site / "secrets.yaml").read_text()))
    for line in (lab.root / "config" / "pveplan" / "driver_ed25519").read_text().splitlines():
        if len(line) > 20 and "PRIVATE KEY" not in line:
            values.append(line)
    return values


def test_secrets_shipped_down_never_reach_a_command_line_or_a_log(lab: Lab) -> None:
    name = write_yaml(lab, "secret2", deep("secret2", 1, 95010))
    # This run's commands only: the session's lab also ran other tests' (a container's
    # create names its root's public keys, which PVE's lxc API takes as text).
    before = len(lab.sim.processes.read_text()) if lab.sim.processes.exists() else 0
    code, out, err = run_cli(lab.args("apply", "-M", name, "-H", "sim", "--yes", "-v"))
    assert code == 0, out + err
    shipped = lab.sim.vm_dir("sim", 95010) / "root" / ".pveplan" / "site-config"
    copied = yaml.safe_load((shipped / "secrets.yaml").read_text())
    # of the site's API tokens none goes down: only the host's own, made for it
    own = copied["api_tokens"]
    assert list(own) == ["pve1"] and own["pve1"].startswith("pveplan@pve!pveplan="), own.keys()
    assert copied.get("ssh_keys")
    assert oct((shipped / "secrets.yaml").stat().st_mode & 0o777) == "0o600"
    next_hop = (lab.sim.vm_dir("sim", 95010) / "root" / ".ssh" / "id_ed25519").read_text()
    secrets = [
        *_secret_values(lab),
        *[x for x in next_hop.splitlines() if len(x) > 20][1:-1],
        own["pve1"].partition("=")[2],
    ]
    commands = lab.sim.processes.read_text()[before:]
    with open_store(lab.store) as store:
        run = store.runs(f"{name}@sim", limit=1)[0]
        logged = "\n".join(e.message for e in store.run_events(run.id))
    for value in secrets:
        assert value not in commands
        assert value not in logged
        assert value not in out + err
    code, out, err = run_cli(lab.args("destroy", "-M", name, "-H", "sim", "--yes"))
    assert code == 0, out + err


def _api_calls(lab: Lab, since: int) -> list[dict]:
    lines = lab.sim.calls.read_text().splitlines()[since:]
    return [c for c in map(json.loads, lines) if c["tool"] == "api"]


def test_a_nested_level_is_reached_with_its_own_least_privilege_token_over_https(
    lab: Lab,
) -> None:
    """pve.api_token makes pveplan@pve's privilege-separated token with exactly the
    PVEPlan role on the nested host; its executor then calls PVE there over HTTPS with it,
    the certificate pinned in its node file from /etc/pve/local/pve-ssl.pem."""
    from pveplan.executor.pve._privileges import ROLE
    from pveplan.sim import api_endpoint
    from tests.sim.test_https import connect, request

    name = write_yaml(lab, "token2", deep("token2", 1, 91010))
    since = len(lab.sim.calls.read_text().splitlines()) if lab.sim.calls.exists() else 0
    code, out, err = run_cli(lab.args("apply", "-M", name, "-H", "sim", "--yes"))
    assert code == 0, out + err
    shipped = lab.sim.vm_dir("sim", 91010) / "root" / ".pveplan" / "site-config"
    token = yaml.safe_load((shipped / "secrets.yaml").read_text())["api_tokens"]["pve1"]
    node_file = yaml.safe_load((shipped / "nodes" / "pve1.yaml").read_text())
    endpoint = api_endpoint(lab.sim, "pve1")
    assert node_file["api_fingerprint"] == endpoint.fingerprint
    assert node_file["ssh_host_key"]  # snippet files still go over SSH

    calls = [c for c in _api_calls(lab, since) if c["node"] == "pve1"]
    assert {c["user"] for c in calls} == {"pveplan@pve!pveplan"}, calls[:3]
    assert all(c["status"] == 200 for c in calls), [c for c in calls if c["status"] != 200]
    made = [(c["method"], c["path"]) for c in calls]
    assert ("POST", "/nodes/{node}/qemu") in made  # the leaf, created through the API
    pvesh_on_pve1 = [
        c
        for c in map(json.loads, lab.sim.calls.read_text().splitlines()[since:])
        if c["tool"] != "api" and c["node"] == "pve1"
    ]
    assert not [c for c in pvesh_on_pve1 if "qemu" in " ".join(c["argv"])], pvesh_on_pve1

    conn = connect(endpoint)
    try:
        status, _, body = request(conn, "GET", "/access/permissions", token=token)
    finally:
        conn.close()
    assert status == 200, body
    assert body["data"]["/"] == dict.fromkeys(ROLE, 1)
    assert all(set(privs) == set(ROLE) for privs in body["data"].values()), body["data"]
    code, out, err = run_cli(lab.args("destroy", "-M", name, "-H", "sim", "--yes"))
    assert code == 0, out + err


def test_destroy_succeeds_when_the_nested_host_is_already_gone(lab: Lab) -> None:
    name = write_yaml(lab, "gone2", deep("gone2", 1, 94010))
    code, out, err = run_cli(lab.args("apply", "-M", name, "-H", "sim", "--yes"))
    assert code == 0, out + err
    qm = lab.sim.host_dir("sim") / "bin" / "qm"
    subprocess.run([str(qm), "stop", "94010"], check=True, capture_output=True)
    subprocess.run([str(qm), "destroy", "94010"], check=True, capture_output=True)
    assert lab.vms(name) == []  # the nested VM died with its host
    code, out, err = run_cli(lab.args("destroy", "-M", name, "-H", "sim", "--yes"))
    assert code == 0, out + err


def _apply_in_background(lab: Lab, name: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "PVEPLAN_STORE": str(lab.store),
        "XDG_CONFIG_HOME": str(lab.root / "config"),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pveplan.cli",
            *lab.args("apply", "-M", name, "-H", "sim", "--yes"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _executor_pids(lab: Lab, since: int) -> list[int]:
    if not lab.sim.processes.exists():
        return []
    records = [json.loads(line) for line in lab.sim.processes.read_text().splitlines()[since:]]
    return [r["pid"] for r in records if "executor --stdio" in r["command"]]


@pytest.mark.parametrize("cut", ["kill-executor", "drop-ssh"])
def test_a_lost_remote_is_reported_within_seconds_and_the_rerun_completes(
    lab: Lab, cut: str
) -> None:
    from pveplan.sim import stop_daemon

    name = write_yaml(lab, f"cut-{cut}", deep(f"cut-{cut}", 1, 93010 if cut[0] == "k" else 93020))
    lab.set_sim_config(agent_delay=4.0)  # the nested level's VM takes its time to boot
    since = len(lab.sim.processes.read_text().splitlines()) if lab.sim.processes.exists() else 0
    apply = _apply_in_background(lab, name)
    try:
        deadline = time.monotonic() + 120
        pids: list[int] = []
        while not pids and time.monotonic() < deadline and apply.poll() is None:
            time.sleep(0.2)
            pids = _executor_pids(lab, since)
        assert pids, "the remote executor never started"
        time.sleep(1.0)  # mid-run: the nested VM is being created or waited for
        cut_at = time.monotonic()
        if cut == "kill-executor":
            os.killpg(pids[0], signal.SIGKILL)
        else:
            stop_daemon(lab.sim)
        output, _ = apply.communicate(timeout=60)
        reported = time.monotonic() - cut_at
    finally:
        if apply.poll() is None:
            apply.kill()
    assert apply.returncode != 0
    assert reported < 10, reported
    assert re.search(r"executor on pve1|lost|pve1", output), output
    lab.set_sim_config(agent_delay=0.0)
    code, out, err = run_cli(lab.args("apply", "-M", name, "-H", "sim", "--yes"))
    assert code == 0, out + err
    names = [v["name"] for v in lab.vms(name)]
    assert sorted(names) == ["leaf", "pve1"], names  # no duplicates
    code, out, err = run_cli(lab.args("destroy", "-M", name, "-H", "sim", "--yes"))
    assert code == 0, out + err


def test_rollback_unwinds_the_nested_level_first(lab: Lab) -> None:
    text = deep("roll2", 1, 92010).replace(
        "pattern: tiered", "pattern: tiered\nsettings:\n  on_error: rollback"
    )
    name = write_yaml(lab, "roll2", text)
    lab.set_sim_config(
        faults=[{"op": "start", "name": "leaf", "message": "simulated start failure"}]
    )
    code, out, err = run_cli(lab.args("apply", "-M", name, "-H", "sim", "--yes"))
    assert code != 0
    assert "pve1 › node.leaf" in out + err, out + err
    assert lab.vms(name) == []
    lab.set_sim_config(faults=[])
