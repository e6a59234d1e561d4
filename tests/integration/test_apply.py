"""apply / re-apply / change / remove / destroy against the simulator, over real SSH."""

from __future__ import annotations

import json
import re

import msgspec
import trio

from pveplan.store import open_store
from tests.cli_runner import run_cli

from .conftest import Lab

SPECLESS = """
manifest "{name}" {{
  pattern = "flat"
  settings = {{ on_error = "{on_error}", parallelism = {parallelism} }}
  for i in range(1, {count} + 1) {{
    node "{prefix}-${{i}}" {{
      type = "vm"
      preset = "vm-xsmall"
      image = "debian-13"
      vmid = {base} + i
      {extra}
    }}
  }}
}}
"""


def specless(
    name: str,
    count: int,
    base: int,
    *,
    prefix: str = "w",
    on_error: str = "stop",
    parallelism: int = 10,
    extra: str = "",
) -> str:
    return SPECLESS.format(
        name=name,
        count=count,
        base=base,
        prefix=prefix,
        on_error=on_error,
        parallelism=parallelism,
        extra=extra,
    )


def counts(output: str) -> dict[str, int]:
    """The numbers of the run summary line ("3 ran, 17 cached, 0 failed ...")."""
    found = dict(
        (k, int(v))
        for v, k in re.findall(r"(\d+) (ran|cached|failed|skipped|removed|rolled back)", output)
    )
    return found


def resources(lab: Lab, workspace: str) -> dict[str, dict]:
    with open_store(lab.store) as store:
        return {r.address: dict(r.outputs) for r in store.resources(workspace)}


def last_run_events(lab: Lab, workspace: str) -> list:
    with open_store(lab.store) as store:
        run = store.runs(workspace, limit=1)[0]
        return [e for e in store.run_events(run.id) if e.kind != "log"]


def ssh_hostname(lab: Lab, workspace: str, node: str) -> str:
    """Log in to `node` with the host key pinned at its creation; its hostname."""
    from pveplan.executor._bridge import open_loop
    from pveplan.executor.channels import SshPool, SshTarget
    from pveplan.sim import daemon_info

    res = resources(lab, workspace)[f"node.{node}.create"]
    vm = next(v for v in lab.vms() if v["name"] == node)
    port = daemon_info(lab.sim)["port"]
    key = (lab.root / "config" / "pveplan" / "driver_ed25519").read_bytes()

    async def main() -> str:
        async with open_loop(), SshPool(key) as pool:
            target = SshTarget(
                host=vm["address"],
                port=port,
                user="homestak",
                host_key=str(res["host_key"]),
                name=node,
            )
            channel = await pool.channel(target)
            result = await channel.run(["true"], timeout=10)
            assert result.exit_status == 0
            data = await channel.get_file("/etc/hostname")  # SFTP: inside the VM's tree
            return (data or b"").decode().strip()

    return trio.run(main)


def test_n1_push_apply_reapply_destroy(lab: Lab) -> None:
    code, out, err = run_cli(lab.args("apply", "-M", "n1-push", "-H", "sim", "--yes"))
    assert code == 0, out + err
    assert counts(out)["failed"] == 0
    vms = lab.vms("n1-push")
    assert [(v["name"], v["status"]) for v in vms] == [("edge", "running")]
    assert vms[0]["address"].startswith("127.")
    # the config step ran over SSH: the packages the spec names are installed, as is
    # the timezone of the spec
    guest = lab.sim.vm_dir("sim", 99001) / "var" / "lib" / "sim"
    assert {"htop", "curl", "jq"} <= set(json.loads((guest / "packages.json").read_text()))
    code, out2, err2 = run_cli(lab.args("apply", "-M", "n1-push", "-H", "sim", "--yes"))
    assert code == 0, out2 + err2
    assert counts(out2)["ran"] == 0 and counts(out2)["cached"] >= 6

    code, out3, err3 = run_cli(lab.args("destroy", "-M", "n1-push", "-H", "sim", "--yes"))
    assert code == 0, out3 + err3
    assert lab.vms("n1-push") == []
    assert resources(lab, "n1-push@sim") == {}


