"""sim: the PVE simulator, simulated PVE hosts and VMs on loopback (docs/simulator.md).

It owns a simulator root (a directory: `state.json`, host and VM trees, the daemon's
files), the PVE tools its hosts answer with (`pvesh`, `qm`, `pveum`, `pveversion`), the
Debian tools inside its VMs, and the SSH daemon through which pveplan reaches both. It is
the far end: it never imports the planner, the store or the CLI, and of the executor only
its public key helper (a VM's first boot generates a host key as sshd would).

Exports load lazily (PEP 562): `import pveplan.sim` stays cheap for the CLI, and the
launchers a simulated host runs once per command import the modules they run and no more.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ApiEndpoint": "._up",
    "BareHost": "._bare",
    "SimError": "._errors",
    "SimHost": "._storagecfg",
    "SimRoot": "._state",
    "api_endpoint": "._up",
    "bare_host_at": "._bare",
    "bare_hosts": "._bare",
    "bare_name_problem": "._bare",
    "download_bytes": "._bare_tools",
    "daemon_info": "._control",
    "ensure_bare_host": "._bare",
    "ensure_simulator": "._up",
    "init_root": "._setup",
    "locked_state": "._state",
    "read_config": "._state",
    "read_state": "._state",
    "register_token": "._access",
    "session_env": "._setup",
    "start_daemon": "._control",
    "stop_daemon": "._control",
    "stop_daemons_living_with": "._control",
    "write_config": "._state",
}

__all__ = [
    "ApiEndpoint",
    "BareHost",
    "SimError",
    "SimHost",
    "SimRoot",
    "api_endpoint",
    "bare_host_at",
    "bare_hosts",
    "bare_name_problem",
    "daemon_info",
    "download_bytes",
    "ensure_bare_host",
    "ensure_simulator",
    "init_root",
    "locked_state",
    "read_config",
    "read_state",
    "register_token",
    "session_env",
    "start_daemon",
    "stop_daemon",
    "stop_daemons_living_with",
    "write_config",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pveplan.sim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
