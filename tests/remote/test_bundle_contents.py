"""What a remote executor's bundle carries: pveplan's runtime, not its PostgreSQL client."""

from __future__ import annotations

from pveplan.executor.remote._bundle import _canonical, _runtime_distributions


def test_the_bundle_ships_the_runtime_but_not_the_postgresql_client() -> None:
    names = {_canonical(dist.metadata["Name"]) for dist in _runtime_distributions()}
    assert {"asyncssh", "trio", "msgspec", "xxhash"} <= names
    assert not names & {"psycopg", "psycopg-binary"}  # a nested host keeps a local store
