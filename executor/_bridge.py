"""The one place where trio meets asyncio: asyncssh is asyncio-only, the executor is trio.

Everything that awaits an asyncssh coroutine goes through `run_aio`, and the asyncio loop those
coroutines run on comes from `open_loop`. Nothing else in pveplan imports `trio_asyncio`.

Why so narrow: trio-asyncio is Beta and leans on asyncio's child watchers, deprecated in
Python 3.12 and removed in 3.14 (pitfall 9 of the trio/asyncssh measurements). The measured
alternative is a dedicated asyncio loop in a thread (about 5x the bridge code, 20-30 % slower
when streaming). Keeping the surface at "open a loop" and "await this
asyncio coroutine function" means that swap rewrites this module only: `run_aio` becomes
`asyncio.run_coroutine_threadsafe` + `trio.to_thread`, and callers keep working as long as they
touch asyncssh objects only through `run_aio` or through asyncssh's plain synchronous methods
(`write`, `write_eof`, `close`), which a thread bridge can also forward.

Who opens the loop: the composition root (the CLI command, a test body) opens it once, around
everything that uses SSH: `async with open_loop(): ...`, inside a trio run started with `run`
(below, for Ctrl-C). Nested opens are not supported; a channel used outside the loop fails with
`RuntimeError`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import trio
import trio_asyncio

T = TypeVar("T")


def run(async_fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """`trio.run` for a program that opens the asyncio loop: Ctrl-C arrives only at checkpoints.

    Plain `trio.run` raises KeyboardInterrupt wherever the main thread is when SIGINT comes
    (unless trio's own code runs there). Inside `open_loop` that can be the middle of an
    asyncio callback the loop is running (asyncssh handling a packet, more likely under load):
    the KeyboardInterrupt then ends trio-asyncio's loop task, and every task awaiting through
    `run_aio` waits forever, cancelled or not: `run_aio` waits for the asyncio side to
    acknowledge a cancel, and nothing runs the asyncio side any more, so no `move_on_after`
    bounds it. The process sat idle in epoll after Ctrl-C (tests/integration/test_kill.py).
    Restricted to checkpoints, SIGINT becomes a KeyboardInterrupt raised in the main task where
    it waits, which cancels the run like any error; the loop then shuts down in order.
    """
    return trio.run(async_fn, *args, restrict_keyboard_interrupt_to_checkpoints=True)


@contextlib.asynccontextmanager
async def open_loop() -> AsyncIterator[None]:
    """Run an asyncio loop for the duration of the block (must be inside `trio.run`).

    Leaving the block closes the loop: every asyncssh object made inside must be closed first
    (`SshPool` does that in its own `aclose`), and no asyncio subprocess may still be alive
    (trio-asyncio's waitpid thread raises otherwise).
    """
    raised: list[BaseException] = []
    try:
        async with trio_asyncio.open_loop():
            try:
                yield
            except BaseException as exc:
                raised.append(exc)
                raise
    except BaseExceptionGroup as group:
        # trio-asyncio runs the block inside two nurseries of its own, which wrap whatever the
        # block raises in (nested) exception groups. A group holding only the block's own
        # exception is unwrapped, so the loop is transparent to callers; anything else (a
        # failure of the loop itself) stays a group.
        if raised and _leaves(group) == raised:
            raise raised[0] from raised[0].__cause__
        raise


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for exc in group.exceptions:
        leaves.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return leaves


def loop_is_open() -> bool:
    """Whether `open_loop` is active in the current trio task (for a clear error message)."""
    return trio_asyncio.current_loop.get() is not None


async def run_aio(fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """Await the asyncio coroutine function `fn(*args, **kwargs)` from trio.

    Cancelling the calling trio scope cancels the asyncio task (it sees `CancelledError`);
    that does NOT close asyncssh channels (pitfall 1): the caller closes them in a shielded,
    bounded cleanup. asyncio exceptions propagate unchanged.
    """
    if not loop_is_open():
        raise RuntimeError(
            "no asyncio loop: open one with `async with executor._bridge.open_loop()`"
        )
    return await trio_asyncio.aio_as_trio(fn)(*args, **kwargs)
