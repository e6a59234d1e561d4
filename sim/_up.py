"""Bring a simulator up for a run: its root set up, the driver's key authorised on its
hosts, a site's API tokens registered, its daemon running (started on demand, reused when
already up); and where a host's HTTPS API answers, with the certificate to pin."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ._access import register_token
from ._control import daemon_info, start_daemon
from ._errors import SimError
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
    api_tokens: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The running daemon's info (see docs/simulator.md), serving every host in `hosts`
    over SSH and HTTPS (`api`: node -> url and certificate fingerprint).

    A host is a node name (a fresh PVE install) or a `SimHost`: what its node file says
    (datastore, bridges), which the simulator models. `api_tokens` maps a host to the API
    token a site configured for it (`user@realm!tokenid=secret`), made valid there (see
    `register_token`). A daemon that stopped by itself (idle, see `_lifetime`) left no
    daemon.json, so this starts a new one; `lifetime` is for that new daemon (default:
    from the environment).
    """
    sim = SimRoot(root)
    init_root(sim, hosts)
    nodes = [h if isinstance(h, str) else h.node for h in hosts]
    for node in nodes:
        authorize(sim, node, public_key)
    for node, token in (api_tokens or {}).items():
        register_token(sim, node, token)
    info = start_daemon(sim, lifetime=lifetime)
    deadline = time.monotonic() + HOSTS_WAIT

    def serving(info: dict[str, Any]) -> bool:
        return all(n in info.get("hosts", {}) and n in info.get("api", {}) for n in nodes)

    while not serving(info):
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the simulator daemon at {sim.path} does not serve {', '.join(nodes)}"
            )
        time.sleep(0.05)
        info = daemon_info(sim) or info
    return info


class ApiEndpoint(NamedTuple):
    """Where a simulated host's HTTPS API answers: `url` is `https://ADDRESS:PORT` (the API
    is under `/api2/json`), `fingerprint` the SHA-256 of its certificate as PVE shows it
    (`AB:CD:...`), to pin instead of trusting a CA."""

    url: str
    fingerprint: str


def api_endpoint(root: Path | str | SimRoot, node: str, *, wait: float = HOSTS_WAIT) -> ApiEndpoint:
    """The HTTPS API of simulated host `node`, from the running daemon (waiting up to `wait`
    seconds for a host that just came up, such as a nested host whose VM just started).
    Raises SimError when no daemon runs or it does not serve `node`."""
    sim = root if isinstance(root, SimRoot) else SimRoot(root)
    deadline = time.monotonic() + wait
    while True:
        info = daemon_info(sim)
        if info is None:
            raise SimError(f"no simulator daemon is running for {sim.path}")
        entry = info.get("api", {}).get(node)
        if entry is not None:
            return ApiEndpoint(entry["url"], entry["fingerprint"])
        if time.monotonic() > deadline:
            raise SimError(f"the simulator daemon at {sim.path} serves no API for host {node!r}")
        time.sleep(0.05)
