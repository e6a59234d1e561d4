"""What a warm executor keeps between sessions, in-process: its next hop's SSH pool (one
per client key, left open for the next session; a cold session's own pool is closed),
and, per live connection, which bundle is installed (so a session checks READY once per
connection, and again after an executor of that bundle could not be started).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import trio

from pveplan.executor import generate_ed25519
from pveplan.executor._bridge import open_loop
from pveplan.executor.channels import CommandResult
from pveplan.executor.remote._bundle import (
    REMOTE_ROOT,
    Bundle,
    bundle_installed,
    ensure_bundle,
    forget_bundle,
)
from pveplan.executor.remote._home import _services
from pveplan.executor.remote._layout import NEXT_HOP_KEY
from pveplan.executor.remote._protocol import RunOptions

HASH = "a" * 64


class Connection:
    """Stands for one live SSH connection (weakly referenced by the memo)."""


class TokenChannel:
    """A channel whose host has the bundle installed; counts READY reads."""

    name = "nested-1"

    def __init__(self) -> None:
        self.connection = Connection()
        self.reads: list[str] = []

    async def connection_token(self) -> object:
        return self.connection

    async def get_file(self, path: str) -> bytes | None:
        self.reads.append(path)
        return b"ready\n" if path == f"{REMOTE_ROOT}/{HASH}/READY" else None

    async def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 60.0
    ) -> CommandResult:
        raise AssertionError("an installed bundle needs no command")

    async def put_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        raise AssertionError("an installed bundle is not shipped again")


def _bundle() -> Bundle:
    return Bundle(
        hash=HASH, path=Path("/nonexistent"), python="3.11", platform="x", version="0", size=1
    )


def test_ready_is_read_once_per_connection_and_again_after_forgetting() -> None:
    async def main() -> None:
        channel = TokenChannel()
        launcher = await ensure_bundle(channel, _bundle())
        assert launcher.endswith(f"{HASH}/bundle/run.py")
        assert await ensure_bundle(channel, _bundle()) == launcher
        assert await bundle_installed(channel, HASH)
        assert len(channel.reads) == 1  # the connection lives: READY was read once

        await forget_bundle(channel, HASH)  # e.g. its executor could not be started
        assert await bundle_installed(channel, HASH)
        assert len(channel.reads) == 2

        channel.connection = Connection()  # a new connection knows nothing yet
        assert await bundle_installed(channel, HASH)
        assert len(channel.reads) == 3
        assert not await bundle_installed(channel, "b" * 64)  # not installed: not remembered

    trio.run(main)


def test_a_channel_without_a_connection_reads_ready_every_time() -> None:
    class Plain(TokenChannel):
        connection_token = None  # type: ignore[assignment]

    async def main() -> None:
        channel = Plain()
        await ensure_bundle(channel, _bundle())
        await ensure_bundle(channel, _bundle())
        assert len(channel.reads) == 2

    trio.run(main)


def test_the_warm_executor_keeps_its_ssh_pool_between_sessions(tmp_path: Path) -> None:
    private, _ = generate_ed25519("next-hop")
    (tmp_path / NEXT_HOP_KEY).parent.mkdir(parents=True)
    (tmp_path / NEXT_HOP_KEY).write_bytes(private)
    plan = SimpleNamespace(host="nested-1", manifest="m")

    def access(site_root: Path, host: str) -> tuple[object, object]:
        return SimpleNamespace(name=host), lambda name: ""

    def session(pools: dict | None):  # type: ignore[no-untyped-def]
        return _services(tmp_path, None, plan, RunOptions(), access, pools)  # type: ignore[arg-type]

    async def main() -> None:
        async with open_loop():
            pools: dict = {}
            async with session(pools) as first:
                pass
            async with session(pools) as second:
                pass
            assert second.pool is first.pool and not first.pool._closed  # kept open
            async with session(None) as cold:
                pass
            assert cold.pool is not first.pool and cold.pool._closed  # its own, closed
            for pool in pools.values():
                await pool.aclose()

    trio.run(main)
