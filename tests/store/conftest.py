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


BACKENDS = ("local", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The store's contract runs on both backends: every test that takes `store` or
    `where` (and not `root`, which means the local store's files) runs once per backend."""
    uses_store = {"store", "where"} & set(metafunc.fixturenames)
    if uses_store and "root" not in metafunc.fixturenames:
        metafunc.parametrize("backend", BACKENDS)


@pytest.fixture
def backend() -> str:
    """The local store, for tests about its files (`pytest_generate_tests` may override)."""
    return "local"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def where(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Where a store of `backend` is: a directory, or a fresh PostgreSQL database's URL
    (with its password: children given it as an argument open the same store)."""
    if backend == "local":
        return str(tmp_path / "store")
    database = request.getfixturevalue("postgres_db")
    return database.dsn.replace("pveplan@", f"pveplan:{database.password}@", 1)


@pytest.fixture
def store(where: str) -> Iterator[Store]:
    with open_store(where if where.startswith("postgresql://") else Path(where)) as opened:
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
