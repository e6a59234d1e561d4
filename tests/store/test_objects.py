"""Objects: content-addressed blobs that round-trip, dedupe, and betray any damage."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pveplan.store import Store, StoreError, object_hash, open_store
from tests._tiers import examples

from .conftest import flip_byte


def blob_path(root: Path, digest: str) -> Path:
    return root / "objects" / digest[:2] / digest


def test_round_trip_names_the_blob_by_its_xxh3_128(store: Store, root: Path) -> None:
    digest = store.put_object(b"hello, store")
    assert digest == xxhash.xxh3_128_hexdigest(b"hello, store") == object_hash(b"hello, store")
    assert re.fullmatch(r"[0-9a-f]{32}", digest)
    assert store.get_object(digest) == b"hello, store"
    assert store.has_object(digest)
    assert blob_path(root, digest).read_bytes() == b"hello, store"
    assert blob_path(root, digest).stat().st_mode & 0o222 == 0  # blobs are read-only


def test_putting_the_same_bytes_twice_stores_them_once(store: Store, root: Path) -> None:
    first = store.put_object(b"same")
    second = store.put_object(b"same")
    assert first == second
    assert [p.name for p in (root / "objects").rglob("*") if p.is_file()] == [first]
    assert list((root / "tmp").iterdir()) == []


def test_the_empty_blob_is_an_object_too(store: Store) -> None:
    assert store.get_object(store.put_object(b"")) == b""


def test_objects_survive_reopening(root: Path) -> None:
    with open_store(root) as store:
        digest = store.put_object(b"persisted")
    with open_store(root) as store:
        assert store.get_object(digest) == b"persisted"


@settings(max_examples=examples(60), suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4096))
def test_any_bytes_round_trip(store: Store, data: bytes) -> None:
    digest = store.put_object(data)
    assert store.get_object(digest) == data
    assert store.put_object(data) == digest


def test_a_flipped_byte_is_caught_by_get_object_and_by_verify(store: Store, root: Path) -> None:
    good = store.put_object(b"another object, intact")
    digest = store.put_object(b"the plan of a lab, 43 bytes long, say so...")
    flip_byte(blob_path(root, digest), offset=17)

    with pytest.raises(StoreError) as info:
        store.get_object(digest)
    assert info.value.summary.startswith(f"object {digest} is corrupt: ")
    assert str(blob_path(root, digest)) in info.value.summary
    assert info.value.diagnostics[0].summary == info.value.summary

    report = store.verify()
    assert report.objects_checked == 2
    assert len(report.problems) == 1
    assert report.problems[0].startswith(f"object {digest}: hash mismatch")
    assert report.damage == report.problems  # gc cannot repair this
    assert store.get_object(good) == b"another object, intact"


def test_a_missing_file_is_an_error_naming_object_and_file(store: Store, root: Path) -> None:
    digest = store.put_object(b"soon gone")
    blob_path(root, digest).unlink()
    with pytest.raises(StoreError) as info:
        store.get_object(digest)
    assert info.value.summary == f"object {digest} is missing its file {blob_path(root, digest)}"
    assert store.verify().problems == (
        f"object {digest}: row without file ({blob_path(root, digest)} is missing)",
    )
    # Putting the same bytes again repairs it: the row exists but the file does not.
    store.put_object(b"soon gone")
    assert store.get_object(digest) == b"soon gone"
    assert store.verify().problems == ()


def test_an_object_without_a_row_is_not_in_the_store(store: Store, root: Path) -> None:
    digest = object_hash(b"never stored")
    with pytest.raises(StoreError, match=f"object {digest} is not in the store"):
        store.get_object(digest)
    assert not store.has_object(digest)
    # A file alone (what a writer killed before its commit leaves) proves nothing.
    blob_path(root, digest).parent.mkdir(parents=True)
    blob_path(root, digest).write_bytes(b"never stored")
    assert not store.has_object(digest)
    with pytest.raises(StoreError, match="not in the store"):
        store.get_object(digest)


def test_a_malformed_hash_is_refused_before_touching_the_disk(store: Store) -> None:
    with pytest.raises(StoreError, match="is not an object hash"):
        store.get_object("../../etc/passwd")
    assert not store.has_object("ABC")


def test_refs_must_name_stored_objects(store: Store) -> None:
    child = store.put_object(b"subplan")
    parent = store.put_object(b"plan", refs=[child, child])
    assert store.get_object(parent) == b"plan"
    missing = object_hash(b"not here")
    with pytest.raises(StoreError) as info:
        store.put_object(b"plan 2", refs=[missing])
    assert info.value.summary == (
        f"object {object_hash(b'plan 2')} refers to {missing}, which is not in the store"
    )
    assert not store.has_object(object_hash(b"plan 2"))
    with pytest.raises(ValueError, match="object hashes"):
        store.put_object(b"plan 3", refs=["nope"])


def test_plans_name_their_object(store: Store) -> None:
    assert store.plan_object("p" * 32) is None
    first = store.put_object(b'{"format": "pveplan-plan/1", "header": 1}')
    store.put_plan("p" * 32, first, "lab@host")
    assert store.plan_object("p" * 32) == first
    # Same plan hash, different header bytes: the latest file wins.
    second = store.put_object(b'{"format": "pveplan-plan/1", "header": 2}')
    store.put_plan("p" * 32, second, "lab@host")
    assert store.plan_object("p" * 32) == second
    with pytest.raises(StoreError, match="not in the store"):
        store.put_plan("q" * 32, object_hash(b"absent"), "lab@host")
