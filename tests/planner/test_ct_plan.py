"""Containers in plans: how a change to a ct node is carried out, with its source line,
and that validate refuses a container apply could not make.

The rules are `CtCreateArgs.RULES` (the ones the ct kind reconciles by): a new template
or `unprivileged` is a new container; cores, memory, swap and nesting change in place; the
root file system grows in place.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import msgspec
import pytest

from pveplan.dsl import load_manifest
from pveplan.executor import live_vm
from pveplan.planner import LiveHost, LiveVm, PlanError, find_drift, node_statuses
from pveplan.planner._diff import diff_plans
from pveplan.planner._planfile import PlanFile
from pveplan.planner._planning import build_plan_file
from pveplan.planner.siteconfig import load_site_config, resolve_manifest
from tests.cli_runner import run_cli

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples" / "site-config"


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    target = tmp_path / "site-config"
    shutil.copytree(EXAMPLES, target)
    return target


def plan_of(site_dir: Path, edit: tuple[str, str] | None = None, name: str = "ct-lab") -> PlanFile:
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


def create_change(
    site_dir: Path, edit: tuple[str, str]
) -> tuple[str, list[tuple[str, str | None]]]:
    old = plan_of(site_dir)
    new = plan_of(site_dir, edit)
    changes = {c.address: c for c in diff_plans(new.plan, old.plan, new.header.sources)}
    create = changes["node.box.create"]
    assert changes["node.web.create"].action == "unchanged"
    return create.action, [(r.text, r.source) for r in create.reasons]


def test_a_new_template_replaces_the_container_and_says_where(site_dir: Path) -> None:
    action, reasons = create_change(
        site_dir, ("template: debian-13-standard", "template: debian-12-standard")
    )
    assert action == "replace"
    assert (
        'template: "debian-13-standard" -> "debian-12-standard" (forces replacement)',
        "ct-lab.yaml:17:15",
    ) in reasons


def test_a_bigger_rootfs_grows_in_place_and_says_where(site_dir: Path) -> None:
    action, reasons = create_change(site_dir, ("disk: 8", "disk: 12"))
    assert action == "update"
    assert reasons == [("disk: 8 -> 12", "ct-lab.yaml:21:11")]


def test_a_smaller_rootfs_is_kept_as_apply_keeps_it(site_dir: Path) -> None:
    """PVE cannot shrink a root file system: the plan says it stays, as apply does."""
    action, reasons = create_change(site_dir, ("disk: 8", "disk: 4"))
    assert action == "update"
    assert reasons[0][0].startswith("disk: 8 -> 4 (kept: PVE cannot shrink a disk;")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("cores: 1", "cores: 2"), ("update", "cores: 1 -> 2", "ct-lab.yaml:19:12")),
        (("memory: 512", "memory: 1024"), ("update", "memory: 512 -> 1024", "ct-lab.yaml:20:13")),
        (("swap: 256", "swap: 0"), ("update", "swap: 256 -> 0", "ct-lab.yaml:22:11")),
        (
            ("nesting: true", "nesting: false"),
            ("update", "nesting: true -> false", "ct-lab.yaml:23:14"),
        ),
        (
            ("nesting: true", "nesting: true\n    unprivileged: false"),
            ("replace", "unprivileged: true -> false (forces replacement)", "ct-lab.yaml:24:19"),
        ),
    ],
)
def test_each_container_field_changes_as_its_rule_says(
    site_dir: Path, edit: tuple[str, str], expected: tuple[str, str, str]
) -> None:
    action, reasons = create_change(site_dir, edit)
    assert (action, *reasons[0]) == expected


def test_the_template_is_a_pinned_download_of_vztmpl_content(site_dir: Path) -> None:
    steps = {s.address: s for s in plan_of(site_dir).plan.steps}
    template = steps["image.debian-13-standard.ensure"]
    assert template.args["format"] == "vztmpl"
    assert template.args["sha256"].startswith("fe3c814c")
    assert template.args["filename"] == "debian-13-standard-fe3c814c8a56f6b3.tar.zst"
    assert "vztmpl" in steps["storage.local.content"].args["content"]
    create = steps["node.box.create"]
    assert create.refs["volume"] == "image.debian-13-standard.ensure#volid"
    # reached as root, its host key read through the host after it starts
    assert steps["node.box.wait_ssh"].args["user"] == "root"
    assert steps["node.box.wait_ssh"].refs["host_key"] == "node.box.wait_ip#host_key"


def _validate(site_dir: Path, edit: tuple[str, str]) -> tuple[int, str]:
    path = site_dir / "manifests" / "ct-lab.yaml"
    path.write_text(path.read_text().replace(*edit, 1))
    code, out, err = run_cli(["validate", str(path), "--site-config", str(site_dir)])
    return code, out + err


def test_validate_names_an_unknown_template(site_dir: Path) -> None:
    code, text = _validate(site_dir, ("debian-13-standard", "debian-13-standrd"))
    assert code == 1
    assert "unknown template 'debian-13-standrd'" in text
    assert "debian-13-standard" in text  # the closest one, suggested
    assert "ct-lab.yaml:17" in text


def test_validate_refuses_a_disk_image_as_a_template(site_dir: Path) -> None:
    code, text = _validate(site_dir, ("template: debian-13-standard", "template: debian-13"))
    assert code == 1 and "template 'debian-13' is not a container template" in text


def test_validate_refuses_a_template_as_a_vm_image(site_dir: Path) -> None:
    code, text = _validate(site_dir, ("image: debian-13", "image: debian-13-standard"))
    assert code == 1 and "image 'debian-13-standard' is not a disk image" in text


def test_validate_refuses_container_options_on_a_vm(site_dir: Path) -> None:
    code, text = _validate(site_dir, ("vmid: 99101", "vmid: 99101\n    nesting: true"))
    assert code == 1 and "node 'web' of type 'vm' sets nesting" in text


# --- drift and status: containers share the vmid space with VMs, never mistaken for one ---


def _ct_live(kind: str = "lxc", **sizes: object) -> LiveHost:
    fields = {"cores": 1, "memory": 512, "disk": 8, "tags": ("pveplan", "pveplan-ct-lab")}
    web = LiveVm(vmid=99101, name="web", status="running", cores=2, memory=2048, disk=10)
    web = msgspec.structs.replace(web, tags=("pveplan", "pveplan-ct-lab"))
    box = LiveVm(vmid=99102, name="box", status="running", kind=kind, **{**fields, **sizes})
    return LiveHost(host="sim", vms=(web, box))


RESOURCES = {
    "node.web.create": {"vm_id": 99101, "name": "web"},
    "node.box.create": {"vm_id": 99102, "name": "box"},
}


def test_a_container_as_applied_shows_no_drift_and_is_in_sync(site_dir: Path) -> None:
    plan = plan_of(site_dir).plan
    assert find_drift(plan, _ct_live(), RESOURCES) == ()
    states = {s.name: (s.type, s.state) for s in node_statuses(plan, _ct_live(), RESOURCES)}
    assert states == {"web": ("vm", "in_sync"), "box": ("ct", "in_sync")}


def test_a_container_s_sizes_drift_by_its_own_rules(site_dir: Path) -> None:
    plan = plan_of(site_dir).plan
    found = find_drift(plan, _ct_live(memory=1024, disk=6), RESOURCES)
    assert [(d.node, d.type, d.field, d.fix) for d in found] == [
        ("box", "ct", "memory", "in_place"),
        ("box", "ct", "disk", "in_place"),
    ]


def test_a_vm_at_a_container_s_vmid_is_not_the_container(site_dir: Path) -> None:
    plan = plan_of(site_dir).plan
    found = find_drift(plan, _ct_live(kind="qemu"), RESOURCES)
    assert [(d.node, d.field, d.fix) for d in found] == [("box", "exists", "recreate")]
    states = {s.name: s.state for s in node_statuses(plan, _ct_live(kind="qemu"), RESOURCES)}
    assert states["box"] == "missing"


def test_the_listing_entry_of_a_container_keeps_its_kind() -> None:
    entry = {"vmid": 200, "name": "box", "type": "lxc", "status": "running", "maxcpu": 1}
    assert live_vm(entry).kind == "lxc"
    assert live_vm({**entry, "type": "qemu"}).kind == "qemu"


def test_validate_refuses_an_image_on_a_container(site_dir: Path) -> None:
    edit = ("template: debian-13-standard", "template: debian-13-standard\n    image: debian-13")
    code, text = _validate(site_dir, edit)
    assert code == 1 and "node 'box' of type 'ct' sets an image" in text


def test_a_container_in_pull_mode_is_refused_at_plan(site_dir: Path) -> None:
    edit = ("nesting: true", "nesting: true\n    execution:\n      mode: pull")
    with pytest.raises(PlanError, match="container in pull mode"):
        plan_of(site_dir, edit)