def test_a_no_op_apply_of_a_really_applied_store_reuses_every_step_and_reaches_no_host(
    lab: Lab,
) -> None:
    """The no-op path (steps settled from the store without a task each, SSH and HTTP
    libraries never loaded) on a store a real apply filled: every step cached, the same
    outputs recorded, and not one command sent to the host."""
    name = lab.manifest("noop-real", specless("noop-real", 3, 89600, prefix="q"))
    code, out, err = run_cli(lab.args("apply", "-M", name, "-H", "sim", "--yes"))
    assert code == 0, out + err
    steps = counts(out)["ran"] + counts(out).get("cached", 0)  # the image may be there
    before = resources(lab, f"{name}@sim")
    since = len(lab.sim.calls.read_text().splitlines())
    code, out2, err2 = run_cli(
        lab.args("apply", "-M", name, "-H", "sim", "--yes", "--refresh=false")
    )
    assert code == 0, out2 + err2
    assert counts(out2)["ran"] == 0 and counts(out2)["cached"] == steps
    assert [e.kind for e in last_run_events(lab, f"{name}@sim")] == ["cached"] * steps
    assert resources(lab, f"{name}@sim") == before
    assert lab.sim.calls.read_text().splitlines()[since:] == []
    code, out3, err3 = run_cli(lab.args("destroy", "-M", name, "-H", "sim", "--yes"))
    assert code == 0, out3 + err3


def test_twenty_workers_change_one_remove_one(lab: Lab) -> None:
    name = lab.manifest("twenty", specless("twenty", 20, 91000))
    code, out, err = run_cli(lab.args("apply", "-M", name, "-H", "sim", "--yes"))
    assert code == 0, out + err
    vms = lab.vms(name)
    assert len(vms) == 20 and all(v["status"] == "running" for v in vms)
    assert ssh_hostname(lab, f"{name}@sim", "w-7") == "w-7"

    code, out, err = run_cli(lab.args("apply", "-M", name, "-H", "sim", "--yes"))
    assert code == 0 and counts(out)["ran"] == 0, out + err

    # one worker's memory changes: exactly that worker's steps run
    text = specless("twenty", 20, 91000, extra="memory = if i == 7 then 2048 else 1024")
    lab.manifest(name, text)
    code, out, err = run_cli(lab.args("apply", "-M", name, "-H", "sim", "--yes", "-v"))
    assert code == 0, out + err
    ran = set(re.findall(r"✓ (node\.[\w-]+\.\w+)", out))
    assert ran and all(a.startswith("node.w-7.") for a in ran), ran
    vm7 = next(v for v in lab.vms(name) if v["name"] == "w-7")
    assert str(vm7["config"]["memory"]).endswith("2048")

    # one worker removed: it is destroyed, nothing else runs
    lab.manifest(name, text.replace("range(1, 20 + 1)", "range(1, 19 + 1)"))
    code, out, err = run_cli(lab.args("apply", "-M", name, "-H", "sim", "--yes"))
    assert code == 0, out + err
    assert counts(out)["removed"] == 1 and counts(out)["ran"] == 0, out
    assert sorted(v["name"] for v in lab.vms(name)) == sorted(f"w-{i}" for i in range(1, 20))

    code, out, err = run_cli(lab.args("destroy", "-M", name, "-H", "sim", "--yes"))
    assert code == 0, out + err
    assert lab.vms(name) == []


def test_lost_store_adopts_existing_vms(lab: Lab) -> None:
    name = lab.manifest("adopt", specless("adopt", 2, 92000))
    code, out, err = run_cli(lab.args("apply", "-M", name, "-H", "sim", "--yes"))
    assert code == 0, out + err
    before = {v["name"]: (v["vmid"], v["config"]["vmgenid"]) for v in lab.vms(name)}
    for path in lab.store.glob("store.sqlite*"):
        path.unlink()
    code, out, err = run_cli(lab.args("apply", "-M", name, "-H", "sim", "--yes", "-v"))
    assert code == 0, out + err
    assert "adopting" in out
    after = {v["name"]: (v["vmid"], v["config"]["vmgenid"]) for v in lab.vms(name)}
    assert after == before  # the same VMs, none duplicated or re-created
    assert ssh_hostname(lab, f"{name}@sim", "w-1") == "w-1"
    code, out, err = run_cli(lab.args("destroy", "-M", name, "-H", "sim", "--yes"))
    assert code == 0 and lab.vms(name) == [], out + err


