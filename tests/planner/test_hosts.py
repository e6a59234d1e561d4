"""Several hosts in one manifest (`host:` on a root node), without a simulator: the plan's
shape, validate's cluster-wide vmid rule, the host checks, and `--target-host`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pveplan.planner import destroy_plan, read_plan_file
from tests.cli_runner import run_cli

from .test_example_hashes import PINNED

TWO_HOSTS = """\
manifest "pair" {
  node "a" { type = "vm"  image = "debian-12"  vmid = 99301 }
  node "b" { type = "vm"  image = "debian-12"  vmid = 99302  host = "sim2" }
}
"""


def write(site: Path, name: str, text: str) -> str:
    (site / "manifests" / f"{name}.pvp").write_text(text)
    return name


def plan_json(site: Path, name: str, *extra: str) -> tuple[int, str, str]:
    return run_cli(
        ["plan", "-M", name, "-H", "sim", "--site-config", str(site), "--refresh=false", *extra]
    )


def test_one_plan_covers_both_hosts_with_each_hosts_own_storage_and_image(
    site: Path, tmp_path: Path
) -> None:
    name = write(site, "pair", TWO_HOSTS)
    out_file = tmp_path / "pair.json"
    code, out, err = plan_json(site, name, "-o", str(out_file))
    assert code == 0, err
    plan = read_plan_file(out_file).plan
    hosts = {s.address: s.host for s in plan.steps}
    assert plan.host == "sim"
    assert hosts["node.a.create"] == "sim" and hosts["image.debian-12.ensure"] == "sim"
    assert hosts["node.b.create"] == "sim2" and hosts["image.debian-12@sim2.ensure"] == "sim2"
    assert hosts["storage.local@sim2.content"] == "sim2"
    assert "+ vm b on sim2" in out and "+ vm a on sim" in out  # the text names each host
    b = plan.step("node.b.create")
    assert b.refs["volume"] == "image.debian-12@sim2.ensure#volid"
    # every step of a node runs on its host; a destroy plan tears each down there too
    assert {s.host for s in plan.steps if s.address.startswith("node.b.")} == {"sim2"}
    torn = destroy_plan(plan)
    assert {s.address: s.host for s in torn.steps} == {
        "node.b.destroy": "sim2",
        "node.a.destroy": "sim",
    }


def test_naming_the_target_host_is_the_same_as_naming_none(site: Path) -> None:
    """`host = "sim"` on every node with -H sim plans byte-for-byte what no `host` does:
    a single-host manifest keeps its plan hash (as the pinned examples show)."""
    text = (site / "manifests" / "n1-push.pvp").read_text()
    placed = text.replace("vmid = 99001", 'vmid = 99001\n    host = "sim"')
    assert placed != text
    (site / "manifests" / "n1-push.pvp").write_text(placed)
    code, out, err = run_cli(
        ["plan", "-M", "n1-push", "-H", "sim", "--site-config", str(site), "--json"]
    )
    assert code == 0, err
    assert json.loads(out)["plan"] == PINNED["n1-push"]


def test_validate_rejects_a_vmid_pinned_on_two_hosts_naming_both_positions(site: Path) -> None:
    text = TWO_HOSTS.replace("vmid = 99302", "vmid = 99301")
    name = write(site, "pair", text)
    code, _out, err = run_cli(["validate", "-M", name, "-H", "sim", "--site-config", str(site)])
    assert code == 1
    # the second node's vmid, then where the first one pins it
    assert "pair.pvp:3:" in err and "vmid 99301 of 'b' is already used by 'a'" in err
    assert "(on another host)" in err
    assert "'a' pins it at " in err and "pair.pvp:2:" in err


def test_a_host_on_a_child_and_an_unknown_host_are_errors_at_their_positions(
    site: Path,
) -> None:
    child = """\
manifest "nest" {
  pattern = "tiered"
  node "p" {
    type = "pve"  image = "pve-9"
    node "c" { type = "vm"  image = "debian-12"  host = "sim2" }
  }
}
"""
    name = write(site, "nest", child)
    code, _out, err = run_cli(["validate", "-M", name, "-H", "sim", "--site-config", str(site)])
    assert code == 1 and "node 'c' names host 'sim2' but has parent 'p'" in err
    name = write(site, "typo", TWO_HOSTS.replace('"sim2"', '"sim3"'))
    code, _out, err = run_cli(["validate", "-M", name, "-H", "sim", "--site-config", str(site)])
    assert code == 1
    assert "typo.pvp:3:" in err and "unknown host 'sim3'" in err and "did you mean" in err


def test_target_host_cuts_the_plan_to_that_hosts_nodes_and_warns(site: Path) -> None:
    name = write(site, "pair", TWO_HOSTS)
    code, out, err = plan_json(site, name, "--target-host", "sim2", "--json")
    assert code == 0, err
    assert "host targeting is in effect: only the nodes on sim2 (b)" in err
    assert "not considered" in err
    changed = {c["address"] for c in json.loads(out)["changes"]}
    assert "node.b.create" in changed and not any(a.startswith("node.a.") for a in changed)
    assert "image.debian-12.ensure" not in changed  # the target host's image: not needed


@pytest.mark.parametrize("verb", ["plan", "apply", "destroy"])
def test_an_unknown_target_host_exits_1_with_a_suggestion(site: Path, verb: str) -> None:
    name = write(site, "pair", TWO_HOSTS)
    code, out, err = run_cli(
        [verb, "-M", name, "-H", "sim", "--site-config", str(site), "--target-host", "simm2"]
        + (["-y"] if verb != "plan" else ["--refresh=false"])
    )
    assert code == 1, out + err
    assert "--target-host simm2" in err and "did you mean 'sim2'" in err
    assert "Traceback" not in err


def test_simulate_rehearses_every_host_a_node_names(site: Path, tmp_path: Path) -> None:
    """--simulate rehearses the hosts nodes name as it does -H's (`sim:mother`), never
    planning a step for the real machine; a node file that says `sim: true` keeps its name."""
    (site / "nodes" / "mother.yaml").write_text(
        'node: mother\nhost: mother\napi_endpoint: "https://10.0.12.62:8006"\n'
        "api_token: mother\ndatastore: local\n"
    )
    text = TWO_HOSTS.replace(
        "}\n}", '}\n  node "c" { type = "vm"  image = "debian-12"  host = "mother" }\n}'
    )
    name = write(site, "trio", text.replace('"pair"', '"trio"'))
    hosts = {}
    for flag in ((), ("--simulate",)):
        out_file = tmp_path / f"trio{len(flag)}.json"
        code, _out, err = plan_json(site, name, *flag, "-o", str(out_file))
        assert code == 0, err
        plan = read_plan_file(out_file).plan
        hosts[flag] = (plan.step("node.b.create").host, plan.step("node.c.create").host)
    assert hosts[()] == ("sim2", "mother")
    assert hosts[("--simulate",)] == ("sim2", "sim:mother")
