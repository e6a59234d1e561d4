"""Templates and clones at plan time: what the manifest may say, and what a change means.

Why: a clone's source and kind (linked or full) are fixed when PVE clones it, so a change
of either makes a new VM, and the diff must say so where the manifest says it; a linked
clone is a child of its template's disk, so a new template makes new linked clones. What
PVE would refuse at apply (a linked clone of a plain VM, an unknown source, a disk
smaller than the template's) is refused by `validate` and `plan`, at its position.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pveplan.dsl import DslError, load_manifest
from pveplan.planner import PlanError
from pveplan.planner._destroy import destroy_plan
from pveplan.planner._diff import TEMPLATE_REPLACED, diff_plans
from pveplan.planner._planfile import PlanFile
from pveplan.planner._planning import build_plan_file
from pveplan.planner.siteconfig import load_site_config, resolve_manifest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "site-config"


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    target = tmp_path / "site-config"
    shutil.copytree(EXAMPLES, target)
    return target


def plan_of(site_dir: Path, ext: str = "yaml", edit: tuple[str, str] | None = None) -> PlanFile:
    path = site_dir / "manifests" / f"clones.{ext}"
    if edit is not None:
        text = path.read_text()
        assert edit[0] in text
        path.write_text(text.replace(edit[0], edit[1], 1))
    site = load_site_config(site_dir)
    loaded = load_manifest(str(path))
    return build_plan_file(
        loaded, resolve_manifest(loaded, site, "sim"), site, "sim", planned_against=None
    )


def changes_of(new: PlanFile, old: PlanFile) -> dict[str, object]:
    return {c.address: c for c in diff_plans(new.plan, old.plan, new.header.sources)}


def errors_of(path: Path) -> list[str]:
    with pytest.raises(DslError) as caught:
        load_manifest(str(path))
    return [f"{d.location.line}:{d.location.col}: {d.summary}" for d in caught.value.diagnostics]


def test_the_clone_steps_follow_their_template(site_dir: Path) -> None:
    plan = plan_of(site_dir).plan
    steps = {s.address: s for s in plan.steps}
    template = steps["node.debian-tmpl.create"]
    assert template.kind == "pve.template.create"
    assert "node.debian-tmpl.start" not in steps  # a template is never started
    clone = steps["node.web-1.create"]
    assert clone.kind == "pve.clone.create"
    assert clone.refs == {"template": "node.debian-tmpl.create#vm_id"}
    assert (clone.args["source"], clone.args["linked"]) == ("debian-tmpl", True)
    assert clone.args["disk"] == 16
    assert steps["node.web-2.create"].args["disk"] == 8  # no size of its own: the template's
    assert list(steps).index("node.debian-tmpl.create") < list(steps).index("node.web-1.create")
    # both front ends make one plan
    assert plan_of(site_dir, "pvp").plan.hash == plan.hash


@pytest.mark.parametrize(
    ("edit", "field", "text", "where"),
    [
        (
            ("linked: true", "linked: false"),
            "linked",
            "linked: true -> false (forces replacement)",
            "clones.yaml:26:15",
        ),
        (
            ("      from: debian-tmpl\n      linked", "      from: web-2\n      linked: false\n#"),
            "source",
            'source: "debian-tmpl" -> "web-2" (forces replacement)',
            "clones.yaml:25:13",
        ),
    ],
)
def test_changing_from_or_linked_is_a_replacement_at_its_line(
    site_dir: Path, edit: tuple[str, str], field: str, text: str, where: str
) -> None:
    old = plan_of(site_dir)
    if field == "source":  # a full clone of a vm needs web-2 to be a plain vm
        path = site_dir / "manifests" / "clones.yaml"
        body = path.read_text()
        web2 = "    clone:\n      from: debian-tmpl\n"
        path.write_text(body[: body.rindex(web2)] + "    image: debian-12\n")
    new = plan_of(site_dir, edit=edit)
    create = changes_of(new, old)["node.web-1.create"]
    assert create.action == "replace"
    reasons = {r.text: r.source for r in create.reasons}
    assert reasons[text] == where


def test_a_new_template_replaces_its_linked_clones_and_says_why(site_dir: Path) -> None:
    old = plan_of(site_dir)
    new = plan_of(site_dir, edit=("    disk: 8\n", "    disk: 9\n"))
    changes = changes_of(new, old)
    template = changes["node.debian-tmpl.create"]
    assert template.action == "replace"
    assert template.note == TEMPLATE_REPLACED
    for clone in ("node.web-1.create", "node.web-2.create"):
        change = changes[clone]
        assert change.action == "replace"
        assert change.caused_by is None  # a cause of its own: the template it is a child of
        assert "template: node.debian-tmpl.create is replaced (forces replacement)" in [
            r.text for r in change.reasons
        ]


def test_a_full_clone_of_a_new_template_is_updated_not_replaced(site_dir: Path) -> None:
    old = plan_of(site_dir, edit=("linked: true", "linked: false"))
    new = plan_of(site_dir, edit=("    disk: 8\n", "    disk: 9\n"))
    assert changes_of(new, old)["node.web-1.create"].action == "update"


def test_destroy_removes_the_clones_before_their_template(site_dir: Path) -> None:
    plan = destroy_plan(plan_of(site_dir).plan)
    steps = {s.address: s for s in plan.steps}
    assert set(steps["node.debian-tmpl.destroy"].deps) == {
        "node.web-1.destroy",
        "node.web-2.destroy",
    }
    assert steps["node.web-1.destroy"].deps == ()


def test_a_clone_smaller_than_its_template_is_refused_at_its_disk(site_dir: Path) -> None:
    with pytest.raises(PlanError) as caught:
        plan_of(site_dir, edit=("    disk: 16\n", "    disk: 4\n"))
    (diagnostic,) = caught.value.diagnostics
    assert "4 GiB" in diagnostic.summary and "8 GiB" in diagnostic.summary
    assert diagnostic.location is not None and diagnostic.location.line == 23


BAD = """\
schema_version: 2
name: bad
nodes:
  - name: tmpl
    type: template
    image: debian-12
  - name: plain
    type: vm
    image: debian-12
  - name: a
    type: vm
    clone: {from: plain}
  - name: b
    type: vm
    clone: {from: tmpll}
  - name: c
    type: vm
    clone: {from: plain, linked: false}
