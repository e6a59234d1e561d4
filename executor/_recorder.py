"""Group commit: the records of steps that finish together are written in one transaction.

Every finished step must be recorded durably before its dependents start (a killed run
loses nothing that finished). A transaction per step honours that but pays one commit
each: an fsync on the local store, a round trip and a WAL flush on PostgreSQL, and a
thousand VMs reaching `wait_ip` together queue a thousand of them. So a step hands its
record to `GroupCommit.record` and waits: the first waiter commits everything pending in
one transaction while later arrivals queue, and the next waiter commits those. No record
is released before its own commit, so the guarantee is unchanged; only the number of
commits falls. (PostgreSQL and databases before it do the same for the same reason.)

There is no background task: the waiters themselves commit, inside the shielded scope the
scheduler already gives them, so a cancelled run cannot strand a record half-way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from pveplan.store import StepResult, Store

from ._model import Outputs


@dataclass(eq=False)
class _Pending:
    result: StepResult
    resource: Outputs | None
    committed: bool = False
    error: BaseException | None = field(default=None)


class GroupCommit:
    """Records finished steps (result, and the live resource if any) in batched commits."""

    def __init__(self, store: Store, workspace: str) -> None:
        self._store = store
        self._workspace = workspace
        self._lock = trio.Lock()
        self._queue: list[_Pending] = []
        self.commits = 0
        """How many transactions were used (for tests and benchmarks)."""

    async def record(self, result: StepResult, resource: Outputs | None) -> None:
        """Return once `result` (and `resource`: the step's live outputs) is committed."""
        mine = _Pending(result, resource)
        self._queue.append(mine)
        async with self._lock:
            if not mine.committed and mine.error is None:
                batch, self._queue = self._queue, []
                try:
                    await trio.to_thread.run_sync(self._commit, batch)
                except BaseException as exc:
                    for item in batch:
                        item.error = exc
                else:
                    for item in batch:
                        item.committed = True
        if mine.error is not None:
            raise mine.error

    def _commit(self, batch: list[_Pending]) -> None:
        self.commits += 1
        self._store.record_steps(self._workspace, [(item.result, item.resource) for item in batch])
