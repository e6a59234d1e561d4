"""`snapshot_before`: a grow of a disk of a VM that asks for it is shown with the snapshot
the executor takes first; any other change (or none) shows none; a `replace` is refused at
validation with what to do instead; and a manifest without it keeps its plan's bytes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pveplan.dsl import DslError, load_manifest
from pveplan.planner import VmCreateArgs, args_of, snapshot_name
from pveplan.planner._diff import diff_plans
from pveplan.planner._planfile import PlanFile
from pveplan.planner._planning import build_plan_file
from pveplan.planner.siteconfig import load_site_config, resolve_manifest

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples" / "site-config"
VMID = "    vmid: 99051\n"


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("snapshot") / "site-config"
    shutil.copytree(EXAMPLES, target)
    return target


def plan_of(site_dir: Path, text: str) -> PlanFile:
    path = site_dir / "manifests" / "snap.yaml"
    path.write_text(text)
    site = load_site_config(site_dir)
    loaded = load_manifest(str(path))
    return build_plan_file(
        loaded, resolve_manifest(loaded, site, "sim"), site, "sim", planned_against=None
    )


def manifest(policy: str | None, *, data_disk: int = 20, settings: str | None = None) -> str:
    text = (EXAMPLES / "manifests" / "devices.yaml").read_text()
    text = text.replace("- size: 20 ", f"- size: {data_disk} ", 1)
    if policy is not None:
        text = text.replace(VMID, f"{VMID}    snapshot_before: {policy}\n", 1)
    if settings is not None:
        text = text.replace("settings:\n", f"settings:\n  snapshot_before: {settings}\n", 1)
    return text


def create_change(site_dir: Path, old: str, new: str):  # type: ignore[no-untyped-def]
    before, after = plan_of(site_dir, old), plan_of(site_dir, new)
    changes = {c.address: c for c in diff_plans(after.plan, before.plan, after.header.sources)}
    step = next(s for s in after.plan.steps if s.address == "node.db.create")
    return changes["node.db.create"], step


def test_a_grow_with_snapshot_before_resize_names_the_snapshot(site_dir: Path) -> None:
    change, step = create_change(site_dir, manifest("[resize]"), manifest("[resize]", data_disk=30))
    assert change.action == "update"
    assert change.note is not None
    assert change.note.startswith(f"snapshot {snapshot_name(step.hash)} before the disk grows")
    assert "removed after the run" in change.note
    args = args_of(step, VmCreateArgs)
    assert isinstance(args, VmCreateArgs) and args.snapshot
    assert args.snapshot.changes == ("resize",) and not args.snapshot.keep


def test_keep_and_the_settings_default_reach_the_step(site_dir: Path) -> None:
    old = manifest(None, settings="{changes: [resize], keep: true}")
    change, step = create_change(
        site_dir, old, manifest(None, data_disk=40, settings="{changes: [resize], keep: true}")
    )
    assert change.note is not None and "(kept)" in change.note
    args = args_of(step, VmCreateArgs)
    assert isinstance(args, VmCreateArgs) and args.snapshot and args.snapshot.keep


def test_no_snapshot_without_a_grow_or_without_the_setting(site_dir: Path) -> None:
    change, _ = create_change(
        site_dir, manifest("[resize]"), manifest("[resize]").replace("vlan: 20", "vlan: 30")
    )
    assert change.action == "update" and change.note is None  # a NIC change: no snapshot
    change, _ = create_change(site_dir, manifest(None), manifest(None, data_disk=30))
    assert change.action == "update" and change.note is None  # a grow, not asked for
    change, _ = create_change(site_dir, manifest("[resize]"), manifest("[resize]", data_disk=5))
    assert change.action == "update" and change.note is None  # a shrink, kept: no resize


def test_the_snapshot_name_fits_pves_snapname_pattern(site_dir: Path) -> None:
    import re

    step = next(
        s for s in plan_of(site_dir, manifest("[resize]")).plan.steps if s.kind == "pve.vm.create"
    )
    name = snapshot_name(step.hash)
    assert re.fullmatch(r"[a-zA-Z][a-zA-Z0-9_\-]+", name) and len(name) <= 40


def test_a_manifest_without_it_keeps_its_plan_bytes(site_dir: Path) -> None:
    plain = plan_of(site_dir, manifest(None)).plan
    step = next(s for s in plain.steps if s.kind == "pve.vm.create")
    assert "snapshot" not in step.args


@pytest.mark.parametrize("policy", ["[replace]", "[resize, replace]", "{changes: [replace]}"])
def test_replace_is_refused_with_what_to_do_instead(site_dir: Path, policy: str) -> None:
    with pytest.raises(DslError) as caught:
        plan_of(site_dir, manifest(policy))
    text = str(caught.value)
    assert "snapshot_before" in text and "vzdump" in text and "snap.yaml:" in text
