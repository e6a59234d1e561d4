"""`pveplan executor --stdio`: the remote executor a driver starts on a nested PVE host.

It speaks the frames of `executor.remote` on stdin/stdout, so nothing else may write to
stdout: the real stdout is kept for frames and fd 1 is pointed at stderr before anything
runs. Its world is root's home on that host (`executor.remote._layout`): the store in
`.pveplan/store`, the site config the driver copied into `.pveplan/site-config` (scoped
secrets, site.yaml, and the node file saying how to reach PVE on this host: over SSH to
itself, with its own pinned host key), and the key the driver installed for the next hop.
`--home` points elsewhere (tests run executors in their own directories).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pveplan.planner import Plan

    from . import Console


def run_executor(args: argparse.Namespace, console: Console) -> int:
    if not args.stdio:
        console.error("error: `pveplan executor` is started by a driver: use --stdio")
        return 2
    home = Path(args.home or console.env.get("HOME") or Path.home())
    frames_fd = os.dup(1)  # the protocol's stdout; fd 1 becomes stderr for stray prints
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        return _serve(home, frames_fd)
    finally:
        os.close(frames_fd)


def _serve(home: Path, frames_fd: int) -> int:
    import trio

    from pveplan.executor._bridge import open_loop, run
    from pveplan.executor.remote import FrameStream, serve
    from pveplan.executor.remote._bundle import running_bundle
    from pveplan.executor.remote._layout import STORE
    from pveplan.planner._version import __version__
    from pveplan.store import open_store

    running = running_bundle()
    with open_store(home / STORE) as store:

        async def main() -> int:
            receive = trio.lowlevel.FdStream(os.dup(0))
            send = trio.lowlevel.FdStream(os.dup(frames_fd))
            async with receive, send, open_loop():
                return await serve(
                    FrameStream(receive, send),
                    store,
                    lambda plan, options: _services(home, store, plan, options),
                    version=__version__,
                    bundle=running.hash if running is not None else "",
                )

        return run(main)  # Ctrl-C at checkpoints only: the asyncio loop stays whole


@contextlib.asynccontextmanager
async def _services(home: Path, store: Any, plan: Plan, options: Any) -> AsyncIterator[Any]:
    """Services for running `plan` on this host: its node file, key, secrets, bundle."""
    from pveplan.executor import Services, SiteHostAccess, public_line
    from pveplan.executor.channels import SshPool
    from pveplan.executor.remote._bundle import current_bundle
    from pveplan.executor.remote._layout import BASE, NEXT_HOP_KEY, SITE_CONFIG
    from pveplan.planner._planning import workspace_name
    from pveplan.planner.siteconfig import SecretRef, load_site_config

    from ._session import pinned_host_info

    site_root = home / SITE_CONFIG
    site = load_site_config(site_root)
    info = pinned_host_info(site.host(plan.host))
    private = (home / NEXT_HOP_KEY).read_bytes()
    public = public_line(private, f"pveplan@{plan.host}")

    def reveal(name: str) -> str:
        return site.secrets.reveal(SecretRef(name=name))

    async with SshPool(private) as pool:
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
