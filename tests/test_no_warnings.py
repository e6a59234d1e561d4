"""The main job prints no warnings: what it imports loads cleanly with warnings as errors.

A dependency that deprecates something we (or asyncssh) use at import time would print
warnings on every run (cryptography 51 did, for DSA: hence the lock's cryptography <51).
This runs in a fresh interpreter, so modules other tests imported cannot hide it.
"""

from __future__ import annotations

import subprocess
import sys

MAIN_JOB_MODULES = (
    "pveplan.cli._apply",
    "pveplan.cli._plan",
    "executor",
    "pveplan.executor.channels",
    "pveplan.sim",
    "store",
    "dsl",
    "asyncssh",
    "trio_asyncio",
)


def test_the_main_jobs_imports_raise_no_warning() -> None:
    code = (
        f"import importlib\nfor name in {MAIN_JOB_MODULES!r}:\n    importlib.import_module(name)\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr == ""
