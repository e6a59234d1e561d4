"""The drift comparison (`planner.find_drift`), pure: a live state equal to what was applied
never shows drift; each hand-made difference shows once, with its live and wanted values
and how apply converges it; the plan carries it under its hash."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pveplan.dsl import load_manifest
from pveplan.executor import live_vm
from pveplan.planner import (
    LiveHost,
    LiveVm,
    Plan,
    VmCreateArgs,
    args_of,
    drift_line,
    drift_reruns,
    find_drift,
    node_statuses,
    verify_plan,
    with_drift,
)
from pveplan.planner._planning import build_plan_file
from pveplan.planner.siteconfig import load_site_config, resolve_manifest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "site-config"


@cache
def workers() -> Plan:
    site = load_site_config(EXAMPLES)
    loaded = load_manifest(str(EXAMPLES / "manifests" / "workers-20.pvp"))
    return build_plan_file(
        loaded, resolve_manifest(loaded, site, "sim"), site, "sim", planned_against=None
    ).plan


def creates(plan: Plan) -> list[tuple[str, VmCreateArgs]]:
    return [
        (s.address, args_of(s, VmCreateArgs))  # type: ignore[misc]
        for s in plan.steps
        if s.kind == "pve.vm.create"
    ]


def as_applied(plan: Plan, vmid_base: int = 500) -> tuple[dict, list[LiveVm]]:
    """The store's resources and the live VMs of `plan` applied exactly as planned."""
    resources, vms = {}, []
    for i, (address, args) in enumerate(creates(plan)):
        vmid = args.vmid or vmid_base + i
        resources[address] = {"vm_id": vmid, "name": args.name}
        vms.append(
            LiveVm(
                vmid=vmid,
                name=args.name,
                status="running",
                cores=args.cores,
                memory=args.memory,
                disk=args.disk,
                tags=tuple(args.tags),
            )
        )
    return resources, vms


@given(
    applied=st.sets(st.integers(0, 19)),
    extra_tags=st.lists(st.sampled_from(["mine", "backup", "Prod"]), max_size=3),
    unknown_sizes=st.booleans(),
    shuffle=st.randoms(use_true_random=False),
)
def test_a_live_state_equal_to_the_applied_one_never_drifts(
    applied: set[int], extra_tags: list[str], unknown_sizes: bool, shuffle
) -> None:
    plan = workers()
    resources, vms = as_applied(plan)
    addresses = list(resources)
    resources = {a: resources[a] for i, a in enumerate(addresses) if i in applied}
    # Fields pveplan does not manage (another tool's tags, sizes PVE has not listed yet)
    # and the listing's order never count.
    vms = [
        msgspec.structs.replace(
            vm,
            tags=(*vm.tags, *extra_tags),
            memory=None if unknown_sizes else vm.memory,
        )
        for vm in vms
    ]
    shuffle.shuffle(vms)
    assert find_drift(plan, LiveHost(host="sim", vms=tuple(vms)), resources) == ()


def test_nothing_applied_means_no_drift_even_with_foreign_vms() -> None:
    plan = workers()
    _, vms = as_applied(plan)
    assert find_drift(plan, LiveHost(host="sim", vms=tuple(vms)), {}) == ()


def _one_changed(**change: object) -> tuple:
    plan = workers()
    resources, vms = as_applied(plan)
    vms[0] = msgspec.structs.replace(vms[0], **change)
    return find_drift(plan, LiveHost(host="sim", vms=tuple(vms)), resources)


def test_each_hand_made_difference_shows_once_with_its_values_and_fix() -> None:
    args = creates(workers())[0][1]
    (memory,) = _one_changed(memory=args.memory * 4)
    assert (memory.field, memory.live, memory.wanted, memory.fix) == (
        "memory",
        str(args.memory * 4),
        str(args.memory),
        "in_place",
    )
    assert drift_line(memory) == (
        f"~ vm {args.name}  memory: {args.memory * 4} (live) -> {args.memory} (manifest)  "
        "(changed outside pveplan)"
    )
    (stopped,) = _one_changed(status="stopped")
    assert stopped.fix == "start" and stopped.address.endswith(".start")
    (grown,) = _one_changed(disk=args.disk + 5)
    assert grown.fix == "report" and "cannot shrink" in grown.cause
    (smaller,) = _one_changed(disk=args.disk - 1)
    assert smaller.fix == "in_place"  # a disk smaller than wanted grows
    (tag,) = _one_changed(tags=("pveplan-workers-20",))
    assert tag.field == "tags" and tag.cause.startswith("pveplan removed")
    (cores,) = _one_changed(cores=args.cores + 1)
    assert cores.field == "cores"


def test_a_vm_gone_or_its_vmid_taken_by_another_is_recreated() -> None:
    plan = workers()
    resources, vms = as_applied(plan)
    gone = LiveHost(host="sim", vms=tuple(vms[1:]))
    (drift,) = find_drift(plan, gone, resources)
    assert drift.fix == "recreate"
    assert drift_line(drift) == (
        f"+ vm {vms[0].name}  (missing on host: destroyed outside pveplan)"
    )
    taken = LiveHost(host="sim", vms=(msgspec.structs.replace(vms[0], name="other"), *vms[1:]))
    assert [d.fix for d in find_drift(plan, taken, resources)] == ["recreate"]


def test_the_plan_carries_its_drift_under_its_hash() -> None:
    plan = workers()
    assert with_drift(plan, ()).hash == plan.hash  # an offline plan hashes as always
    resources, vms = as_applied(plan)
    vms[0] = msgspec.structs.replace(vms[0], status="stopped", memory=1)
    drift = find_drift(plan, LiveHost(host="sim", vms=tuple(vms)), resources)
    probed = with_drift(plan, drift)
    assert probed.hash != plan.hash and verify_plan(probed) == []
    edited = msgspec.structs.replace(probed, drift=probed.drift[:1])
    assert verify_plan(edited) != []  # dropping a drift from a saved plan is seen
    assert drift_reruns(probed) == {d.address for d in drift}


