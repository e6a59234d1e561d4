"""Group commit of step records: batched, yet no record is released before its commit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from pveplan.executor._recorder import GroupCommit
from pveplan.store import StepResult, Store, open_store


def result(i: int) -> StepResult:
    return StepResult(
        run_key=f"rk-{i}",
        step_hash="h",
        address=f"node.n{i}.create",
        kind="pve.vm.create",
        status="ok",
        outputs={"vm_id": 100 + i},
        started=1.0,
        finished=2.0,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(tmp_path / "store") as opened:
        yield opened


def test_steps_finishing_together_share_commits_and_each_waits_for_its_own(store: Store) -> None:
    recorder = GroupCommit(store, "lab@sim")
    seen_after_return: list[bool] = []

    async def finish(i: int) -> None:
        await recorder.record(result(i), {"vm_id": 100 + i} if i % 2 == 0 else None)
        # Returned: the record is committed, visible to a fresh reader at once.
        with open_store(store.local_dir) as other:
            seen_after_return.append(other.get_result(f"rk-{i}") is not None)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for i in range(50):
                nursery.start_soon(finish, i)

    trio.run(main)
    assert seen_after_return == [True] * 50
    assert recorder.commits < 50  # batched: fewer transactions than records
    live = {r.address: r.outputs for r in store.resources("lab@sim")}
    assert live == {f"node.n{i}.create": {"vm_id": 100 + i} for i in range(0, 50, 2)}


def test_a_failed_commit_fails_every_step_of_its_batch_and_records_none(store: Store) -> None:
    recorder = GroupCommit(store, "lab@sim")
    errors: list[BaseException] = []

    async def finish(r: StepResult) -> None:
        try:
            await recorder.record(r, {"no": 1.5})  # a float output: the store refuses it
        except ValueError as exc:
            errors.append(exc)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for i in range(5):
                nursery.start_soon(finish, result(i))

    trio.run(main)
    assert len(errors) == 5
    assert all(store.get_result(f"rk-{i}") is None for i in range(5))
