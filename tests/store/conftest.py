"""Helpers shared by the store tests: a fresh store per test, and real child processes."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pveplan.store import Store, open_store

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(root: Path) -> Iterator[Store]:
    with open_store(root) as opened:
        yield opened


def python(code: str, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    """A real `python -c` child using the installed store package."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        text=True,
        **kwargs,  # type: ignore[call-overload]
    )


def wait_for_line(proc: subprocess.Popen[str], expected: str, timeout: float = 10.0) -> str:
    """Read the child's stdout until a line starting with `expected` (or fail)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(expected):
            return line.strip()
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"child never printed {expected!r} (exit {proc.poll()})")


def flip_byte(path: Path, offset: int = 0) -> None:
    """Damage a (read-only) blob in place, as a bad disk would."""
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0x01
    path.write_bytes(bytes(data))
