"""The SQL of the store's tables other than objects: results, applied state, resources, runs.

Plain functions over a connection, one statement group each; `Store` decides the
transactions, the locking and the error translation around them, so this module has no
policy of its own. Outputs are kept as canonical JSON (sorted keys) and decoded strictly.
Rows of the sealed tables are written with their checksum and checked when read
(`_rowhash`): a damaged one raises `DamagedRow`, never reaches the caller.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from ._backend import Conn
from ._records import (
    EVENT_KINDS,
    AppliedState,
    Outputs,
    Resource,
    RunEvent,
    RunRecord,
    StepResult,
)
from ._rowhash import check, row_hash

_outputs_decoder = msgspec.json.Decoder(Outputs)


def encode_outputs(outputs: Mapping[str, object]) -> str:
    """Canonical JSON of `outputs`; anything but str -> str|int|bool|None is a bug."""
    try:
        checked = msgspec.convert(dict(outputs), Outputs)
    except msgspec.ValidationError as exc:
        raise ValueError(f"outputs must map str to str, int, bool or None: {exc}") from None
    return msgspec.json.encode(checked, order="sorted").decode()


def decode_outputs(raw: str) -> Outputs:
    return _outputs_decoder.decode(raw)


# -- step results ------------------------------------------------------------------------


def insert_result(conn: Conn, result: StepResult) -> None:
    if result.status not in ("ok", "failed"):
        raise ValueError(f"a step result's status is 'ok' or 'failed', not {result.status!r}")
    values = (
        result.run_key,
        result.step_hash,
        result.address,
        result.kind,
        result.status,
        encode_outputs(result.outputs),
        result.error,
        result.run_id,
        result.started,
        result.finished,
    )
    conn.execute(
        "INSERT INTO results (run_key, step_hash, address, kind, status, outputs, error,"
        " run_id, started, finished, row_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (*values, row_hash("results", *values)),
    )


_RESULT_COLUMNS = (
    "run_key, step_hash, address, kind, status, outputs, error, run_id, started, finished, row_hash"
)
_CHUNK = 500
"""Addresses per query: far below any engine's limit on parameters."""


def select_results_for(
    conn: Conn, addresses: Sequence[str], root: str | Path
) -> dict[str, StepResult]:
    """Run key -> its best result (the latest successful, else the latest failed) among
    every result recorded for `addresses`: what `select_result` answers key by key, in a
    few queries instead of one per step."""
    best: dict[str, StepResult] = {}
    wanted = sorted(set(addresses))
    rows: list[tuple[object, ...]] = []
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        marks = ", ".join("?" for _ in chunk)
        rows.extend(
            conn.execute(
                f"SELECT {_RESULT_COLUMNS} FROM results WHERE address IN ({marks}) ORDER BY id",
                chunk,
            ).fetchall()
        )
    rows.sort(key=lambda row: (row[4] == "ok", row[9]))  # the best of each key comes last
    for row in rows:
        check("results", row[:-1], row[-1], root)
        best[str(row[0])] = _result(row)
    return best


def _result(row: Sequence[Any]) -> StepResult:
    return StepResult(
        run_key=row[0],
        step_hash=row[1],
        address=row[2],
        kind=row[3],
        status=row[4],
        outputs=decode_outputs(row[5]),
        error=row[6],
        run_id=row[7],
        started=row[8],
        finished=row[9],
    )


def select_result(conn: Conn, run_key: str, root: str | Path) -> StepResult | None:
    """The latest successful result for `run_key`, else the latest failed one."""
    row = conn.execute(
        f"SELECT {_RESULT_COLUMNS} FROM results WHERE run_key = ?"
        " ORDER BY status = 'ok' DESC, finished DESC, id DESC LIMIT 1",
        (run_key,),
    ).fetchone()
    if row is None:
        return None
    check("results", row[:-1], row[-1], root)
    return _result(row)


# -- applied state -----------------------------------------------------------------------


