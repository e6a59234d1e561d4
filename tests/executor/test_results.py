"""Node rows and the final table: one row per node of every level, from the report's own
outcomes, the nested hosts' outcomes, and the delegate's outputs."""

from __future__ import annotations

from pveplan.executor import NodeRow, Outcome, RunReport, node_rows, node_table
from pveplan.executor._results import outcome_of
from tests.executor.test_display import event, tiered

DELEGATE_OUTPUTS = {
    "subplan": "inner",
    "ran": 2,
    "node.edge.vm_id": 99021,
    "node.edge.ip": "127.1.1.2",
}


def report(*outcomes: Outcome, nested: tuple[Outcome, ...] = (), status: str = "ok") -> RunReport:
    return RunReport(plan_hash="outer", status=status, outcomes=outcomes, nested=nested)  # type: ignore[arg-type]


def ok(address: str, duration: float = 1.0, **outputs: object) -> Outcome:
    return Outcome(address=address, status="ok", duration=duration, outputs=outputs)  # type: ignore[arg-type]


def cached(address: str, *path: str) -> Outcome:
    return Outcome(address=address, status="cached", path=path)


def nested(address: str, status: str, duration: float = 0.0, error: str = "") -> Outcome:
    return Outcome(
        address=address,
        status=status,  # type: ignore[arg-type]
        duration=duration,
        error=error,
        path=("root-pve",),
    )


def by_label(rows: list[NodeRow]) -> dict[str, tuple]:
    return {r.label: (r.status, r.vm_id, r.ip, r.duration) for r in rows}


def test_nested_outcomes_give_nested_rows_with_the_delegates_fields() -> None:
    done = report(
        cached("image.pve-9.ensure"),
        ok("node.root-pve.create", 2.0, vm_id=99011),
        ok("node.root-pve.start", 1.5),
        ok("node.root-pve.delegate", 9.0, **DELEGATE_OUTPUTS),
        nested=(
            nested("node.edge.create", "ok", 1.25),
            nested("node.edge.start", "ok", 0.5),
        ),
    )
    rows = node_rows(done, tiered())
    assert [r.label for r in rows] == ["root-pve", "root-pve › edge"]
    assert by_label(rows) == {
        "root-pve": ("completed", 99011, None, 3.5),  # its own steps, not its subtree's time
        "root-pve › edge": ("completed", 99021, "127.1.1.2", 1.75),
    }


def test_a_host_whose_own_steps_were_cached_is_cached_while_its_child_ran() -> None:
    done = report(
        cached("node.root-pve.create"),
        cached("node.root-pve.start"),
        ok("node.root-pve.delegate", 3.0, **DELEGATE_OUTPUTS),
        nested=(cached("node.edge.create", "root-pve"), nested("node.edge.start", "ok", 0.5)),
    )
    assert [(r.label, r.status) for r in node_rows(done)] == [
        ("root-pve", "cached"),
        ("root-pve › edge", "completed"),
    ]


def test_a_nested_failure_fails_the_nested_node_not_its_host() -> None:
    done = report(
        ok("node.root-pve.create", vm_id=99011),
        Outcome(address="node.root-pve.delegate", status="failed", error="root-pve › edge: boom"),
        nested=(
            nested("node.edge.create", "failed", 0.5, "boom"),
            nested("node.edge.start", "skipped", error="node.edge.create did not succeed"),
        ),
        status="failed",
    )
    rows = {r.label: r for r in node_rows(done, tiered())}
    assert (rows["root-pve"].status, rows["root-pve"].error) == ("completed", "")
    assert (rows["root-pve › edge"].status, rows["root-pve › edge"].error) == ("failed", "boom")


def test_a_delegate_that_failed_with_nothing_below_fails_the_host_and_skips_its_subtree() -> None:
    done = report(
        ok("node.root-pve.create", vm_id=99011),
        Outcome(address="node.root-pve.delegate", status="failed", error="no SSH"),
        status="failed",
    )
    rows = {r.label: r for r in node_rows(done, tiered())}
    assert (rows["root-pve"].status, rows["root-pve"].error) == ("failed", "no SSH")
    assert rows["root-pve › edge"].status == "skipped"
    assert rows["root-pve › edge"].vm_id == 99021  # from the plan: nothing reported it


def test_without_nested_outcomes_nested_nodes_share_their_delegates_status() -> None:
    done = report(
        ok("node.root-pve.create", vm_id=99011),
        ok("node.root-pve.delegate", 5.0, **DELEGATE_OUTPUTS),
    )
    assert by_label(node_rows(done)) == {
        "root-pve": ("completed", 99011, None, 1.0),
        "edge": ("completed", 99021, "127.1.1.2", None),  # placed by the outputs alone
    }


def test_a_destroy_run_reports_destroyed_nodes_including_those_gone_with_their_host() -> None:
    plan = tiered(action="destroy")
    done = report(
        ok("node.root-pve.destroy_subtree", 0.5, subplan="inner", gone=True),
        ok("node.root-pve.destroy", 2.0),
    )
    assert [(r.label, r.status, r.vm_id) for r in node_rows(done, plan)] == [
        ("root-pve", "destroyed", 99011),
        ("root-pve › edge", "destroyed", 99021),
    ]


def test_a_node_the_run_never_reached_is_unknown() -> None:
    rows = node_rows(report(ok("node.root-pve.create")), tiered())
    assert by_label(rows)["root-pve › edge"] == ("-", 99021, None, None)


def test_rows_follow_events_turned_outcomes() -> None:
    """What a display hands over: outcomes rebuilt from the forwarded events."""
    outcomes = [
        outcome_of(event("node.edge.create", "finished", 2, "root-pve", duration=1.0)),
        outcome_of(event("node.edge.create", "started", 1, "root-pve")),
    ]
    assert outcomes[1] is None
    assert outcomes[0] == Outcome(
        address="node.edge.create", status="ok", duration=1.0, path=("root-pve",)
    )


def test_the_table_aligns_columns_and_marks_the_unknown() -> None:
    rows = [
        NodeRow(name="root-pve", status="completed", vm_id=99011, ip="127.1.0.2", duration=14.1),
        NodeRow(name="edge", path=("root-pve",), status="failed", duration=0.5),
    ]
    assert node_table(rows).splitlines() == [
        "  node             status     vmid   address    duration",
        "  root-pve         completed  99011  127.1.0.2     14.1s",
        "  root-pve › edge  failed     -      -              0.5s",
    ]


def test_a_long_table_folds_the_cached_rows() -> None:
    rows = [NodeRow(name=f"w-{i}", status="cached") for i in range(50)]
    rows[7] = NodeRow(name="w-7", status="completed", duration=3.0)
    lines = node_table(rows, limit=40).splitlines()
    assert [line.split()[0] for line in lines[1:-1]] == ["w-7"]
    assert lines[-1] == "  ... and 49 cached node(s), not listed"
    assert len(node_table(rows[:40], limit=40).splitlines()) == 41
    assert node_table([]) == ""
