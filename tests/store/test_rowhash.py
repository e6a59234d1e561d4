"""Row checksums (store/_rowhash.py): a flipped byte in a deciding row is found, never used.

The damage is done the way a disk does it: one byte of the database file changed, with
the store closed (so the write-ahead log is checkpointed into the file), then reopened.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pveplan.store import DamagedRow, StepResult, open_store
from pveplan.store._rowhash import SEALED, row_hash
from pveplan.store._schema import MIGRATIONS, connect, migrate
from tests._tiers import examples

WORKSPACE = "lab@sim"
PLAN = "0123456789abcdef0123456789abcdef"


def _flip_after(database: Path, anchor: bytes, offset: int = 3) -> None:
    """Change one hex digit `offset` bytes past the one place `anchor` occurs in the file."""
    data = bytearray(database.read_bytes())
    assert data.count(anchor) == 1, f"{anchor!r} occurs {data.count(anchor)} times"
    at = data.index(anchor) + len(anchor) + offset
    data[at] = ord("f") if data[at] != ord("f") else ord("e")
    database.write_bytes(bytes(data))


def _seed(root: Path) -> bytes:
    """A store with an applied state, a result and a resource; the result's run key."""
    with open_store(root) as store:
        store.set_applied(WORKSPACE, PLAN, {"node.a.create": "a" * 32, "node.b.create": "b" * 32})
        store.record_result(
            StepResult(
                run_key="c" * 32,
                step_hash="d" * 32,
                address="node.a.create",
                kind="pve.vm.create",
                status="ok",
                outputs={"vm_id": 101, "uuid": "u-1"},
                started=time.time(),
                finished=time.time(),
            )
        )
        store.put_resource(WORKSPACE, "node.a.create", "pve.vm.create", {"vm_id": 101})
        store.put_secret("host-key:a", b"secret bytes")
    return b"c" * 32


def test_untouched_rows_read_back(root: Path) -> None:
    _seed(root)
    with open_store(root) as store:
        assert store.applied(WORKSPACE).plan_hash == PLAN
        assert store.get_result("c" * 32).outputs["vm_id"] == 101
        assert store.resources(WORKSPACE)[0].outputs == {"vm_id": 101}
        assert store.get_secret("host-key:a") == b"secret bytes"
        assert store.verify().damage == ()


def test_a_flipped_byte_in_the_applied_state_is_refused_reported_and_repaired(root: Path) -> None:
    _seed(root)
    # The applied row holds the workspace, then the plan hash: flip a digit of the hash.
    _flip_after(root / "store.sqlite", WORKSPACE.encode() + PLAN[:4].encode())
    with open_store(root) as store:
        with pytest.raises(DamagedRow) as refused:
            store.applied(WORKSPACE)
        assert "applied state of lab@sim" in refused.value.summary
        assert "store repair" in refused.value.detail
        damage = store.verify().damage
        assert any("applied state of lab@sim" in problem for problem in damage)
        assert store.repair() == ("the applied state of lab@sim",)
        assert store.applied(WORKSPACE) is None  # forgotten, not guessed
        assert store.verify().damage == ()
        assert store.get_result("c" * 32) is not None  # the rest is kept


def test_a_flipped_byte_in_a_cached_result_is_refused(root: Path) -> None:
    run_key = _seed(root)
    _flip_after(root / "store.sqlite", b'{"uuid":"u-1","vm_id":', offset=0)
    with open_store(root) as store:
        with pytest.raises(DamagedRow):
            store.get_result(run_key.decode())
        assert store.repair() == (
            f"the recorded result of node.a.create (run key {run_key.decode()})",
        )
        assert store.get_result(run_key.decode()) is None


def test_rows_written_before_checksums_existed_are_sealed_by_the_migration(root: Path) -> None:
    root.mkdir(parents=True)
    conn = connect(root / "store.sqlite")
    migrate(conn, root, MIGRATIONS[:3])
    conn.execute("INSERT INTO applied VALUES (?, ?, ?)", (WORKSPACE, PLAN, 1.5))
    conn.execute("INSERT INTO applied_steps VALUES (?, ?, ?)", (WORKSPACE, "node.a.create", "a"))
    conn.execute("INSERT INTO secrets VALUES (?, ?, ?)", ("k", b"\x00\x01", 2.5))
    conn.close()
    with open_store(root) as store:
        assert store.applied(WORKSPACE).steps == {"node.a.create": "a"}
        assert store.get_secret("k") == b"\x00\x01"
        assert store.verify().damage == ()


def test_every_sealed_table_has_the_column(root: Path) -> None:
    with open_store(root):
        pass
    conn = sqlite3.connect(root / "store.sqlite")
    for table, columns in SEALED.items():
        names = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        assert {*columns, "row_hash"} <= names, table
    conn.close()


values = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.floats(allow_nan=False),
)


@settings(max_examples=examples(50))
@given(table=st.sampled_from(sorted(SEALED)), row=st.lists(values, min_size=1, max_size=6))
def test_the_checksum_is_deterministic_and_sees_every_value(table: str, row: list) -> None:
    assert row_hash(table, *row) == row_hash(table, *row)
    changed = [*row[:-1], "x" if row[-1] != "x" else "y"]
    assert row_hash(table, *changed) != row_hash(table, *row)
    assert row_hash(table, *row) != row_hash(f"{table}_", *row)


def test_replacing_the_applied_state_with_the_same_steps_rewrites_a_damaged_step_row(
    root: Path,
) -> None:
    """set_applied writes only the rows that change; a row whose seal is wrong counts as
    changed, so re-applying the same plan leaves every row sound, as a full rewrite did."""
    _seed(root)
    conn = sqlite3.connect(root / "store.sqlite")
    with conn:
        conn.execute(
            "UPDATE applied_steps SET row_hash = ? WHERE address = ?", ("0" * 32, "node.b.create")
        )
    conn.close()
    with open_store(root) as store:
        assert store.verify().damage != ()
        store.set_applied(WORKSPACE, PLAN, {"node.a.create": "a" * 32, "node.b.create": "b" * 32})
        assert store.verify().damage == ()
        applied = store.applied(WORKSPACE)
        assert applied is not None and applied.steps["node.b.create"] == "b" * 32
