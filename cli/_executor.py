"""`pveplan executor --stdio`: the remote executor a driver starts on a nested PVE host.

It speaks the frames of `executor.remote` on stdin/stdout, so nothing else may write to
stdout: the real stdout is kept for frames and fd 1 is pointed at stderr before anything
runs. Its world is root's home on that host (`pveplan.executor.serve_stdio`): the store in
`.pveplan/store`, the site config the driver copied into `.pveplan/site-config` (scoped
secrets, site.yaml, and the node file saying how to reach PVE on this host: its HTTPS API
with the host's own least-privilege token and pinned certificate, and SSH to itself, with
its own pinned host key, for snippet files), and the key the driver installed for the next
hop.
`--home` points elsewhere (tests run executors in their own directories).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from pveplan.executor import HostInfo

    from . import Console


def run_executor(args: argparse.Namespace, console: Console) -> int:
    home = Path(args.home or console.env.get("HOME") or Path.home())
    if args.warm_daemon:
        from pveplan.executor import serve_warm

        return serve_warm(home, args.ready_fd, _host_access)
    if not args.stdio:
        console.error("error: `pveplan executor` is started by a driver: use --stdio")
        return 2
    frames_fd = os.dup(1)  # the protocol's stdout; fd 1 becomes stderr for stray prints
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        return _serve(home, frames_fd)
    finally:
        os.close(frames_fd)


def _serve(home: Path, frames_fd: int) -> int:
    from pveplan.executor import serve_stdio

    return serve_stdio(home, frames_fd, _host_access)


def _host_access(site_root: Path, host: str) -> tuple[HostInfo, Callable[[str], str]]:
    """How this host's executor reaches `host` (its node file: its API with its token, and
    SSH to itself with its own pinned host key) and reveals the secrets the driver scoped
    into its site config."""
    from pveplan.planner import SecretRef, load_site_config

    from ._session import host_api, pinned_host_info

    site = load_site_config(site_root)
    config = site.host(host)
    info = pinned_host_info(config, host_api(site, config))

    def reveal(name: str) -> str:
        return site.secrets.reveal(SecretRef(name=name))

    return info, reveal
