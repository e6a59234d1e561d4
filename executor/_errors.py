"""The executor's one error root.

Every exception the executor raises on purpose derives from `ExecutorError`, so a caller
(the CLI, a test, a future library user) can catch "the executor refused or failed" in one
clause and let anything else (a bug) keep its traceback. The families under it keep their
own names and fields: `StepFailed` (a step did not reach its goal), `ChannelError` (a
command or file could not be carried), `PveError` (PVE said no), the remote protocol's,
the pull node's and the spec server's errors. The simulator (`pveplan.sim`) is a far end
of its own and is not under this root.

Nothing here is raised directly; it carries no fields of its own, so making a class derive
from it changes nothing but what `except ExecutorError` catches.
"""

from __future__ import annotations


class ExecutorError(Exception):
    """Root of every error the executor raises on purpose (never raised itself)."""
