"""iac-driver's node statuses and order (cli/_homestak_report.py), from run reports built by hand.

What iac-driver's tests pin down (test_operator_state, test_operator_executor,
test_operator_graph), in our words: every node of the manifest is reported, untried ones
`pending`; the failed one `failed` (nested ones too), its untried siblings `pending`; a pve
host whose only trouble is its child `completed`; a destroy's nodes and a rolled-back
node `destroyed`; create order is breadth-first from the roots, in manifest order.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pveplan.cli._homestak_report import (
    Phase,
    context_of,
    create_order,
    homestak_status,
    phases_of_test,
    report_nodes,
    scenario_report,
    verb_report,
)
from pveplan.executor import Outcome, RunReport
from pveplan.planner import Plan
from tests.cli_runner import run_cli
from tests.executor.test_display import step

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "site-config"

# host `hv` (pve) with children kid-c, kid-a, kid-b (in that manifest order), and a root VM
# `solo` listed after hv: create order hv, solo, kid-c, kid-a, kid-b.
ORDER = [("hv", None), ("solo", None), ("kid-c", "hv"), ("kid-a", "hv"), ("kid-b", "hv")]
BFS = ["hv", "solo", "kid-c", "kid-a", "kid-b"]


def _vm_steps(name: str, vmid: int, on: str = "sim") -> tuple:
    return (
        step(f"node.{name}.create", "pve.vm.create", on=on, vmid=vmid),
        step(f"node.{name}.start", "pve.vm.start", f"node.{name}.create", on=on),
    )


def lab_plan(action: str = "apply") -> Plan:
    inner = Plan(
        manifest="t",
        host="hv",
        action=action,  # type: ignore[arg-type]
        steps=tuple(
            s
            for n, i in (("kid-a", 121), ("kid-b", 122), ("kid-c", 123))
            for s in _vm_steps(n, i, "hv")
        ),
        hash="inner",
    )
    delegate = step("node.hv.delegate", "subplan.delegate", "node.hv.start", host="hv")
    return Plan(
        manifest="t",
        host="sim",
        action=action,  # type: ignore[arg-type]
        steps=(*_vm_steps("hv", 110), delegate, *_vm_steps("solo", 111)),
        subplans={"node.hv.delegate": inner},
        hash="outer",
    )


def out(address: str, status: str, *path: str, error: str = "", **outputs: object) -> Outcome:
    return Outcome(
        address=address,
        status=status,  # type: ignore[arg-type]
        error=error,
        duration=1.0 if status in ("ok", "failed") else 0.0,
        path=path,
        outputs=outputs,  # type: ignore[arg-type]
    )


def run(*outcomes: Outcome, status: str = "failed", rolled_back: tuple[str, ...] = ()) -> RunReport:
    return RunReport(
        plan_hash="outer",
        status=status,  # type: ignore[arg-type]
        outcomes=tuple(o for o in outcomes if not o.path),
        nested=tuple(o for o in outcomes if o.path),
        rolled_back=rolled_back,
    )


def statuses(report: RunReport | None, plan: Plan, **kw: object) -> list[tuple[str, str]]:
    nodes = report_nodes(report, plan, order=ORDER, **kw)  # type: ignore[arg-type]
    return [(n.name, n.status) for n in nodes]


FAILED_NESTED = run(
    out("node.hv.create", "ok", vm_id=110, ip="127.0.0.10"),
    out("node.hv.start", "ok"),
    out("node.hv.delegate", "failed", error="hv › node.kid-c.create: boom"),
    out("node.solo.create", "ok", vm_id=111),
    out("node.solo.start", "ok"),
    out("node.kid-c.create", "failed", "hv", error="task qmcreate failed: boom"),
    out("node.kid-c.start", "skipped", "hv", error="node.kid-c.create did not succeed"),
    out("node.kid-a.create", "ok", "hv"),  # it began before the failure, then stopped
    out("node.kid-a.start", "skipped", "hv", error="not started: the run is stopping"),
    out("node.kid-b.create", "skipped", "hv", error="not started: the run is stopping"),
    out("node.kid-b.start", "skipped", "hv", error="node.kid-b.create did not succeed"),
)


def test_the_status_words_are_iac_drivers() -> None:
    assert homestak_status("completed", destroy=False) == "completed"
    assert homestak_status("cached", destroy=False) == "completed"
    assert homestak_status("failed", destroy=False) == "failed"
    assert homestak_status("skipped", destroy=False) == "pending"
    assert homestak_status("-", destroy=False) == "pending"
    assert homestak_status("destroyed", destroy=True) == "destroyed"
    assert homestak_status("cached", destroy=True) == "destroyed"
    assert homestak_status("completed", destroy=False, rolled_back=True) == "destroyed"
    assert homestak_status("failed", destroy=False, rolled_back=True) == "failed"


def test_a_failed_nested_child_is_failed_its_untried_siblings_pending_its_host_completed() -> None:
    assert statuses(FAILED_NESTED, lab_plan()) == [
        ("hv", "completed"),
        ("solo", "completed"),
        ("kid-c", "failed"),
        ("kid-a", "pending"),
        ("kid-b", "pending"),
    ]
    nodes = {n.name: n for n in report_nodes(FAILED_NESTED, lab_plan(), order=ORDER)}
    assert nodes["kid-c"].error == "task qmcreate failed: boom"
    assert nodes["kid-b"].error == "not started: the run is stopping"
    assert nodes["hv"].error is None and nodes["hv"].vm_id == 110
    assert nodes["kid-b"].vm_id == 122  # from the plan, though it never ran


def test_nodes_the_run_never_reached_are_pending() -> None:
    stopped = run(out("node.hv.create", "failed", error="no room"))
    assert statuses(stopped, lab_plan()) == [
        ("hv", "failed"),
        ("solo", "pending"),
        ("kid-c", "pending"),
        ("kid-a", "pending"),
        ("kid-b", "pending"),
    ]


def test_a_rolled_back_node_and_what_it_hosted_are_destroyed_the_failed_one_stays_failed() -> None:
    rolled = run(
        out("node.hv.create", "ok"),
        out("node.hv.start", "ok"),
        out("node.hv.delegate", "failed", error="hv › node.kid-c.start: boom"),
        out("node.solo.create", "ok"),
        out("node.solo.start", "ok"),
        out("node.kid-a.create", "ok", "hv"),
        out("node.kid-a.start", "ok", "hv"),
        out("node.kid-b.create", "ok", "hv"),
        out("node.kid-b.start", "ok", "hv"),
        out("node.kid-c.create", "ok", "hv"),
        out("node.kid-c.start", "failed", "hv", error="boom"),
        rolled_back=("node.solo.create", "node.hv.create"),
    )
    assert statuses(rolled, lab_plan()) == [
        ("hv", "destroyed"),
        ("solo", "destroyed"),
        ("kid-c", "failed"),
        ("kid-a", "destroyed"),  # gone with its host
        ("kid-b", "destroyed"),
    ]


def test_a_destroy_lists_every_node_of_the_manifest_destroyed() -> None:
    # A destroy plan names the top-level nodes; their subtrees go with destroy_subtree.
    destroy = Plan(
        manifest="t",
        host="sim",
        action="destroy",
        steps=(
            step("node.hv.destroy_subtree", "subplan.destroy", host="hv"),
            step("node.hv.destroy", "pve.vm.destroy", "node.hv.destroy_subtree"),
            step("node.solo.destroy", "pve.vm.destroy"),
        ),
        hash="down",
    )
    done = run(
        out("node.hv.destroy_subtree", "ok"),
        out("node.hv.destroy", "ok"),
        out("node.solo.destroy", "ok"),
        status="ok",
    )
    got = statuses(done, destroy, layout=lab_plan(), destroy=True)
    assert got == [(name, "destroyed") for name in BFS]


def test_a_failed_destroy_still_reports_a_removed_subtree_destroyed() -> None:
    destroy = Plan(
        manifest="t",
        host="sim",
        action="destroy",
        steps=(
            step("node.hv.destroy_subtree", "subplan.destroy", host="hv"),
            step("node.hv.destroy", "pve.vm.destroy", "node.hv.destroy_subtree"),
            step("node.solo.destroy", "pve.vm.destroy"),
        ),
        hash="down",
    )
    done = run(
        out("node.hv.destroy_subtree", "ok"),
        out("node.hv.destroy", "failed", error="VM is locked"),
        out("node.solo.destroy", "skipped", error="not started: the run is stopping"),
    )
    assert statuses(done, destroy, layout=lab_plan(), destroy=True) == [
        ("hv", "failed"),
        ("solo", "pending"),  # never tried: still there
        ("kid-c", "destroyed"),  # gone with hv's subtree
        ("kid-a", "destroyed"),
        ("kid-b", "destroyed"),
    ]


def test_a_dry_run_lists_every_node_pending_in_create_order() -> None:
    assert statuses(None, lab_plan()) == [(name, "pending") for name in BFS]


def test_without_the_manifest_the_plans_tree_gives_the_order() -> None:
    nodes = report_nodes(None, lab_plan())
    assert [n.name for n in nodes][:2] == ["hv", "solo"]  # roots first, then hv's children
    assert {n.name for n in nodes} == set(BFS)


def test_create_order_is_breadth_first_from_the_roots_in_manifest_order() -> None:
    pairs = [("a", None), ("a1", "a"), ("b", None), ("a11", "a1"), ("b1", "b"), ("a2", "a")]
    assert create_order(pairs) == ["a", "b", "a1", "a2", "b1", "a11"]


@given(st.lists(st.integers(0, 30), min_size=1, max_size=25))
def test_create_order_lists_each_node_once_parents_before_children(parents: list[int]) -> None:
    # node i's parent is some earlier node (or none): any tree, in any manifest order
    pairs = [(f"n{i}", f"n{p}" if p < i else None) for i, p in enumerate(parents)]
    order = create_order(pairs)
    assert sorted(order) == sorted(name for name, _ in pairs)
    place = {name: index for index, name in enumerate(order)}
    depth: dict[str, int] = {}
    for name, parent in pairs:
        depth[name] = depth[parent] + 1 if parent else 0
        if parent:
            assert place[parent] < place[name]
    assert [depth[n] for n in order] == sorted(depth[n] for n in order)  # level by level


def test_the_json_has_iac_drivers_keys_and_context() -> None:
    nodes = report_nodes(FAILED_NESTED, lab_plan(), order=ORDER)
    report = verb_report("create", False, 12.345, nodes)
    assert list(report) == ["verb", "success", "duration_seconds", "nodes", "context", "error"]
    assert report["duration_seconds"] == 12.35
    assert set(report["nodes"][0]) == {"name", "status", "vm_id", "ip", "duration", "error"}
    assert report["error"] == "kid-c: task qmcreate failed: boom"
    assert report["context"]["hv_vm_id"] == 110 and report["context"]["hv_ip"] == "127.0.0.10"
    assert context_of(()) == {}
    assert verb_report("create", True, 1.0, nodes[:1])["error"] is None
    json.dumps(report)


def test_a_scenario_report_has_phases_and_its_first_failure_as_error() -> None:
    phases = [
        Phase(name="ensure_pve", status="passed", duration=3.21),
        Phase(name="configure", status="failed", duration=1.0, message="apt failed"),
        Phase(name="write_node", status="skipped"),
    ]
    report = scenario_report("pve-setup", False, 4.26, phases, context={"a": 1, "_private": 2})
    assert report == {
        "scenario": "pve-setup",
        "success": False,
        "duration_seconds": 4.3,
        "phases": [
            {"name": "ensure_pve", "status": "passed", "duration": 3.2},
            {"name": "configure", "status": "failed", "duration": 1.0},
            {"name": "write_node", "status": "skipped", "duration": 0.0},
        ],
        "context": {"a": 1},
        "error": "apt failed",
    }


def test_the_test_verbs_phases_as_iac_driver_names_them() -> None:
    nodes = report_nodes(FAILED_NESTED, lab_plan(), order=ORDER)
    phases = phases_of_test(False, nodes, 5.0, {}, (True, 2.0))
    assert [(p.name, p.status) for p in phases] == [("create", "failed"), ("destroy", "passed")]
    assert phases[0].message == "Failed node(s): kid-c"
    good = report_nodes(run(out("node.solo.create", "ok"), status="ok"), lab_plan(), order=ORDER)
    phases = phases_of_test(True, good, 5.0, {"solo": "no SSH"}, (True, 2.0))
    assert [(p.name, p.status) for p in phases] == [
        ("create", "passed"),
        ("verify", "failed"),
        ("destroy", "passed"),
    ]
    assert phases[1].message == "SSH verification failed: solo: no SSH"
    assert phases_of_test(True, good, 5.0, {}, None)[-1].name == "verify"  # no destroy ran


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "site-config"
    shutil.copytree(EXAMPLES, target)
    monkeypatch.setenv("PVEPLAN_STORE", str(tmp_path / "store"))
    monkeypatch.delenv("HOMESTAK_SITE_CONFIG", raising=False)
    return target


@pytest.mark.parametrize("verb", ["create", "destroy", "test"])
def test_dry_run_json_output_lists_every_node_pending_in_create_order(
    site: Path, tmp_path: Path, verb: str
) -> None:
    reports = tmp_path / "reports"
    flags = ["--site-config", str(site), "--dry-run", "--json-output", "-r", str(reports)]
    code, stdout, err = run_cli([verb, "-M", "lab", "-H", "sim", *flags])
    assert code == 0, err
    report = json.loads(stdout)
    assert report["verb"] == verb and report["success"] is True and report["dry_run"] is True
    assert {n["status"] for n in report["nodes"]} == {"pending"}
    names = [n["name"] for n in report["nodes"]]
    # lab.yaml: lab-pve, then its children in manifest order (web before db), then deeper
    assert names[:5] == ["lab-pve", "web-01", "web-02", "web-03", "db-01"]
    assert names[-1] == "probe" and len(names) == len(set(names))
    assert report["context"] == {} and report["error"] is None
    assert "changes" in report  # the plan diff (destroy: what the store records), alongside
    assert not reports.exists()  # a dry run writes no report


STEPS = [s.address for s in lab_plan().steps if s.address != "node.hv.delegate"]
NESTED = [s.address for s in lab_plan().subplans["node.hv.delegate"].steps]


@given(
    st.lists(st.sampled_from(["ok", "cached", "failed", "skipped", None]), min_size=4, max_size=4),
    st.lists(st.sampled_from(["ok", "cached", "failed", "skipped", None]), min_size=6, max_size=6),
    st.sampled_from(["ok", "failed", "skipped", None]),
)
def test_whatever_happened_every_node_is_listed_once_in_create_order(
    own: list[str | None], inner: list[str | None], delegate: str | None
) -> None:
    outcomes = [out(a, s) for a, s in zip(STEPS, own, strict=True) if s]
    outcomes += [out(a, s, "hv") for a, s in zip(NESTED, inner, strict=True) if s]
    if delegate:
        outcomes.append(out("node.hv.delegate", delegate))
    failed = any(o.status == "failed" for o in outcomes)
    nodes = report_nodes(
        run(*outcomes, status="failed" if failed else "ok"), lab_plan(), order=ORDER
    )
    assert [n.name for n in nodes] == BFS
    assert {n.status for n in nodes} <= {"pending", "completed", "failed", "destroyed"}
    own_failure = {o.address.split(".")[1] for o in outcomes if o.status == "failed"} - {"hv"}
    own_failure |= (
        {"hv"}
        if any(
            o.status == "failed"
            for o in outcomes
            if o.address.startswith("node.hv.") and o.address != "node.hv.delegate"
        )
        else set()
    )
    for node in nodes:
        if node.name in own_failure:
            assert node.status == "failed"
        elif node.status == "failed":  # only a host whose delegate failed with nothing below
            assert node.name == "hv" and delegate == "failed"
            assert not own_failure & {"kid-a", "kid-b", "kid-c"}
