"""What a simulated command prints: each write flushed at once.

The host tools and the guest tools both use these, so a command's output reaches the SSH
channel in the order the real tool would write it.
"""

from __future__ import annotations

import sys


def write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def write_stderr(text: str) -> None:
    sys.stderr.write(text if text.endswith("\n") else text + "\n")
    sys.stderr.flush()