def replace_applied(
    conn: Conn,
    workspace: str,
    plan_hash: str,
    steps: Mapping[str, str],
    now: float,
) -> None:
    for address, step in steps.items():
        if not (isinstance(address, str) and isinstance(step, str)):
            raise ValueError(f"applied steps map address to step hash, got {address!r}: {step!r}")
    conn.execute(
        "INSERT INTO applied (workspace, plan_hash, updated, row_hash) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (workspace) DO UPDATE SET plan_hash = excluded.plan_hash,"
        " updated = excluded.updated, row_hash = excluded.row_hash",
        (workspace, plan_hash, now, row_hash("applied", workspace, plan_hash, now)),
    )
    # Only the rows that change are written: a re-apply of an unchanged plan rewrites
    # none of its thousands of steps. A row kept must be exactly the row that would be
    # written (its seal included), so a damaged row is written again, as before.
    kept = {
        address: (step, stored)
        for address, step, stored in conn.execute(
            "SELECT address, step_hash, row_hash FROM applied_steps WHERE workspace = ?",
            (workspace,),
        )
    }
    gone = [(workspace, address) for address in kept if address not in steps]
    if gone:
        conn.executemany(
            "DELETE FROM applied_steps WHERE workspace = ? AND address = ?", sorted(gone)
        )
    written = []
    for address, step in sorted(steps.items()):
        sealed = row_hash("applied_steps", workspace, address, step)
        if kept.get(address) != (step, sealed):
            written.append((workspace, address, step, sealed))
    conn.executemany(
        "INSERT INTO applied_steps (workspace, address, step_hash, row_hash) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (workspace, address) DO UPDATE SET step_hash = excluded.step_hash,"
        " row_hash = excluded.row_hash",
        written,
    )


def delete_applied(conn: Conn, workspace: str) -> None:
    conn.execute("DELETE FROM applied WHERE workspace = ?", (workspace,))


def select_applied(conn: Conn, workspace: str, root: str | Path) -> AppliedState | None:
    row = conn.execute(
        "SELECT plan_hash, updated, row_hash FROM applied WHERE workspace = ?", (workspace,)
    ).fetchone()
    if row is None:
        return None
    check("applied", (workspace, row[0], row[1]), row[2], root)
    steps = {}
    for address, step, stored in conn.execute(
        "SELECT address, step_hash, row_hash FROM applied_steps WHERE workspace = ?"
        " ORDER BY address",
        (workspace,),
    ):
        check("applied_steps", (workspace, address, step), stored, root)
        steps[address] = step
    return AppliedState(workspace=workspace, plan_hash=row[0], steps=steps, updated=row[1])


def select_workspaces(conn: Conn) -> tuple[str, ...]:
    rows = conn.execute(
        "SELECT workspace FROM applied UNION SELECT workspace FROM resources"
        " UNION SELECT workspace FROM runs ORDER BY 1"
    )
    return tuple(r[0] for r in rows)


# -- plans and run-time secrets ----------------------------------------------------------


def upsert_plan(conn: Conn, plan_hash: str, object_hash: str, workspace: str, now: float) -> None:
    """Record where plan `plan_hash` is stored; re-recording keeps its first `created`."""
    row = conn.execute("SELECT created FROM plans WHERE plan_hash = ?", (plan_hash,)).fetchone()
    values = (plan_hash, object_hash, workspace, row[0] if row else now)
    conn.execute(
        "INSERT INTO plans (plan_hash, object, workspace, created, row_hash)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (plan_hash) DO UPDATE"
        " SET object = excluded.object, workspace = excluded.workspace,"
        " row_hash = excluded.row_hash",
        (*values, row_hash("plans", *values)),
    )


def select_plan_object(conn: Conn, plan_hash: str, root: str | Path) -> str | None:
    row = conn.execute(
        "SELECT plan_hash, object, workspace, created, row_hash FROM plans WHERE plan_hash = ?",
        (plan_hash,),
    ).fetchone()
    if row is None:
        return None
    check("plans", row[:-1], row[-1], root)
    return str(row[1])


def upsert_secret(conn: Conn, name: str, value: bytes, now: float) -> None:
    conn.execute(
        "INSERT INTO secrets (name, value, updated, row_hash) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET value = excluded.value,"
        " updated = excluded.updated, row_hash = excluded.row_hash",
        (name, value, now, row_hash("secrets", name, value, now)),
    )


