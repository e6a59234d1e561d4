"""A VM's disk and NIC lists: how the diff shows their changes, and that the shorthands
(`disk`, `bridge`) and a one-item list are the same step (so old plans keep their hashes)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pveplan.dsl import load_manifest, load_yaml, manifest_from_data
from pveplan.dsl._positions import SourceMap
from pveplan.planner import (
    LiveHost,
    LiveVm,
    VmCreateArgs,
    args_of,
    change_of,
    drift_line,
    find_drift,
)
from pveplan.planner._diff import diff_plans
from pveplan.planner._planfile import PlanFile
from pveplan.planner._planning import build_plan_file
from pveplan.planner.siteconfig import load_site_config, resolve_manifest

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples" / "site-config"


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("devices") / "site-config"
    shutil.copytree(EXAMPLES, target)
    return target


def plan_of(site_dir: Path, text: str, name: str = "devices.yaml") -> PlanFile:
    path = site_dir / "manifests" / name
    path.write_text(text)
    site = load_site_config(site_dir)
    loaded = load_manifest(str(path))
    return build_plan_file(
        loaded, resolve_manifest(loaded, site, "sim"), site, "sim", planned_against=None
    )


def example(edit: tuple[str, str] | None = None) -> str:
    text = (EXAMPLES / "manifests" / "devices.yaml").read_text()
    if edit is not None:
        assert edit[0] in text
        text = text.replace(edit[0], edit[1], 1)
    return text


def create_change(site_dir: Path, edit: tuple[str, str]):  # type: ignore[no-untyped-def]
    old = plan_of(site_dir, example())
    new = plan_of(site_dir, example(edit))
    changes = {c.address: c for c in diff_plans(new.plan, old.plan, new.header.sources)}
    return changes["node.db.create"]


def test_growing_the_second_disk_is_in_place_at_its_line(site_dir: Path) -> None:
    change = create_change(site_dir, ("- size: 20 ", "- size: 30 "))
    assert change.action == "update"
    assert [(r.text, r.source) for r in change.reasons] == [
        ("disks[1].size: 20 -> 30 (in place)", "devices.yaml:19:15")
    ]


def test_changing_a_nics_vlan_is_in_place_at_its_line(site_dir: Path) -> None:
    change = create_change(site_dir, ("vlan: 20", "vlan: 30"))
    assert change.action == "update"
    assert [(r.text, r.source) for r in change.reasons] == [
        ("nics[1].vlan: 20 -> 30 (in place)", "devices.yaml:24:15")
    ]


@pytest.mark.parametrize(
    ("edit", "label"),
    [
        (("- size: 20 ", "- {size: 20, bus: virtio} "), 'disks[1].bus: "scsi" -> "virtio"'),
        (("- size: 20 ", "- {size: 20, storage: local-lvm} "), "disks[1].storage"),
    ],
)
def test_shrinking_or_moving_a_disk_is_a_replacement_with_the_reason(
    site_dir: Path, edit: tuple[str, str], label: str
) -> None:
    change = create_change(site_dir, edit)
    assert change.action == "replace"
    (reason,) = change.reasons
    assert reason.text.startswith(label) and "forces replacement: " in reason.text
    assert reason.source is not None and reason.source.startswith("devices.yaml:19:")


def test_adding_a_disk_or_nic_and_mtu_firewall_bridge_are_in_place(site_dir: Path) -> None:
    change = create_change(
        site_dir,
        ("      - size: 20 ", "      - size: 20\n      - {size: 5, bus: sata}\n      #"),
    )
    assert change.action == "update"
    assert [r.text.split(":")[0] for r in change.reasons] == ["disks[2]"]
    for edit in (
        ("mtu: 1400", "mtu: 1500"),
        ("firewall: true", "firewall: false"),
        ("bridge: vmbr0         # net1", "bridge: vmbr1         # net1"),
        ("ip=10.20.0.51/24", "ip=10.20.0.52/24"),
    ):
        assert create_change(site_dir, edit).action == "update", edit


def test_shrinking_a_disk_is_kept_at_its_line_as_apply_keeps_it(site_dir: Path) -> None:
    """One rule for plan and apply (`change_of`'s `keep`): PVE cannot shrink a disk, and
    pveplan destroys no guest for it; the VM kind keeps the larger disk (its test:
    tests/executor/test_vmdevices.py::test_a_smaller_disk_is_kept_never_shrunk_and_a_larger_grows)."""
    change = create_change(site_dir, ("- size: 20 ", "- size: 5 "))
    assert change.action == "update"
    (reason,) = change.reasons
    assert reason.text.startswith("disks[1].size: 20 -> 5 (kept: PVE cannot shrink a disk;")
    assert reason.source is not None and reason.source.startswith("devices.yaml:19:")
    boot = create_change(site_dir, ("- size: 10 ", "- size: 8 "))
    assert boot.action == "update" and "(kept: PVE cannot shrink" in boot.reasons[0].text


def test_rules_say_grow_in_place_and_shrink_kept_for_any_disk() -> None:
    old = [{"size": 10, "bus": "scsi", "storage": "local"}] * 2
    grown = [old[0], {**old[1], "size": 30}]
    shrunk = [old[0], {**old[1], "size": 5}]
    assert change_of(VmCreateArgs, "disks", old, grown) == "in_place"
    assert change_of(VmCreateArgs, "disks", old, shrunk) == "in_place"  # nothing replaced
    nics = [{"bridge": "vmbr0", "model": "virtio", "vlan": 20}]
    assert change_of(VmCreateArgs, "nics", nics, [{**nics[0], "vlan": 30}]) == "in_place"
    assert change_of(VmCreateArgs, "nics", nics, [*nics, *nics]) == "in_place"


NODE = """schema_version: 2
name: shorthand
nodes:
  - name: web
    type: vm
    image: debian-12
    vmid: 99061
"""


def _create_step(plan: PlanFile):  # type: ignore[no-untyped-def]
    return next(s for s in plan.plan.steps if s.kind == "pve.vm.create")


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    size=st.integers(min_value=1, max_value=4096),
    bridge=st.sampled_from([None, "vmbr0", "vmbr1", "lab_2"]),
    spell_out=st.booleans(),
)
def test_shorthands_and_one_item_lists_are_the_same_step(
    site_dir: Path, size: int, bridge: str | None, spell_out: bool
) -> None:
    short = NODE + f"    disk: {size}\n" + (f"    bridge: {bridge}\n" if bridge else "")
    disk = f"{{size: {size}, bus: scsi, storage: local}}" if spell_out else f"{{size: {size}}}"
    nic = f"{{bridge: {bridge}, model: virtio}}" if bridge else "{}"
    listed = NODE + f"    disks: [{disk}]\n    nics: [{nic}]\n"
    a = plan_of(site_dir, short, "short.yaml")
    b = plan_of(site_dir, listed, "listed.yaml")
    assert a.plan.hash == b.plan.hash
    assert a.plan.steps == b.plan.steps
    args = args_of(_create_step(b))
    assert isinstance(args, VmCreateArgs)
    assert "disks" not in _create_step(b).args and "nics" not in _create_step(b).args
    assert args.disk_list()[0].size == size


def test_a_bad_cidr_is_a_validate_error_at_its_position() -> None:
    text = NODE + '    nics:\n      - {ipconfig: "ip=10.0.0.5/40,gw=10.0.0.1"}\n'
    data, smap = load_yaml(text, "m.yaml", SourceMap())
    loaded = manifest_from_data(data, smap, keep_going=True)
    (error,) = loaded.errors
    assert error.location is not None
    assert (error.location.line, error.location.col) == (9, 20)
    assert "ip=10.0.0.5/40" in error.summary


def test_drift_compares_the_boot_disk_the_first_of_the_list(site_dir: Path) -> None:
    """PVE's listing shows the boot disk's size (`maxdisk`): with two disks, the first."""
    plan = plan_of(site_dir, example()).plan
    step = _create_step_of(plan)
    args = args_of(step)
    assert isinstance(args, VmCreateArgs) and args.disk == 10 and len(args.disk_list()) == 2
    resources = {step.address: {"vm_id": 99051, "name": "db"}}

    def live(disk: int) -> LiveHost:
        vm = LiveVm(
            vmid=99051,
            name="db",
            status="running",
            cores=args.cores,
            memory=args.memory,
            disk=disk,
            tags=tuple(args.tags),
        )
        return LiveHost(host="sim", vms=(vm,))

    assert find_drift(plan, live(10), resources) == ()
    (drift,) = find_drift(plan, live(8), resources)
    assert "disk" in drift_line(drift)


def _create_step_of(plan):  # type: ignore[no-untyped-def]
    return next(s for s in plan.steps if s.kind == "pve.vm.create")