"""

BAD_PVP = """\
manifest "bad" {
  node "tmpl" {
    type = "template"
    image = "debian-12"
  }
  node "plain" {
    type = "vm"
    image = "debian-12"
  }
  node "a" {
    type = "vm"
    clone = { from = "plain" }
  }
  node "b" {
    type = "vm"
    clone = { from = "tmpll" }
  }
}
"""


def test_a_linked_clone_of_a_non_template_and_an_unknown_source_are_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    assert errors_of(path) == [
        "12:19: linked clone 'a' is made from 'plain', a vm, not a template",
        "15:19: clone 'b' is made from unknown node 'tmpll'",
    ]  # c, a full clone of a vm, is fine
    pvp = tmp_path / "bad.pvp"
    pvp.write_text(BAD_PVP)
    assert errors_of(pvp) == [
        "12:22: linked clone 'a' is made from 'plain', a vm, not a template",
        "16:22: clone 'b' is made from unknown node 'tmpll'",
    ]


def test_template_and_clone_misuse_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "schema_version: 2\nname: bad\nnodes:\n"
        "  - {name: tmpl, type: template, image: debian-12, spec: base}\n"
        "  - {name: x, type: vm, image: debian-12, clone: {from: tmpl}}\n"
        "  - {name: y, type: vm, clone: {from: x, linked: false}}\n"
        "  - {name: z, type: ct, template: debian-12-standard, clone: {from: tmpl}}\n"
    )
    assert [e.split(": ", 1)[1] for e in errors_of(path)] == [
        "template 'tmpl' has a spec",
        "clone 'x' names an image",
        "clone 'y' is made from 'x', itself a clone",
        "node 'z' of type 'ct' cannot be a clone",
    ]


def test_replacing_a_template_asks_consent_for_it_and_its_linked_clones(site_dir: Path) -> None:
    from pveplan.cli._consent import at_risk

    old = plan_of(site_dir)
    new = plan_of(site_dir, edit=("    disk: 8\n", "    disk: 9\n"))
    lines = at_risk(diff_plans(new.plan, old.plan, new.header.sources))
    assert sorted(lines) == [
        "template debian-tmpl: replaced (destroyed, then created anew)",
        "vm web-1: replaced (destroyed, then created anew)",
        "vm web-2: replaced (destroyed, then created anew)",
    ]
