"""One manifest on two simulated PVE hosts (`host:` on a root node; nodes/sim2.yaml of the
examples): one plan covers both, their steps run at once, the store records the workspace
as it does for one host, `--target-host` keeps to one host, and destroy removes all, with
what its search finds unrecorded on either host."""

from __future__ import annotations

import subprocess

import pytest

from pveplan.store import open_store
from tests.cli_runner import run_cli

from .conftest import Lab
from .test_apply import counts

pytestmark = pytest.mark.slow

WORKSPACE = "two-host-lab@sim"
MANIFEST = """\
manifest "two-host-lab" {
  node "th-a" { type = "vm"  preset = "vm-xsmall"  image = "debian-12"  vmid = 97801 }
  node "th-b" { type = "vm"  preset = "vm-xsmall"  image = "debian-12"  vmid = 97802  host = "sim2" }
  node "th-c" { type = "vm"  preset = "vm-xsmall"  image = "debian-12"  host = "sim2" }
}
"""


def _placed(lab: Lab, name: str) -> dict[str, str]:
    """VM name -> the simulated host it is on."""
    return {v["config"]["name"]: v["node"] for v in lab.vms(name)}


def _last_run_events(lab: Lab) -> list:
    with open_store(lab.store) as store:
        run = store.runs(WORKSPACE, limit=1)[0]
        return list(store.run_events(run.id))


def _spans(events: list) -> dict[str, tuple[str, float, float]]:
    """address -> (host, started, finished) of every step the run ran."""
    started = {e.address: e.at for e in events if e.kind == "started"}
    return {
        e.address: (e.host, started[e.address], e.at)
        for e in events
        if e.kind == "finished" and e.address in started
    }


def test_a_manifest_on_two_hosts_applies_in_parallel_targets_one_host_and_destroys(
    lab: Lab,
) -> None:
    name = lab.manifest("two-host-lab", MANIFEST)
    base = ["-M", name, "-H", "sim"]

    code, out, err = run_cli(lab.args("apply", *base, "-y"))
    assert code == 0, out + err
    assert _placed(lab, name) == {"th-a": "sim", "th-b": "sim2", "th-c": "sim2"}
    spans = _spans(_last_run_events(lab))
    assert {host for host, _, _ in spans.values()} == {"sim", "sim2"}
    # Steps on the two hosts overlapped in time: some step on sim ran while one on sim2 did.
    on = {h: [(a, b) for host, a, b in spans.values() if host == h] for h in ("sim", "sim2")}
    assert any(a1 < b2 and a2 < b1 for a1, b1 in on["sim"] for a2, b2 in on["sim2"]), spans

    # Applied again: nothing runs, on either host.
    code, out, err = run_cli(lab.args("apply", *base, "-y"))
    assert code == 0, out + err
    assert counts(out)["ran"] == 0 and counts(out)["cached"] > 0

    # --target-host sim2: only sim2's nodes are destroyed, then made again; sim untouched.
    with open_store(lab.store) as store:
        applied = store.applied(WORKSPACE)
    code, out, err = run_cli(lab.args("destroy", *base, "--target-host", "sim2", "-y"))
    assert code == 0, out + err
    assert "host targeting is in effect" in err
    assert _placed(lab, name) == {"th-a": "sim"}
    assert {e.host for e in _last_run_events(lab) if e.kind == "finished"} == {"sim2"}
    code, out, err = run_cli(lab.args("apply", *base, "--target-host", "sim2", "-y"))
    assert code == 0, out + err
    assert _placed(lab, name) == {"th-a": "sim", "th-b": "sim2", "th-c": "sim2"}
    assert {e.host for e in _last_run_events(lab) if e.kind in ("started", "finished")} == {"sim2"}
    with open_store(lab.store) as store:
        assert store.applied(WORKSPACE) == applied  # a partial view records nothing

    # Status probes each host once and finds every node in sync; preflight checks each host.
    code, out, err = run_cli(lab.args("status", *base))
    assert code == 0, out + err
    assert "3 in sync" in out
    code, out, err = run_cli(lab.args("preflight", *base))
    assert code == 0, out + err
    assert "two-host-lab on sim," in out and "two-host-lab on sim2," in out

    # A VM of this manifest the store never recorded, on sim2: destroy's search lists every
    # host the manifest's nodes are on, so it is found (by its tag) and destroyed too.
    qm = str(lab.sim.host_dir("sim2") / "bin" / "qm")
    tags = "pveplan;pveplan-two-host-lab"
    subprocess.run([qm, "create", "97899", "--name", "stray", "--tags", tags], check=True)
    code, out, err = run_cli(lab.args("destroy", *base, "-y"))
    assert code == 0, out + err
    assert "on sim, sim2 that the store did not record" in out and "97899 stray" in out
    assert lab.vms(name) == []
    with open_store(lab.store) as store:
        assert store.applied(WORKSPACE) is None and store.resources(WORKSPACE) == ()