def select_secret(conn: Conn, name: str, root: str | Path) -> bytes | None:
    row = conn.execute(
        "SELECT name, value, updated, row_hash FROM secrets WHERE name = ?", (name,)
    ).fetchone()
    if row is None:
        return None
    check("secrets", row[:-1], row[-1], root)
    return bytes(row[1])


# -- resources ---------------------------------------------------------------------------


def upsert_resource(
    conn: Conn,
    workspace: str,
    address: str,
    kind: str,
    outputs: Mapping[str, object],
    now: float,
) -> None:
    values = (workspace, address, kind, encode_outputs(outputs), now)
    conn.execute(
        "INSERT INTO resources (workspace, address, kind, outputs, updated, row_hash)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (workspace, address) DO UPDATE"
        " SET kind = excluded.kind, outputs = excluded.outputs, updated = excluded.updated,"
        " row_hash = excluded.row_hash",
        (*values, row_hash("resources", *values)),
    )


def delete_resource(conn: Conn, workspace: str, address: str) -> None:
    conn.execute("DELETE FROM resources WHERE workspace = ? AND address = ?", (workspace, address))


def select_resources(conn: Conn, workspace: str, root: str | Path) -> tuple[Resource, ...]:
    rows = conn.execute(
        "SELECT address, kind, outputs, updated, row_hash FROM resources WHERE workspace = ?"
        " ORDER BY address",
        (workspace,),
    )
    found = []
    for address, kind, outputs, updated, stored in rows:
        check("resources", (workspace, address, kind, outputs, updated), stored, root)
        found.append(
            Resource(
                workspace=workspace,
                address=address,
                kind=kind,
                outputs=decode_outputs(outputs),
                updated=updated,
            )
        )
    return tuple(found)


# -- runs and events ---------------------------------------------------------------------


def insert_run(conn: Conn, workspace: str, plan_hash: str, verb: str, now: float) -> int:
    row = conn.execute(
        "INSERT INTO runs (workspace, plan_hash, verb, status, started)"
        " VALUES (?, ?, ?, 'running', ?) RETURNING id",
        (workspace, plan_hash, verb, now),
    ).fetchone()
    return int(row[0])


def run_exists(conn: Conn, run_id: int) -> bool:
    return conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is not None


def insert_events(conn: Conn, run_id: int, events: Iterable[RunEvent]) -> None:
    """Add events to a run, in their order, in one statement (a no-op apply of thousands
    of steps has thousands of `cached` events)."""
    rows = []
    for event in events:
        if event.kind not in EVENT_KINDS:
            raise ValueError(
                f"an event's kind is one of {', '.join(EVENT_KINDS)}, not {event.kind!r}"
            )
        rows.append(
            (run_id, event.address, event.kind, event.message, event.at, event.duration, event.host)
        )
    conn.executemany(
        "INSERT INTO run_events (run_id, address, kind, message, at, duration, host)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def update_run(conn: Conn, run_id: int, status: str, now: float) -> None:
    conn.execute("UPDATE runs SET status = ?, finished = ? WHERE id = ?", (status, now, run_id))


_RUN_COLUMNS = "id, workspace, plan_hash, verb, status, started, finished"


def select_runs(conn: Conn, workspace: str | None, limit: int) -> tuple[RunRecord, ...]:
    if workspace is None:
        rows = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT ?", (limit,))
    else:
        rows = conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE workspace = ? ORDER BY id DESC LIMIT ?",
            (workspace, limit),
        )
    return tuple(
        RunRecord(id=i, workspace=w, plan_hash=p, verb=v, status=s, started=st, finished=f)
        for i, w, p, v, s, st, f in rows
    )


def select_events(conn: Conn, run_id: int) -> tuple[RunEvent, ...]:
    rows = conn.execute(
        "SELECT address, kind, message, at, duration, host FROM run_events"
        " WHERE run_id = ? ORDER BY id",
        (run_id,),
    )
    return tuple(
        RunEvent(address=a, kind=k, message=m, at=at, duration=d, host=h)
        for a, k, m, at, d, h in rows
    )
