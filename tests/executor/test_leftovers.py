"""Destroying without records: which VMs on a host's listing a destroy selects, and why.

The intent of iac-driver's `TestDiscoverVMsAction` (a listing of `/cluster/resources`,
filtered by name and vmid: a VM whose name or vmid does not match is never taken) and of
its destroy tests (a flat manifest destroys every node; a tiered one delegates the
children, then destroys the root), carried over to pveplan's rules: the manifest's tag,
or a node's name at its pinned vmid; a VM of another name at that vmid is left alone and
named in a warning.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pveplan.executor import (
    Leftovers,
    Wanted,
    match_leftovers,
    node_findings,
    recorded_nodes,
    wanted_nodes,
)
from pveplan.planner import Plan

MANIFEST = "lab"


def vm(vmid: int, name: str, tags: str = "", **extra: Any) -> dict[str, Any]:
    return {"vmid": vmid, "name": name, "tags": tags, "type": "qemu", **extra}


def test_a_node_is_found_by_its_name_at_its_pinned_vmid() -> None:
    wanted = [Wanted(name="w-1", vmid=92001), Wanted(name="w-2", vmid=92002)]
    listing = [vm(92001, "w-1"), vm(92002, "w-2"), vm(100, "unrelated")]
    found = match_leftovers(wanted, listing, MANIFEST)
    assert [(f.vmid, f.vm_name, f.found_by, f.node) for f in found.found] == [
        (92001, "w-1", "name+vmid", "w-1"),
        (92002, "w-2", "name+vmid", "w-2"),
    ]
    assert found.refused == ()


def test_a_vm_of_another_name_at_the_vmid_is_left_alone_with_a_warning() -> None:
    wanted = [Wanted(name="w-1", vmid=92001)]
    found = match_leftovers(wanted, [vm(92001, "payroll-db")], MANIFEST)
    assert found.found == ()
    (refused,) = found.refused
    assert refused.vmid == 92001 and refused.node == "w-1"
    assert "payroll-db" in refused.reason and "never destroyed" in refused.reason


def test_a_vm_tagged_for_the_manifest_is_found_by_its_tag() -> None:
    wanted = [Wanted(name="w-1"), Wanted(name="w-2", vmid=92002)]
    listing = [
        vm(150, "w-1", "pveplan;pveplan-lab"),
        vm(151, "gone-node", "pveplan;pveplan-lab"),  # removed from the manifest since
        vm(152, "w-1", "pveplan;pveplan-other"),  # another manifest's w-1
    ]
    found = match_leftovers(wanted, listing, MANIFEST)
    assert [(f.vmid, f.found_by, f.node) for f in found.found] == [
        (150, "tag", "w-1"),
        (151, "tag", None),
    ]


def test_a_name_alone_never_selects_an_untagged_vm() -> None:
    """No pinned vmid: only the tag can say a VM is this manifest's."""
    found = match_leftovers([Wanted(name="w-1")], [vm(300, "w-1")], MANIFEST)
    assert found == Leftovers()


def test_another_manifests_vm_and_templates_are_left_alone() -> None:
    wanted = [Wanted(name="w-1", vmid=92001), Wanted(name="tpl", vmid=92009)]
    listing = [
        vm(92001, "w-1", "pveplan;pveplan-other"),
        vm(92009, "tpl", template=1),
    ]
    found = match_leftovers(wanted, listing, MANIFEST)
    assert found.found == ()
    reasons = " ".join(r.reason for r in found.refused)
    assert "pveplan-other" in reasons and "template" in reasons


def test_recorded_nodes_are_left_to_the_recorded_destroy() -> None:
    wanted = [Wanted(name="w-1", vmid=92001), Wanted(name="w-2", vmid=92002)]
    listing = [vm(92001, "w-1", "pveplan;pveplan-lab"), vm(92002, "w-2")]
    found = match_leftovers(wanted, listing, MANIFEST, recorded={"w-1": 92001})
    assert [f.vmid for f in found.found] == [92002]


def test_nested_nodes_go_with_their_host_and_are_not_matched_on_the_listing() -> None:
    """A nested node's VM is not on the target host's listing (a VM there of the same
    vmid is somebody else's); it goes with its host's VM, or was never there."""
    wanted = [
        Wanted(name="root-pve", vmid=99011),
        Wanted(name="edge", vmid=99021, path=("root-pve",)),
    ]
    listing = [vm(99011, "root-pve"), vm(99021, "edge")]
    found = match_leftovers(wanted, listing, MANIFEST)
    assert [f.node for f in found.found] == ["root-pve"]
    findings = node_findings(wanted, {}, found)
    assert [(f.name, f.found_by, f.status) for f in findings] == [
        ("root-pve", "name+vmid", "would destroy"),
        ("edge", "parent", "would destroy"),
    ]
    gone = node_findings(wanted, {}, match_leftovers(wanted, [], MANIFEST))
    assert [(f.found_by, f.status) for f in gone] == [(None, "not found"), (None, "not found")]
    refused = match_leftovers(wanted, [vm(99011, "someone-elses-pve")], MANIFEST)
    kept = node_findings(wanted, {}, refused)
    assert [f.status for f in kept] == ["left alone", "left alone"]


