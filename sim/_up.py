"""Bring a simulator up for a run: its root set up, the driver's key authorised on its
hosts, its daemon running (started on demand, reused when already up)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._control import daemon_info, start_daemon
from ._lifetime import LifetimeOptions
from ._setup import init_root
from ._state import SimRoot
from ._storagecfg import SimHost

HOSTS_WAIT = 5.0


def authorize(root: SimRoot, node: str, public_key: str) -> None:
    """Let `public_key` log in as root on simulated host `node` (idempotent)."""
    path = root.host_dir(node) / "root" / ".ssh" / "authorized_keys"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = path.read_text().splitlines() if path.exists() else []
    if public_key.strip() not in (line.strip() for line in lines):
        lines.append(public_key.strip())
        path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


def ensure_simulator(
    root: Path | str,
    hosts: Sequence[str | SimHost],
    public_key: str,
    *,
    lifetime: LifetimeOptions | None = None,
) -> dict[str, Any]:
    """The running daemon's info (see docs/simulator.md), serving every host in `hosts`.

    A host is a node name (a fresh PVE install) or a `SimHost`: what its node file says
    (datastore, bridges), which the simulator models. A daemon that stopped by itself
    (idle, see `_lifetime`) left no daemon.json, so this starts a new one; `lifetime` is
    for that new daemon (default: from the environment).
    """
    sim = SimRoot(root)
    init_root(sim, hosts)
    nodes = [h if isinstance(h, str) else h.node for h in hosts]
    for node in nodes:
        authorize(sim, node, public_key)
    info = start_daemon(sim, lifetime=lifetime)
    deadline = time.monotonic() + HOSTS_WAIT
    while not all(node in info.get("hosts", {}) for node in nodes):
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the simulator daemon at {sim.path} does not serve {', '.join(nodes)}"
            )
        time.sleep(0.05)
        info = daemon_info(sim) or info
    return info
