"""A PostgreSQL store's locks: session advisory locks, and a table saying who holds them.

Each workspace lock is `pg_try_advisory_lock` on a connection of its own, held for the
whole apply: PostgreSQL releases it when that session ends, however it ends. A holder
SIGKILLed on any machine loses its connection at once, so the next apply takes over
without asking anyone; a holder whose machine vanished is noticed by TCP keepalives
(set on the lock's connection, about a minute), or broken by hand with `pveplan store
unlock`, which terminates the dead holder's session.

The lock itself says nothing about who holds it, so `workspace_locks` does (user, host,
pid, since, plan). The row is written after the lock is taken and deleted before it is
released; a row found by a new holder was left by one that died, and is reported as
`recovered_from`, as a local lock file's leftover JSON is.

The store-wide lock (gc against everyone else) is the shared/exclusive pair of one
advisory key, on the store's main connection.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import xxhash

from ._errors import StoreError
from ._locks import WorkspaceLock, WorkspaceLocked, is_mine, me, unknown_holder
from ._records import LockHolder

STORE_KEY = -0x70766570_6C616E01
"""The advisory key of the store-wide lock (shared by every open store, exclusive for gc)."""

KEEPALIVES = {"keepalives": 1, "keepalives_idle": 20, "keepalives_interval": 5,
              "keepalives_count": 4}  # fmt: skip
"""The lock connection notices a vanished server within a minute; the server notices a
vanished client the same way through the session settings in `SERVER_KEEPALIVES`."""

SERVER_KEEPALIVES = (
    "-c tcp_keepalives_idle=20 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=4"
)

_HOLDER_COLUMNS = 'pid, host, since, workspace, "user", plan'


def advisory_key(workspace: str) -> int:
    """A workspace's advisory lock key: the signed 64 bits of xxh3-64 of its name."""
    value = xxhash.xxh3_64_intdigest(b"pveplan-workspace\0" + workspace.encode())
    return value - (1 << 64) if value >= 1 << 63 else value


def _split_key(key: int) -> tuple[int, int]:
    """How pg_locks shows a bigint key: (classid, objid), its high and low 32 bits."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


def read_holder(conn: Any, workspace: str) -> LockHolder | None:
    row = conn.execute(
        f"SELECT {_HOLDER_COLUMNS} FROM workspace_locks WHERE workspace = %s", (workspace,)
    ).fetchone()
    if row is None:
        return None
    pid, host, since, name, user, plan = row
    return LockHolder(pid=pid, host=host, since=since, workspace=name, user=user, plan=plan)


def holding_backend(conn: Any, workspace: str) -> int | None:
    """The server process id of the session holding the workspace's lock, if any."""
    classid, objid = _split_key(advisory_key(workspace))
    row = conn.execute(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 1",
        (classid, objid),
    ).fetchone()
    return None if row is None else int(row[0])


def _refused_hint(holder: LockHolder) -> str:
    return (
        f"wait for pid {holder.pid} on {holder.host} to finish and retry (or pass "
        "--lock-timeout SECONDS to wait); a holder that is killed releases the lock at "
        "once; if its machine is gone, `pveplan store unlock "
        f"{holder.workspace}` breaks the lock (it is logged)"
    )


class PgWorkspaceLock(WorkspaceLock):
    """A workspace lock of a PostgreSQL store, on a connection of its own."""

    def __init__(
        self,
        connect: Callable[[], Any],
        workspace: str,
        location: str,
        *,
        plan: str = "",
        wait: float = 0.0,
    ) -> None:
        super().__init__(workspace, plan=plan, wait=wait)
        self._connect = connect
        self._location = location
        self._key = advisory_key(workspace)
        self._conn: Any = None
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    def _try(self) -> bool:
        if self._conn is None:
            self._conn = self._connect()
        conn = self._conn
        if not conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()[0]:
            return False
        try:
            stale = read_holder(conn, self.workspace)
            holder = me(self.workspace, self.plan)
            conn.execute(
                f"INSERT INTO workspace_locks ({_HOLDER_COLUMNS}, backend_pid)"
                " VALUES (%s, %s, %s, %s, %s, %s, pg_backend_pid())"
                " ON CONFLICT (workspace) DO UPDATE SET pid = excluded.pid,"
                ' host = excluded.host, since = excluded.since, "user" = excluded."user",'
                " plan = excluded.plan, backend_pid = excluded.backend_pid",
                (holder.pid, holder.host, holder.since, holder.workspace, holder.user, holder.plan),
            )
        except BaseException:
            self._close()
            raise
        self._held, self.holder, self.recovered_from = True, holder, stale
        return True

    def _refusal(self) -> WorkspaceLocked:
        holder = None
        try:
            for _ in range(50):  # a new holder writes its row right after locking
                holder = read_holder(self._conn, self.workspace)
                if holder is not None or holding_backend(self._conn, self.workspace) is None:
                    break
                time.sleep(0.01)
        finally:
            self._close()
        holder = holder or unknown_holder(self.workspace)
        return WorkspaceLocked(holder, is_mine(holder), _refused_hint(holder))

    def release(self) -> None:
        """Delete the holder's row, then unlock; a lost connection has released it already."""
        if not self._held:
            self._close()
            return
        self._held = False
        with contextlib.suppress(Exception):
            self._conn.execute(
                "DELETE FROM workspace_locks WHERE workspace = %s"
                " AND backend_pid = pg_backend_pid()",
                (self.workspace,),
            )
            self._conn.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
        self._close()

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


def break_lock(conn: Any, workspace: str, location: str) -> LockHolder | None:
    """Release a workspace lock whose holder is gone: terminate the session holding it
    (never one whose holder still runs on this machine) and clear its row."""
    holder = read_holder(conn, workspace)
    backend = holding_backend(conn, workspace)
    if backend is None and holder is None:
        return None
    if backend is not None and holder is not None and _alive_here(holder):
        raise WorkspaceLocked(
            holder,
            False,
            f"pid {holder.pid} is still running on this machine: stop it (Ctrl-C) rather "
            "than unlocking under it",
        )
    if backend is not None:
        conn.execute("SELECT pg_terminate_backend(%s)", (backend,))
        deadline = time.monotonic() + 10.0
        while holding_backend(conn, workspace) is not None:
            if time.monotonic() >= deadline:
                raise StoreError(
                    f"cannot break the lock on {workspace} in {location}: session {backend} "
                    "did not end",
                    "ask the database administrator to end it (pg_terminate_backend)",
                )
            time.sleep(0.05)
    conn.execute("DELETE FROM workspace_locks WHERE workspace = %s", (workspace,))
    return holder or unknown_holder(workspace)


def _alive_here(holder: LockHolder) -> bool:
    if holder.host != socket.gethostname() or holder.pid <= 0:
        return False
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
