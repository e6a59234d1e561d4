"""What a simulated command prints: each write flushed at once.

The host tools and the guest tools both use these, so a command's output reaches the SSH
channel in the order the real tool would write it.
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Callable

QUIET: contextvars.ContextVar[bool] = contextvars.ContextVar("quiet", default=False)
"""Set by the HTTPS API's worker threads: a request's task log is not the daemon's output."""

Sink = tuple[Callable[[str], None], Callable[[str], None]]
SINK: contextvars.ContextVar[Sink | None] = contextvars.ContextVar("sink", default=None)
"""Set by the daemon when it runs a host tool of an SSH session in-process (`_inproc`): the
command's stdout and stderr go to the session's channel, not to the daemon's own."""


def write_stdout(text: str) -> None:
    if QUIET.get():
        return
    sink = SINK.get()
    if sink is not None:
        sink[0](text)
        return
    sys.stdout.write(text)
    sys.stdout.flush()


def write_stderr(text: str) -> None:
    if QUIET.get():
        return
    text = text if text.endswith("\n") else text + "\n"
    sink = SINK.get()
    if sink is not None:
        sink[1](text)
        return
    sys.stderr.write(text)
    sys.stderr.flush()
