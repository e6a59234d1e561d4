"""How a `PveRequest` reaches PVE: the `PveTransport` protocol, its error, and task following.

A transport carries one request and brings back its data; that is all it knows. Today's is
`PveshTransport` (`pvesh` on the host, over a command channel); PVE's HTTPS API with an API
token is the next, and implements the same protocol:

- `call` returns the decoded `data` of PVE's answer (None when there is none), never the
  envelope; a task-returning request returns its UPID as soon as PVE hands it out.
- Everything that goes wrong is one `PveError` whose message starts with what was asked
  (`create /nodes/pve/qemu: ...`, in the transport's words) followed by PVE's own message,
  so callers can match PVE's texts ("already exists", "does not exist") whatever carried
  them; a request that could not be carried at all (the channel or connection failed) is a
  PveError too, naming the host.
- `timeout` bounds the one call; the caller bounds a task it follows.

Task following is not the transport's: whether a task ended well is asked through the same
transport (`task_status`), with the same rules for all of them (`follow_task`), because
PVE reports a failed worker only in the task's exit status, never in the call that started it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import trio

from .._errors import ExecutorError
from ._requests import PveRequest, task_status

TASK_POLL_FIRST = 0.05
TASK_POLL_MAX = 2.0
STATUS_TIMEOUT = 120.0


class PveError(ExecutorError):
    """A PVE operation failed; the message is PVE's, prefixed with what was attempted.

    `status` is a failed task's exit status (empty when the call itself failed)."""

    def __init__(self, message: str, *, status: str = "") -> None:
        super().__init__(message)
        self.status = status


class PveTransport(Protocol):
    """Carries PVE requests to one node and brings back their data (see the module doc)."""

    async def call(self, request: PveRequest, *, timeout: float) -> Any:
        """The `data` of PVE's answer to `request`; PveError when PVE refuses it or it could
        not be carried. Cancelling abandons the call (a task PVE started runs on)."""
        ...


def is_upid(data: object) -> bool:
    return isinstance(data, str) and data.startswith("UPID:")


def task_ended(status: Mapping[str, Any]) -> bool:
    """Whether a task (its `task_status` answer) has ended well: False while it runs, True
    when it stopped with `OK` or `WARNINGS: N`; a PveError with its exit status otherwise."""
    if status.get("status") != "stopped":
        return False
    exit_status = str(status.get("exitstatus", ""))
    if exit_status == "OK" or exit_status.startswith("WARNINGS"):
        return True
    raise PveError(f"task {status.get('type', '')} failed: {exit_status}", status=exit_status)


async def follow_task(transport: PveTransport, node: str, upid: str, *, timeout: float) -> None:
    """Wait until task `upid` on `node` ends (polling with backoff); PveError if it failed,
    trio.TooSlowError after `timeout`."""
    delay = TASK_POLL_FIRST
    with trio.fail_after(timeout):
        while not task_ended(await transport.call(task_status(node, upid), timeout=STATUS_TIMEOUT)):
            await trio.sleep(delay)
            delay = min(delay * 2, TASK_POLL_MAX)
