"""A run's deadline (`--timeout SECONDS`): one trio cancel scope around the whole run.

iac-driver checks its timeout between phases, so a phase that hangs runs on; here the
deadline cancels whatever is running at that moment, at its next checkpoint. What a
cancelled run leaves is what Ctrl-C leaves: every finished step is recorded (the
scheduler records under a shield), the run record is closed as "interrupted", the
workspace lock is released, and the same command resumes from the records. The caller
learns of the expiry from `DeadlineExpired`, never from a result that looks complete.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from ._errors import ExecutorError

T = TypeVar("T")
A = TypeVar("A")


class DeadlineExpired(ExecutorError):
    """The run's deadline passed; what had finished is recorded."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"the run's deadline (--timeout) passed; stopped what was running after "
            f"{seconds:.1f} s of this run"
        )
        self.seconds = seconds


def with_deadline(
    body: Callable[[A], Awaitable[T]], deadline: float | None
) -> Callable[[A], Awaitable[T]]:
    """`body`, cancelled when the wall clock reaches `deadline` (a `time.time()` value;
    None: no deadline). Expiry raises `DeadlineExpired` out of the wrapped call."""
    if deadline is None:
        return body

    async def bounded(arg: A) -> T:
        started = time.time()
        with trio.move_on_after(max(0.0, deadline - started)) as scope:
            return await body(arg)
        assert scope.cancelled_caught
        raise DeadlineExpired(time.time() - started)

    return bounded
