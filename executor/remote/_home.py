"""The remote executor's end of a session, in its home on a nested PVE host.

`pveplan executor --stdio` runs this on a host one level down: its world is a home
directory laid out as `_layout` says (the store, the site config the driver copied, the key
for the next hop). `serve_stdio` opens the store, speaks the frames of `_protocol` on the
given file descriptors (stdin, and the process's real stdout, which nothing else may write
to), and builds each run's `Services` from that home. Reading the site config is not the
executor's business: `host_access(site_root, host)` (the composition root's) says how to
reach `host` and how to reveal its secrets.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pveplan.planner import Plan

    from .._hosts import HostInfo

HostAccessFor = Callable[[Path, str], "tuple[HostInfo, Callable[[str], str]]"]
"""(site-config folder, host name) -> how to reach the host, and how to reveal a secret."""


def serve_stdio(home: Path, frames_fd: int, host_access: HostAccessFor) -> int:
    """Serve one driver session on stdin (fd 0) and `frames_fd`; the process's exit status.
    Both descriptors stay open (they are duplicated here); the caller closes its own."""
    import trio

    from pveplan.planner import __version__
    from pveplan.store import open_store

    from .._bridge import open_loop, run
    from ._bundle import running_bundle
    from ._layout import STORE
    from ._protocol import FrameStream
    from ._serve import serve

    running = running_bundle()
    with open_store(home / STORE) as store:

        async def main() -> int:
            receive = trio.lowlevel.FdStream(os.dup(0))
            send = trio.lowlevel.FdStream(os.dup(frames_fd))
            async with receive, send, open_loop():
                return await serve(
                    FrameStream(receive, send),
                    store,
                    lambda plan, options: _services(home, store, plan, options, host_access),
                    version=__version__,
                    bundle=running.hash if running is not None else "",
                )

        return run(main)  # Ctrl-C at checkpoints only: the asyncio loop stays whole


@contextlib.asynccontextmanager
async def _services(
    home: Path,
    store: Any,
    plan: Plan,
    options: Any,
    host_access: HostAccessFor,
    pools: dict[bytes, Any] | None = None,
) -> AsyncIterator[Any]:
    """Services for running `plan` on this host: its node file, key, secrets, bundle.

    `pools`: SSH pools that outlive the session, by client key (the warm executor's, so
    the next hop's connection stays open between sessions; their owner closes them).
    Without it the session has its own pool, closed when it ends."""
    from pveplan.planner import workspace_name

    from .._context import Services
    from .._hosts import SiteHostAccess
    from .._keys import public_line
    from ..channels import SshPool
    from ._bundle import current_bundle
    from ._layout import BASE, NEXT_HOP_KEY, SITE_CONFIG

    site_root = home / SITE_CONFIG
    info, reveal = host_access(site_root, plan.host)
    private = (home / NEXT_HOP_KEY).read_bytes()
    public = public_line(private, f"pveplan@{plan.host}")

    async with contextlib.AsyncExitStack() as stack:
        pool = pools.get(private) if pools is not None else None
        if pool is None:
            pool = SshPool(private)
            if pools is None:
                await stack.enter_async_context(pool)
            else:
                await pool.__aenter__()  # checks the loop; closed by the pools' owner
                pools[private] = pool
        yield Services(
            store=store,
            workspace=workspace_name(plan.manifest, plan.host),
            hosts=SiteHostAccess({plan.host: info}, pool),
            pool=pool,
            driver_key=(private, public),
            reveal=reveal,
            bundle=lambda: current_bundle(home / BASE / "cache"),
            extra_keys=tuple(k for k in options.authorized_keys if k != public),
            site_root=site_root,
            spec_server=options.spec_server,
        )
