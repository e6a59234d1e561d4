"""Locks: one per workspace (one apply at a time), and one for the whole store (gc vs. writers).

`WorkspaceLock` is what every backend's workspace lock does (refuse or wait, name the
holder, report a dead holder's takeover); `_pglocks` has PostgreSQL's. A local store's are
`flock(2)` locks, which the kernel drops when the holding process dies, however it
dies: a SIGKILLed apply can never leave a workspace locked forever, and no pid liveness
guessing (pid reuse, other hosts) is needed to decide whether a lock is stale.

A workspace lock file carries its holder's JSON (pid, user, host, since, workspace, plan) so a refused
run can say who holds it. A clean release empties the file before unlocking, so JSON found
in a file we just locked was left by a holder that died: the takeover is reported through
`recovered_from`, and the CLI can tell the user the last run was interrupted. Lock files
are never deleted: unlinking a flock file lets two processes lock two different inodes.

The store lock is held shared by every open `Store` for its whole life and exclusively by
`gc`, so gc never deletes an object that a writer has stored but not yet referenced.
"""

from __future__ import annotations

import abc
import contextlib
import datetime
import fcntl
import getpass
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import msgspec

from ._errors import StoreError, from_exception
from ._records import LockHolder

_HOLDER_READ_TRIES = 50
"""A new holder writes its JSON right after locking; give it up to ~0.25 s to appear."""


class WorkspaceLocked(StoreError):
    """The workspace is locked by another run; `holder` says by whom."""

    def __init__(self, holder: LockHolder, ours: bool, hint: str = "") -> None:
        self.holder = holder
        summary = f"workspace {holder.workspace} locked by {holder.describe()}"
        if ours:
            detail = (
                "this process already holds that lock (a second `lock_workspace` for the "
                "same workspace); release the first one before taking it again"
            )
        else:
            detail = hint or (
                f"wait for pid {holder.pid} to finish and retry (or pass --lock-timeout "
                "SECONDS to wait for it); if that process is gone, its lock is released "
                "automatically and the next run takes it over"
            )
        super().__init__(summary, detail)


def now_iso() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def me(workspace: str, plan: str) -> LockHolder:
    """This process as a lock holder."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return LockHolder(
        pid=os.getpid(),
        host=socket.gethostname(),
        since=now_iso(),
        workspace=workspace,
        user=user,
        plan=plan,
    )


def is_mine(holder: LockHolder) -> bool:
    return holder.pid == os.getpid() and holder.host == socket.gethostname()


def unknown_holder(workspace: str) -> LockHolder:
    return LockHolder(pid=0, host="unknown", since="unknown", workspace=workspace)


def read_lock_file(fd: int, workspace: str) -> LockHolder | None:
    """The JSON in a lock file; None when empty, a placeholder when unparsable."""
    raw = os.pread(fd, 4096, 0)
    if not raw.strip():
        return None
    try:
        return msgspec.json.decode(raw, type=LockHolder)
    except msgspec.DecodeError:
        return unknown_holder(workspace)


class WorkspaceLock(abc.ABC):
    """An exclusive lock on one workspace; use it as a context manager.

    Refuses (`WorkspaceLocked`) when another run holds it: at once by default (a user who
    started a second apply wants to know, not to stare at a hung terminal), or after
    `wait` seconds of retrying (`--lock-timeout`). Not reentrant: taking the same
    workspace twice, even in one process, is refused the same way.
    """

    RETRY_EVERY = 0.1

    def __init__(self, workspace: str, *, plan: str = "", wait: float = 0.0) -> None:
        self.workspace = workspace
        self.plan = plan
        self.wait = wait
        self.holder: LockHolder | None = None
        self.recovered_from: LockHolder | None = None
        """The holder that died with the lock held, when this acquire took it over."""

    @property
    @abc.abstractmethod
    def held(self) -> bool: ...

    @abc.abstractmethod
    def _try(self) -> bool:
        """Take the lock now if it is free (setting holder, recovered_from); else False."""

    @abc.abstractmethod
    def _refusal(self) -> WorkspaceLocked: ...

    @abc.abstractmethod
    def release(self) -> None: ...

    def acquire(self) -> Self:
        if self.held:
            raise RuntimeError(f"lock on workspace {self.workspace!r} is already held")
        deadline = time.monotonic() + max(self.wait, 0.0)
        while not self._try():
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._refusal()
            time.sleep(min(self.RETRY_EVERY, left))
        return self

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class FileWorkspaceLock(WorkspaceLock):
    """A local store's workspace lock: an flock(2)ed file holding its holder's JSON."""

    def __init__(
        self, path: Path, workspace: str, root: Path, *, plan: str = "", wait: float = 0.0
    ) -> None:
        super().__init__(workspace, plan=plan, wait=wait)
        self.path = path
        self._root = root
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _try(self) -> bool:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise from_exception(exc, f"lock workspace {self.workspace}", self._root) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            stale = read_lock_file(fd, self.workspace)
            holder = me(self.workspace, self.plan)
            os.ftruncate(fd, 0)
            os.pwrite(fd, msgspec.json.encode(holder) + b"\n", 0)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.close(fd)
            if isinstance(exc, OSError):
                raise from_exception(exc, f"lock workspace {self.workspace}", self._root) from None
            raise
        self._fd, self.holder, self.recovered_from = fd, holder, stale
        return True

    def _refusal(self) -> WorkspaceLocked:
        holder = None
        with contextlib.suppress(OSError):
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                for _ in range(_HOLDER_READ_TRIES):
                    holder = read_lock_file(fd, self.workspace)
                    if holder is not None:
                        break
                    time.sleep(0.005)
            finally:
                os.close(fd)
        holder = holder or unknown_holder(self.workspace)
        return WorkspaceLocked(holder, is_mine(holder))

    def release(self) -> None:
        """Empty the file (a clean release leaves nothing to recover), then unlock."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


class StoreLock:
    """The store-wide lock: shared while a `Store` is open, exclusive during gc."""

    def __init__(self, path: Path, root: Path) -> None:
        self._root = root
        try:
            self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise from_exception(exc, "open the store", root) from None

    def _fileno(self) -> int:
        if self._fd is None:
            raise RuntimeError("the store lock is closed")
        return self._fd

    def shared(self, wait: float) -> None:
        """Take the lock shared, waiting up to `wait` seconds for a running gc."""
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(self._fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreError(
                        f"store at {self._root} is busy: `pveplan store gc` is running",
                        "retry when it has finished",
                    ) from None
                time.sleep(0.02)

    def exclusive(self) -> None:
        """Take the lock exclusively, now or never; back to shared if refused.

        flock converts shared to exclusive non-atomically (drop, then take), so on a
        refusal our shared lock may be gone: take it again before reporting.
        """
        try:
            fcntl.flock(self._fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.shared(wait=60.0)
            raise StoreError(
                f"store at {self._root} is in use by another pveplan process",
                "gc needs the store to itself so it never deletes what a running apply "
                "has just written; retry when the other process (apply, sim, executor) "
                "has finished",
            ) from None

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