def test_every_node_has_a_finding_in_creation_order() -> None:
    wanted = [
        Wanted(name="a", vmid=1001),
        Wanted(name="b", vmid=1002),
        Wanted(name="c"),
        Wanted(name="d", vmid=1004),
    ]
    listing = [
        vm(1002, "b"),
        vm(1003, "c", "pveplan-lab"),
        vm(1004, "x"),
        vm(1005, "z", "pveplan-lab"),
    ]
    leftovers = match_leftovers(wanted, listing, MANIFEST, recorded={"a": 1001})
    findings = node_findings(
        wanted, {"a": 1001}, leftovers, done="destroyed", failed={1003: "boom"}
    )
    assert [(f.name, f.found_by, f.status, f.in_manifest) for f in findings] == [
        ("a", "record", "destroyed", True),
        ("b", "name+vmid", "destroyed", True),
        ("c", "tag", "failed", True),
        ("d", None, "left alone", True),
        ("z", "tag", "destroyed", False),
    ]


def test_wanted_and_recorded_nodes_come_from_plans() -> None:
    from pveplan.planner import Step

    def create(name: str, vmid: int | None) -> Step:
        return Step(
            address=f"node.{name}.create",
            kind="pve.vm.create",
            kind_version=1,
            host="h",
            args={"name": name, "vmid": vmid},
            hash="",
        )

    inner = Plan(manifest="lab", host="pve", steps=(create("edge", 99021),), hash="i")
    plan = Plan(
        manifest="lab",
        host="h",
        steps=(create("pve", 99011), create("free", None)),
        subplans={"node.pve.delegate": inner},
        hash="p",
    )
    assert wanted_nodes(plan) == [
        Wanted(name="pve", vmid=99011),
        Wanted(name="free"),
        Wanted(name="edge", vmid=99021, path=("pve",)),
    ]
    assert recorded_nodes(None, {"node.free.create": {"vm_id": 140}}) == {"free": 140}


# --- the property: nothing is ever selected whose name or vmid does not match ---------

NAMES = st.sampled_from(["w-1", "w-2", "edge", "db", "pve", "other"])
VMIDS = st.integers(min_value=100, max_value=110)
TAGS = st.sampled_from(["", "pveplan", "pveplan;pveplan-lab", "pveplan;pveplan-other", "x"])


@given(
    wanted=st.lists(
        st.builds(Wanted, name=NAMES, vmid=st.one_of(st.none(), VMIDS)),
        unique_by=(lambda w: w.name, lambda w: w.vmid if w.vmid is not None else w.name),
        max_size=5,
    ),  # names and pinned vmids are unique in a manifest (the planner refuses clashes)
    listing=st.lists(
        st.builds(vm, VMIDS, NAMES, TAGS, template=st.sampled_from([0, 0, 0, 1])),
        unique_by=lambda v: v["vmid"],
        max_size=8,
    ),
)
def test_never_selects_a_vm_whose_name_or_vmid_does_not_match(
    wanted: list[Wanted], listing: list[dict[str, Any]]
) -> None:
    found = match_leftovers(wanted, listing, MANIFEST)
    pinned = {(w.name, w.vmid) for w in wanted if w.vmid is not None}
    by_vmid = {v["vmid"]: v for v in listing}
    for hit in found.found:
        listed = by_vmid[hit.vmid]
        assert listed["name"] == hit.vm_name and not listed["template"]
        if hit.found_by == "name+vmid":
            assert (hit.vm_name, hit.vmid) in pinned
            assert "pveplan-other" not in listed["tags"]
        else:
            assert hit.found_by == "tag" and "pveplan-lab" in listed["tags"]
    assert len({f.vmid for f in found.found}) == len(found.found)
    taken = {f.vmid for f in found.found} | {r.vmid for r in found.refused}
    for w in wanted:  # a VM at a pinned vmid of another name: warned about, never taken
        listed = by_vmid.get(w.vmid) if w.vmid is not None else None
        if listed is not None and listed["name"] != w.name and "pveplan-lab" not in listed["tags"]:
            assert w.vmid in {r.vmid for r in found.refused}
            assert w.vmid not in {f.vmid for f in found.found}
    assert taken <= set(by_vmid)
