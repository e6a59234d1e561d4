"""What a simulated command prints: each write flushed at once.

The host tools and the guest tools both use these, so a command's output reaches the SSH
channel in the order the real tool would write it.
"""

from __future__ import annotations

import contextvars
import sys

QUIET: contextvars.ContextVar[bool] = contextvars.ContextVar("quiet", default=False)
"""Set by the HTTPS API's worker threads: a request's task log is not the daemon's output."""


def write_stdout(text: str) -> None:
    if QUIET.get():
        return
    sys.stdout.write(text)
    sys.stdout.flush()


def write_stderr(text: str) -> None:
    if QUIET.get():
        return
    sys.stderr.write(text if text.endswith("\n") else text + "\n")
    sys.stderr.flush()
