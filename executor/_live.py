"""The live-state probe before a plan: one listing per host, whatever its VM count.

PVE's `GET /cluster/resources?type=vm` (over either transport: the HTTPS API, or
`pvesh get` over SSH) lists every VM with its status and the sizes pveplan sets: `maxcpu`
(cores x sockets; pveplan makes one socket), `maxmem` (bytes), `maxdisk` (the boot
disk's bytes) and `tags`. That is all `planner.find_drift` compares, so the probe is that
one call per host. What no listing carries (a NIC's bridge, the cloud-init user and keys)
would cost one `GET .../config` per VM: the probe does not read it, and docs/concepts.md
says so (the create step still reconciles what it reads when it runs).

`live_vm` is pure (the parsing of one listing entry), so it is tested without a host.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from pveplan.planner import LiveHost, LiveVm, Plan, drift_line, find_drift, with_drift

from ._context import Services
from ._model import Event

MIB = 1024 * 1024
GIB = 1024 * MIB


def live_vm(entry: Mapping[str, Any]) -> LiveVm:
    """One `/cluster/resources` qemu entry in pveplan's units. A VM whose stats PVE has
    not gathered yet (just created) lists without sizes: those read as unknown (None)."""
    tags = tuple(t for t in str(entry.get("tags") or "").replace(",", ";").split(";") if t)

    def figure(key: str, unit: int) -> int | None:
        value = entry.get(key)
        return int(value) // unit if isinstance(value, int | float) and value > 0 else None

    return LiveVm(
        vmid=int(entry.get("vmid", 0)),
        name=str(entry.get("name") or f"VM {entry.get('vmid')}"),
        status=str(entry.get("status") or "unknown"),
        cores=figure("maxcpu", 1),
        memory=figure("maxmem", MIB),
        disk=figure("maxdisk", GIB),
        tags=tags,
        kind=str(entry.get("type") or "qemu"),
    )


async def probe_live(services: Services, host: str) -> LiveHost:
    """Every VM and container on `host`'s PVE node, from one listing (`PveDriver.guests`)."""
    pve = await services.pve(host)
    vms = [vm for vm in await pve.guests() if vm.get("node") in (None, pve.node)]
    return LiveHost(host=host, vms=tuple(live_vm(vm) for vm in vms))


async def with_level_drift(plan: Plan, services: Services, emit: Callable[[Event], None]) -> Plan:
    """`plan` (a nested level's, on its own host) with the drift of its VMs against this
    host's store, found in one listing, so its run converges it as the driver's does; each
    drift is logged (the driver's display shows it under this host). Unchanged when
    nothing is applied here yet."""
    resources = {r.address: r.outputs for r in services.store.resources(services.workspace)}
    if not resources:
        return plan
    state = services.store.applied(services.workspace)
    applied = state.steps if state is not None else None
    found = find_drift(plan, await probe_live(services, plan.host), resources, applied)
    for item in found:
        address = item.address
        message = f"drift: {drift_line(item)}"
        emit(Event(address=address, kind="log", host=plan.host, at=time.time(), message=message))
    return with_drift(plan, found) if found else plan