def test_a_listing_entry_in_pveplan_units() -> None:
    entry = {
        "id": "qemu/100",
        "type": "qemu",
        "vmid": 100,
        "node": "pve",
        "name": "db",
        "status": "running",
        "maxcpu": 2,
        "maxmem": 4096 * 1024 * 1024,
        "maxdisk": 40 * 1024**3,
        "tags": "pveplan;pveplan-lab",
    }
    assert live_vm(entry) == LiveVm(
        vmid=100,
        name="db",
        status="running",
        cores=2,
        memory=4096,
        disk=40,
        tags=("pveplan", "pveplan-lab"),
    )
    fresh = live_vm({"id": "qemu/101", "vmid": 101, "node": "pve", "status": "unknown"})
    assert (fresh.cores, fresh.memory, fresh.disk) == (None, None, None)


@cache
def tiered() -> Plan:
    site = load_site_config(EXAMPLES)
    loaded = load_manifest(str(EXAMPLES / "manifests" / "n2-tiered.pvp"))
    return build_plan_file(
        loaded, resolve_manifest(loaded, site, "sim"), site, "sim", planned_against=None
    ).plan


def test_status_of_each_node_unreachable_nested_and_unapplied() -> None:
    plan = tiered()
    resources, vms = as_applied(plan)
    statuses = {s.name: s.state for s in node_statuses(plan, None, resources)}
    assert statuses == {"root-pve": "unreachable", "edge": "not_probed"}
    live = LiveHost(host="sim", vms=tuple(vms))
    assert {s.name: s.state for s in node_statuses(plan, live, {})} == {
        "root-pve": "not_applied",
        "edge": "not_probed",
    }
    assert node_statuses(plan, live, resources)[0].state == "in_sync"


def test_status_names_the_unreachable_nodes_and_fails(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pveplan.cli import _drift, _status
    from pveplan.planner import PlanError
    from tests.cli_runner import run_cli

    def unreachable(*_: object, **__: object) -> LiveHost:
        raise PlanError.at(None, "cannot probe the live state of sim: connection refused")

    monkeypatch.setattr(_drift, "_probe", unreachable)
    monkeypatch.setattr(
        _status, "applied_resources", lambda *_: {"node.edge.create": {"vm_id": 99001}}
    )
    code, out, err = run_cli(["status", "-M", "n1-push", "-H", "sim", "--site-config", str(site)])
    assert code == 1
    assert "connection refused" in err and "Unreachable: edge." in out


def test_markdown_shows_the_drift_bounded_in_every_part() -> None:
    from pveplan.planner import render_markdown, summarize

    plan = workers()
    resources, vms = as_applied(plan)
    vms = [msgspec.structs.replace(vm, memory=1) for vm in vms]
    probed = with_drift(plan, find_drift(plan, LiveHost(host="sim", vms=tuple(vms)), resources))
    site = load_site_config(EXAMPLES)
    loaded = load_manifest(str(EXAMPLES / "manifests" / "workers-20.pvp"))
    plan_file = build_plan_file(
        loaded, resolve_manifest(loaded, site, "sim"), site, "sim", planned_against=None
    )
    plan_file = msgspec.structs.replace(plan_file, plan=probed, hash=probed.hash)
    summary = msgspec.structs.replace(summarize([]), drift=len(probed.drift))
    parts = render_markdown(plan_file, [], summary, max_chars=2_000)
    assert all(len(part) <= 2_000 for part in parts)
    assert "memory: 1 (live) -&gt; " in parts[0] or "memory: 1 (live) -> " in parts[0]
    assert f"and {len(probed.drift) - 3} more" in parts[0] and "20 drifted" in parts[0]


def test_a_step_the_plan_changes_anyway_shows_its_change_not_drift() -> None:
    plan = workers()
    resources, vms = as_applied(plan)
    vms[0] = msgspec.structs.replace(vms[0], memory=1, status="stopped")
    live = LiveHost(host="sim", vms=tuple(vms))
    applied = {s.address: s.hash for s in plan.steps}
    assert {d.field for d in find_drift(plan, live, resources, applied)} == {"memory", "status"}
    create = creates(plan)[0][0]
    applied[create] = "0" * 32  # the manifest changed this VM since it was applied
    assert [d.field for d in find_drift(plan, live, resources, applied)] == ["status"]


def test_a_node_the_store_no_longer_records_is_shown_made_again() -> None:
    """After `destroy -target db` the applied plan is kept (Terraform's targeting) but the
    store has no record of db: the next plan must say apply makes it again, never "No
    changes"; a node never applied is the plan's own add, not drift."""
    plan = workers()
    resources, vms = as_applied(plan)
    gone, args = creates(plan)[0]
    del resources[gone]
    live = LiveHost(host="sim", vms=tuple(v for v in vms if v.name != args.name))
    applied = {s.address: s.hash for s in plan.steps}
    (item,) = find_drift(plan, live, resources, applied)
    assert (item.address, item.node, item.fix) == (gone, args.name, "recreate")
    assert drift_line(item).startswith(f"+ vm {args.name}")
    assert gone in drift_reruns(with_drift(plan, (item,)))
    # Not applied at all (no applied plan), or applied with other args: no drift.
    assert find_drift(plan, live, resources, None) == ()
    assert find_drift(plan, live, resources, {**applied, gone: "other"}) == ()
