"""`-target NODE`: the cut plan holds the target, what it needs and its hosts, nothing else.

Pure planner tests (plans compiled from manifests, cut, checked) and the CLI's handling
of the flag with `plan --against` standing in for an applied plan; the targeted apply
and destroy on the simulator, nested executor included, is
tests/integration/test_targeting.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pveplan.dsl import Manifest, load_manifest
from pveplan.planner import (
    PlanError,
    check_targets,
    destroy_plan,
    read_plan_file,
    target_plan,
    verify_plan,
)
from pveplan.planner._planning import build_plan_file
from pveplan.planner._target import node_names
from pveplan.planner.siteconfig import load_site_config, resolve_manifest
from tests._tiers import examples
from tests.cli_runner import run_cli

from ..manifest_strategies import manifests
from .test_compile import compile_manifest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "site-config"

LAB = """\
manifest "tlab" {
  pattern = "tiered"
  node "host" {
    type = "pve"  spec = "pve"  preset = "vm-large"  image = "pve-9"  vmid = 97601
    node "inner-a" { type = "vm"  spec = "base"  preset = "vm-small"  image = "debian-12"  vmid = 97611  memory = MEM_A }
    node "inner-b" { type = "vm"  spec = "base"  preset = "vm-small"  image = "debian-12"  vmid = 97612 }
  }
  node "flat" { type = "vm"  spec = "base"  preset = "vm-small"  image = "debian-12"  vmid = 97602  memory = MEM_F }
}
"""


def lab_plan(tmp_path: Path, mem_a: int = 1024, mem_f: int = 1024):
    path = tmp_path / f"tlab-{mem_a}-{mem_f}.pvp"
    path.write_text(LAB.replace("MEM_A", str(mem_a)).replace("MEM_F", str(mem_f)))
    site = load_site_config(EXAMPLES)
    loaded = load_manifest(str(path))
    resolved = resolve_manifest(loaded, site, "sim")
    return build_plan_file(loaded, resolved, site, "sim", planned_against=None).plan


def _nodes_at(plan) -> dict[str, list[str]]:
    """Level (its host) -> the node names with steps there."""
    out: dict[str, list[str]] = {}
    for path, step in plan.walk():
        parts = step.address.split(".")
        if parts[0] == "node":
            level = path[-1].split(".")[1] if path else plan.host
            names = out.setdefault(level, [])
            if parts[1] not in names:
                names.append(parts[1])
    return out


def test_a_nested_target_keeps_its_host_and_what_it_needs_only(tmp_path: Path) -> None:
    plan = lab_plan(tmp_path)
    cut = target_plan(plan, ["inner-a"])
    assert _nodes_at(cut) == {"sim": ["host"], "host": ["inner-a"]}
    assert verify_plan(cut) == []
    (subplan,) = cut.subplans.values()
    assert cut.targets == subplan.targets == ("inner-a",)
    # What inner-a's steps need on its level stays: the image and storage they use.
    addresses = {s.address for s in subplan.steps}
    assert {"image.debian-12.ensure", "node.inner-a.create"} <= addresses
    # Every kept step but the delegate keeps its hash: its cached results still count.
    before = {(p, s.address): s.hash for p, s in plan.walk()}
    for path, step in cut.walk():
        if step.kind != "subplan.delegate":
            assert before[(path, step.address)] == step.hash, step.address


def test_a_pve_host_target_keeps_its_whole_subtree(tmp_path: Path) -> None:
    plan = lab_plan(tmp_path)
    cut = target_plan(plan, ["host"])
    assert _nodes_at(cut) == {"sim": ["host"], "host": ["inner-a", "inner-b"]}
    (delegate,) = cut.subplans
    assert cut.subplans[delegate] == plan.subplans[delegate]  # untouched: a full level


def test_the_plan_hash_covers_the_targets(tmp_path: Path) -> None:
    plan = lab_plan(tmp_path)
    assert target_plan(plan, []) is plan
    one = target_plan(plan, ["flat"])
    two = target_plan(plan, ["flat", "inner-b"])
    assert len({plan.hash, one.hash, two.hash}) == 3
    forged = msgspec.structs.replace(one, targets=("flat", "host"))
    assert verify_plan(forged), "a plan whose targets were edited must not verify"


def test_an_unknown_target_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    plan = lab_plan(tmp_path)
    with pytest.raises(PlanError) as caught:
        check_targets(plan, ["inner-x"])
    diag = caught.value.diagnostics[0]
    assert "inner-x" in diag.summary
    assert "did you mean 'inner-" in diag.summary
    assert "inner-b" in diag.detail  # every node that exists is named


def test_a_targeted_destroy_removes_the_target_not_its_host(tmp_path: Path) -> None:
    applied = lab_plan(tmp_path)
    full = destroy_plan(applied)
    cut = target_plan(full, ["inner-b"])
    assert [s.address for s in cut.steps] == ["node.host.destroy_subtree"]
    (subplan,) = cut.subplans.values()
    assert [s.address for s in subplan.steps] == ["node.inner-b.destroy"]
    assert verify_plan(cut) == []
    whole = target_plan(full, ["host"])
    assert {s.address for s in whole.steps} == {"node.host.destroy_subtree", "node.host.destroy"}
    assert target_plan(full, ["nowhere"]) is None


TARGET_PROPS = settings(
    max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@TARGET_PROPS
@given(manifests(), st.data())
def test_any_target_keeps_exactly_itself_and_its_ancestors(manifest: Manifest, data) -> None:
    plan = compile_manifest(manifest)
    names = node_names(plan)
    target = data.draw(st.sampled_from(names))
    cut = target_plan(plan, [target])
    assert verify_plan(cut) == []
    parents = {n.name: n.parent for n in manifest.nodes}
    expected = {target}
    node = target
    while parents.get(node):
        node = parents[node]
        expected.add(node)
    # ... and, when the target hosts a subtree, everything inside it.
    expected |= {n for n in parents if _below(n, target, parents)}
    assert set(node_names(cut)) == expected


def _below(name: str, target: str, parents: dict[str, str | None]) -> bool:
    node = parents.get(name)
    while node:
        if node == target:
            return True
        node = parents.get(node)
    return False


# --- the CLI --------------------------------------------------------------------------


def _site(tmp_path: Path, mem_a: int, mem_f: int) -> Path:
    import shutil

    site = tmp_path / "site"
    if not site.exists():
        shutil.copytree(EXAMPLES, site)
    text = LAB.replace("MEM_A", str(mem_a)).replace("MEM_F", str(mem_f))
    (site / "manifests" / "tlab.pvp").write_text(text)
    return site


def test_plan_with_target_diffs_only_the_target_and_records_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PVEPLAN_STORE", str(tmp_path / "store"))
    site = _site(tmp_path, 1024, 1024)
    base = ["-M", "tlab", "-H", "sim", "--site-config", str(site)]
    code, _, err = run_cli(["plan", *base, "-o", str(tmp_path / "before.json")])
    assert code == 0, err
    _site(tmp_path, 2048, 2048)  # both inner-a and flat change
    targeted = tmp_path / "a.json"
    against = ["--against", str(tmp_path / "before.json")]
    words = ["plan", *base, *against, "-target", "inner-a", "--json", "-o", str(targeted)]
    code, out, err = run_cli(words)
    assert code == 0, err
    assert "resource targeting is in effect" in err
    diff = json.loads(out)
    assert diff["targets"] == ["inner-a"]
    changed = {c["address"] for c in diff["changes"] if c["action"] != "unchanged"}
    assert "node.inner-a.create" in changed
    assert not any(a.startswith("node.flat.") for a in changed)
    assert not any(a.startswith("node.inner-b.") for a in changed)
    saved = read_plan_file(targeted)
    assert saved.plan.targets == ("inner-a",)
    assert saved.hash == saved.plan.hash
    # The saved targeted plan is up to date with what it was made from (targets included).
    code, out, err = run_cli(["plan", "--check", str(targeted), "--site-config", str(site)])
    assert code == 0, out + err


def test_an_unknown_target_is_a_usage_error_naming_the_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PVEPLAN_STORE", str(tmp_path / "store"))
    site = _site(tmp_path, 1024, 1024)
    for command in ("plan", "apply", "destroy"):
        code, _, err = run_cli(
            [command, "-M", "tlab", "-H", "sim", "--site-config", str(site), "--target", "flt"]
            + (["-y"] if command != "plan" else [])
        )
        assert code == 1, command
        assert "did you mean 'flat'?" in err, err
        assert "Traceback" not in err


def test_destroy_dry_run_with_target_lists_only_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pveplan.planner import canonical
    from pveplan.store import open_store

    monkeypatch.setenv("PVEPLAN_STORE", str(tmp_path / "store"))
    site = _site(tmp_path, 1024, 1024)
    applied = read_plan_file(_saved(tmp_path, site)).plan
    with open_store(tmp_path / "store") as store:
        store.put_plan(applied.hash, store.put_object(canonical(applied)), "tlab@sim")
        store.set_applied("tlab@sim", applied.hash, {s.address: s.hash for s in applied.steps})
    words = ["destroy", "-M", "tlab", "-H", "sim", "--site-config", str(site), "--dry-run"]
    code, out, err = run_cli([*words, "-target", "inner-b", "--json-output"])
    assert code == 0, err
    destroyed = json.loads(out)["changes"]
    assert destroyed and all(c["address"].startswith("node.inner-b.") for c in destroyed)


def _saved(tmp_path: Path, site: Path) -> Path:
    out = tmp_path / "full.json"
    code, _, err = run_cli(
        ["plan", "-M", "tlab", "-H", "sim", "--site-config", str(site), "-o", str(out)]
    )
    assert code == 0, err
    return out
