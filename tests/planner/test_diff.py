"""Plan diffs: the action of each step, and why, rendered stably."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pveplan.cli._render import Style
from pveplan.dsl import load_manifest
from pveplan.planner._diff import diff_plans, summarize
from pveplan.planner._planfile import PlanFile
from pveplan.planner._planning import build_plan_file
from pveplan.planner._render import render_changes
from pveplan.planner.siteconfig import load_site_config, resolve_manifest

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples" / "site-config"
PLAIN = Style(False)


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    target = tmp_path / "site-config"
    shutil.copytree(EXAMPLES, target)
    return target


def plan_of(site_dir: Path, name: str, edit: tuple[str, str] | None = None) -> PlanFile:
    path = site_dir / "manifests" / f"{name}.yaml"
    if edit is not None:
        text = path.read_text()
        assert edit[0] in text
        path.write_text(text.replace(edit[0], edit[1], 1))
    site = load_site_config(site_dir)
    loaded = load_manifest(str(path))
    return build_plan_file(
        loaded, resolve_manifest(loaded, site, "sim"), site, "sim", planned_against=None
    )


def actions(new: PlanFile, old: PlanFile | None) -> dict[str, str]:
    return {
        " > ".join((*c.path, c.address)): c.action
        for c in diff_plans(new.plan, old.plan if old else None, new.header.sources)
        if c.action != "unchanged"
    }


def test_nothing_applied_means_everything_is_created(site_dir: Path) -> None:
    new = plan_of(site_dir, "n1-push")
    changes = diff_plans(new.plan, None)
    assert {c.action for c in changes} == {"create"}
    assert summarize(changes).add == len(new.plan.steps)


def test_same_plan_is_no_change(site_dir: Path) -> None:
    new = plan_of(site_dir, "n3-deep")
    changes = diff_plans(new.plan, new.plan)
    summary = summarize(changes)
    assert not summary.changes and summary.unchanged == len(new.plan.walk())
    assert render_changes(changes, summary, PLAIN).endswith("No changes.")


def test_update_in_place_names_the_field_and_its_line(site_dir: Path) -> None:
    old = plan_of(site_dir, "n1-push")
    new = plan_of(site_dir, "n1-push", ("vmid: 99001", "vmid: 99001\n    disk: 30"))
    changes = {c.address: c for c in diff_plans(new.plan, old.plan, new.header.sources)}
    create = changes["node.edge.create"]
    assert create.action == "update"
    assert [(r.text, r.source) for r in create.reasons] == [
        ("disk: 10 -> 30", "n1-push.yaml:13:11")
    ]
    assert changes["node.edge.start"].action == "update"
    assert changes["node.edge.start"].reasons[0].text == "input node.edge.create changed"
    assert changes["image.debian-12.ensure"].action == "unchanged"
    # the start re-runs only because create changed: a dependent, pointing at the cause
    assert create.caused_by is None
    assert changes["node.edge.start"].cause == ((), "node.edge.create")
    assert changes["node.edge.config"].cause == ((), "node.edge.create")  # transitively


def test_vmid_change_forces_replacement(site_dir: Path) -> None:
    old = plan_of(site_dir, "n1-push")
    new = plan_of(site_dir, "n1-push", ("vmid: 99001", "vmid: 99002"))
    change = next(c for c in diff_plans(new.plan, old.plan) if c.address == "node.edge.create")
    assert change.action == "replace"
    assert change.reasons[0].text == "vmid: 99001 -> 99002 (forces replacement)"


def test_removed_node_is_destroyed(site_dir: Path) -> None:
    old = plan_of(site_dir, "n2-tiered")
    new = plan_of(site_dir, "n1-push")
    found = actions(new, old)
    assert found["node.root-pve.delegate"] == "destroy"
    assert found["node.root-pve.delegate > node.edge.create"] == "destroy"


def test_leaf_change_three_levels_down_shows_under_its_delegates(site_dir: Path) -> None:
    old = plan_of(site_dir, "n3-deep")
    new = plan_of(site_dir, "n3-deep", ("vmid: 99031", "vmid: 99031\n    disk: 12"))
    found = actions(new, old)
    assert found == {
        "node.root-pve.delegate": "update",
        "node.root-pve.delegate > node.leaf-pve.delegate": "update",
        **{
            f"node.root-pve.delegate > node.leaf-pve.delegate > node.edge.{s}": "update"
            for s in ("create", "start", "wait_ip", "wait_ssh", "config")
        },
    }
    text = render_changes(
        diff_plans(new.plan, old.plan, new.header.sources),
        summarize(diff_plans(new.plan, old.plan)),
        PLAIN,
    )
    assert "  root-pve ›\n" in text and "    leaf-pve ›\n" in text
    assert "disk: 10 -> 12  (n3-deep.yaml:" in text
    # one change with its cause; the delegates above and the steps after are summed up
    steps = [line.strip() for line in text.splitlines() if line.strip().startswith("~ node.")]
    assert steps == ["~ node.edge.create  pve.vm.create"]
    assert "            and 6 dependent steps\n" in text
    assert text.endswith("Plan: 0 to add, 7 to change, 0 to replace, 0 to destroy.")


def test_changed_secret_is_sensitive(site_dir: Path) -> None:
    old = plan_of(site_dir, "n1-push")
    secrets = site_dir / "secrets.yaml"
    secrets.write_text(secrets.read_text().replace("example@pveplan", "TOPSECRET-rotated@pveplan"))
    new = plan_of(site_dir, "n1-push")
    changes = diff_plans(new.plan, old.plan)
    create = next(c for c in changes if c.address == "node.edge.create")
    assert [r.text for r in create.reasons] == ["secret ssh_keys.example changed (sensitive)"]
    text = render_changes(changes, summarize(changes), PLAIN)
    assert "TOPSECRET" not in text and "(sensitive)" in text


def test_diff_output_is_stable(site_dir: Path) -> None:
    old = plan_of(site_dir, "n2-tiered").plan
    runs = set()
    for _ in range(3):
        new = plan_of(site_dir, "lab")
        changes = diff_plans(new.plan, old, new.header.sources)
        runs.add(render_changes(changes, summarize(changes), PLAIN))
    assert len(runs) == 1