def test_refresh_repairs_drift(lab: Lab) -> None:
    import subprocess

    name = lab.manifest("drift", specless("drift", 2, 93000))
    assert run_cli(lab.args("apply", "-M", name, "-H", "sim", "--yes"))[0] == 0
    qm = str(lab.sim.host_dir("sim") / "bin" / "qm")
    subprocess.run([qm, "stop", "93001"], check=True, capture_output=True)
    subprocess.run([qm, "stop", "93002"], check=True, capture_output=True)
    subprocess.run([qm, "destroy", "93002"], check=True, capture_output=True)
    code, out, err = run_cli(lab.args("apply", "-M", name, "-H", "sim", "--yes", "--refresh=false"))
    assert code == 0 and counts(out)["ran"] == 0, "with --refresh=false the store is trusted"
    code, out, err = run_cli(lab.args("apply", "-M", name, "-H", "sim", "--yes", "--refresh", "-v"))
    assert code == 0, out + err
    # The plan's listing probe saw both (the per-step probes of bare --refresh agree).
    assert "~ vm w-1  status: stopped (live) -> running (manifest)" in out
    assert "+ vm w-2  (missing on host: destroyed outside pveplan)" in out
    assert sorted((v["name"], v["status"]) for v in lab.vms(name)) == [
        ("w-1", "running"),
        ("w-2", "running"),
    ]
    assert run_cli(lab.args("destroy", "-M", name, "-H", "sim", "--yes"))[0] == 0


def test_on_error_stop_rollback_continue(lab: Lab) -> None:
    for policy, base in (("stop", 94000), ("rollback", 94100), ("continue", 94200)):
        name = lab.manifest(
            f"err-{policy}", specless(f"err-{policy}", 3, base, on_error=policy, parallelism=1)
        )
        lab.set_sim_config(
            faults=[{"op": "start", "vmid": base + 1, "message": "simulated start failure"}]
        )
        code, out, err = run_cli(lab.args("apply", "-M", name, "-H", "sim", "--yes"))
        assert code == 1, (policy, out, err)
        assert "node.w-1.start: task qmstart failed: simulated start failure" in err, err
        vms = {v["name"]: v["status"] for v in lab.vms(name)}
        if policy == "stop":
            assert counts(out)["skipped"] > 0 and vms.get("w-1") == "stopped", vms
            kinds = [e.kind for e in last_run_events(lab, f"{name}@sim")]
            assert "started" not in kinds[kinds.index("failed") :], kinds  # nothing new began
        elif policy == "rollback":
            assert vms == {}, vms
            assert resources(lab, f"{name}@sim") == {}
            assert counts(out)["rolled back"] == 3
        else:
            assert vms == {"w-1": "stopped", "w-2": "running", "w-3": "running"}, vms
        lab.set_sim_config(faults=[])
        assert run_cli(lab.args("destroy", "-M", name, "-H", "sim", "--yes"))[0] == 0
        assert lab.vms(name) == []


def test_wrong_host_key_is_refused(lab: Lab) -> None:
    name = lab.manifest(
        "badkey",
        specless("badkey", 1, 95000).replace(
            'preset = "vm-xsmall"', 'preset = "vm-xsmall"\n      spec = "base"'
        ),
    )
    lab.set_sim_config(faults=[{"op": "host_key", "vmid": 95001}])
    code, _out, err = run_cli(lab.args("apply", "-M", name, "-H", "sim", "--yes"))
    assert code == 1
    assert "does not match the key pinned at creation" in err, err
    lab.set_sim_config(faults=[])
    assert run_cli(lab.args("destroy", "-M", name, "-H", "sim", "--yes"))[0] == 0


def test_test_verb_json_output_and_runs(lab: Lab) -> None:
    name = lab.manifest("verbs", specless("verbs", 2, 96000))
    code, out, err = run_cli(lab.args("test", "-M", name, "-H", "sim", "--json-output"))
    assert code == 0, out + err
    report = msgspec.json.decode(out)
    assert report["verb"] == "test" and report["success"] is True
    assert isinstance(report["duration_seconds"], float)
    assert sorted(n["name"] for n in report["nodes"]) == ["w-1", "w-2"]
    for node in report["nodes"]:
        assert (
            node["status"] == "completed"  # iac-driver's word; `test` reports the create
            and node["vm_id"] in (96001, 96002)
            and node["ip"].startswith("127.")
        )
        assert set(node) == {"name", "status", "vm_id", "ip", "duration", "error"}
    assert lab.vms(name) == []  # test destroys what it created

    code, out, _ = run_cli(["runs", "list", "--workspace", f"{name}@sim"])
    assert code == 0 and "destroy" in out and "apply" in out
    run_id = out.split()[0]
    code, out, _ = run_cli(["runs", "show", run_id])
    assert code == 0 and "finished" in out


def test_retired_scenario_names() -> None:
    code, _, err = run_cli(["nested-pve-roundtrip", "-H", "sim"])
    assert code == 1 and "pveplan test" in err
    code, _, err = run_cli(["vm-constructor"])
    assert code == 1 and "pveplan create" in err
