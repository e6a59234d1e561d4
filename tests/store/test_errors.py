"""Failures the user's machine causes are StoreErrors with a clear summary, not tracebacks."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

import pveplan.store._schema as store_schema
from pveplan.store import StepResult, StoreError, open_store
from pveplan.store._errors import from_exception

from .conftest import python

needs_non_root = pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits")


def test_store_error_has_the_shape_the_cli_renders() -> None:
    err = StoreError("cannot do it", "try this")
    assert (err.summary, err.detail, err.location) == ("cannot do it", "try this", None)
    [diag] = err.diagnostics
    assert (diag.summary, diag.detail, diag.location, diag.severity) == (
        "cannot do it",
        "try this",
        None,
        "error",
    )
    assert str(err) == "cannot do it"


def test_a_store_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("not a directory")
    with pytest.raises(StoreError, match=f"store path {path} exists and is not a directory"):
        open_store(path)


def test_a_store_path_under_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="cannot create the store"):
        open_store(tmp_path / "file" / "store")


@needs_non_root
def test_an_unwritable_directory_is_a_store_error(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(StoreError, match="is not writable"):
            open_store(tmp_path / "store")
    finally:
        tmp_path.chmod(0o700)


def test_a_corrupt_database_file_is_a_store_error(root: Path) -> None:
    open_store(root).close()
    (root / "store.sqlite").write_bytes(b"this is no database " * 500)
    for suffix in ("-wal", "-shm"):
        (root / f"store.sqlite{suffix}").unlink(missing_ok=True)
    with pytest.raises(StoreError) as info:
        open_store(root)
    assert info.value.summary.startswith("cannot open the store: the store database ")
    assert "unreadable" in info.value.summary
    assert "move it aside" in info.value.detail


def test_a_busy_database_is_a_store_error(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_schema, "BUSY_TIMEOUT_S", 0.1)
    with open_store(root) as opened:
        other = sqlite3.connect(root / "store.sqlite", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process's long write transaction
        try:
            with pytest.raises(StoreError, match="is busy"):
                opened.record_result(
                    StepResult(
                        run_key="k",
                        step_hash="h",
                        address="a",
                        kind="k",
                        status="ok",
                        started=0.0,
                        finished=0.0,
                    )
                )
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert opened.get_result("k") is None


FILE_SIZE_LIMIT = r"""
import resource, signal, sys
from pathlib import Path
from pveplan.store import StoreError, open_store
with open_store(Path(sys.argv[1])) as s:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
    try:
        s.put_object(b"x" * 1_000_000)
    except StoreError as exc:
        print(exc.summary)
        sys.exit(3)
"""


def test_running_out_of_room_mid_write_is_a_store_error(root: Path) -> None:
    """A real write failure (the file size limit stands in for a full disk)."""
    proc = python(FILE_SIZE_LIMIT, str(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 3, err
    assert out.startswith("cannot store object ")
    assert "Traceback" not in err
    with open_store(root) as opened:
        assert opened.verify().damage == ()


@pytest.mark.parametrize(
    ("exc", "phrase"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "is full"),
        (OSError(errno.EROFS, "Read-only file system"), "is not writable"),
        (OSError(errno.EACCES, "Permission denied"), "is not writable"),
    ],
)
def test_os_errors_are_explained(exc: OSError, phrase: str) -> None:
    err = from_exception(exc, "record a step result", Path("/s"))
    assert err.summary.startswith("cannot record a step result: ")
    assert phrase in err.summary and "/s" in err.summary
    assert err.detail


@pytest.mark.parametrize(
    ("name", "phrase"),
    [
        ("SQLITE_FULL", "is full"),
        ("SQLITE_READONLY", "is not writable"),
        ("SQLITE_CORRUPT", "is unreadable"),
        ("SQLITE_NOTADB", "is unreadable"),
        ("SQLITE_BUSY", "is busy"),
    ],
)
def test_sqlite_errors_are_explained(name: str, phrase: str) -> None:
    exc = sqlite3.OperationalError("whatever sqlite said")
    exc.sqlite_errorname = name  # type: ignore[attr-defined]
    assert phrase in from_exception(exc, "do it", Path("/s")).summary


def test_using_a_closed_store_is_a_bug(root: Path) -> None:
    opened = open_store(root)
    opened.close()
    opened.close()  # idempotent
    with pytest.raises(RuntimeError, match="is closed"):
        opened.has_object("0" * 32)
