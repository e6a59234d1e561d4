"""A run's trio side: the asyncio bridge, the SSH pool, `Services`, and the bundle.

The composition root decides what a run needs (the store, how to reach each host, the
driver's key, how to reveal a secret) and hands those values to `run_session`, which owns
everything that lives exactly as long as the run: the bridge loop, the SSH pool (closed
before the loop), the spec server the caller asks for, and the bundle shipped to nested
hosts (built at most once, on first use). `run_ssh_command` is the same for one command on
one SSH target (`pveplan sim ssh`).

Ctrl-C arrives at checkpoints only (`_bridge.run`); errors come out as the nurseries raise
them (exception groups included): rendering them is the caller's business.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ._bridge import open_loop, run
from ._context import Services
from ._hosts import HostInfo, SiteHostAccess
from .channels import SshPool

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from pveplan.store import Store

    from ._context import SpecServerRef
    from .channels import CommandResult, SshTarget
    from .remote import Bundle

T = TypeVar("T")

SpecServerFactory = Callable[
    [Callable[[], "Bundle"]], "AbstractAsyncContextManager[SpecServerRef | None]"
]
"""Given the run's bundle (a callable), the spec server for the run's pull nodes, or None."""


def run_session(
    body: Callable[[Services], Awaitable[T]],
    *,
    store: Store,
    workspace: str,
    hosts: dict[str, HostInfo],
    driver_key: tuple[bytes, str],
    reveal: Callable[[str], str],
    site_root: Path | None = None,
    spec_server: SpecServerFactory | None = None,
) -> T:
    """Run `body(services)` under trio, inside the asyncio bridge and an SSH pool.

    `spec_server(bundle)`, when given, is entered first and yields the spec server this
    run's pull nodes use (or None); it lives exactly as long as the run.
    """
    from .remote._bundle import current_bundle

    @functools.cache
    def bundle() -> Bundle:
        return current_bundle(store.local_dir / "bundles")

    async def main() -> T:
        async with contextlib.AsyncExitStack() as stack:
            server = None
            if spec_server is not None:
                server = await stack.enter_async_context(spec_server(bundle))
            await stack.enter_async_context(open_loop())
            pool = await stack.enter_async_context(SshPool(driver_key[0]))
            services = Services(
                store=store,
                workspace=workspace,
                hosts=SiteHostAccess(hosts, pool),
                pool=pool,
                driver_key=driver_key,
                reveal=reveal,
                bundle=bundle,
                site_root=site_root,
                spec_server=server,
            )
            stack.push_async_callback(services.aclose)
            return await body(services)

    return run(main)  # Ctrl-C only at checkpoints: it must not kill the asyncio loop


def run_ssh_command(
    private_key: bytes, target: SshTarget, argv: Sequence[str], *, timeout: float = 60
) -> CommandResult:
    """Run `argv` on `target` (its host key pinned) with the key `private_key`; its result.
    A connection or protocol failure is a `ChannelError`."""

    async def main() -> CommandResult:
        async with open_loop(), SshPool(private_key) as pool:
            channel = await pool.channel(target)
            return await channel.run(list(argv), timeout=timeout)

    return run(main)  # Ctrl-C at checkpoints only: the asyncio loop stays whole
