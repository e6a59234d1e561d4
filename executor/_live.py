"""The live-state probe before a plan: one listing per host, whatever its VM count.

PVE's `GET /cluster/resources?type=vm` (over either transport: the HTTPS API, or
`pvesh get` over SSH) lists every VM with its status and the sizes pveplan sets: `maxcpu`
(cores x sockets; pveplan makes one socket), `maxmem` (bytes), `maxdisk` (the boot
disk's bytes) and `tags`. That is all `planner.find_drift` compares, so the probe is that
one call per host. What no listing carries (a NIC's bridge, the cloud-init user and keys)
would cost one `GET .../config` per VM: the probe does not read it, and docs/concepts.md
says so (the create step still reconciles what it reads when it runs).

`live_vm` is pure (the parsing of one listing entry), so it is tested without a host.

`probe_configs` is the exception asked for by name: `--refresh=full` reads the config of
each VM the store records as applied (a few at once), for `planner.find_config_drift`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pveplan.planner import LiveHost, LiveVm, Plan, drift_line, find_drift, with_drift

from ._context import Services
from ._model import Event

if TYPE_CHECKING:
    from pveplan.planner import LiveConfig

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


CONFIG_READS = 4
"""How many VM configs a full refresh reads at once from one host."""


async def probe_configs(
    services: Services, host: str, plan: Plan, targets: Mapping[str, int]
) -> tuple[dict[str, LiveConfig], dict[str, tuple[str, ...]]]:
    """A full refresh's extra reads: the config of each VM in `targets` (create step
    address -> vmid, `planner.config_targets`: only what the store records as applied),
    one `GET .../config` each, a few at once; and the public keys each is meant to have
    (its step's secrets, revealed here and never written into the plan). A VM gone
    between the listing and its read is left out (the listing's drift names it)."""
    import trio

    from .kinds._vmsettings import guest_keys, live_config
    from .pve import PveError

    pve = await services.pve(host)
    steps = {step.address: step for step in plan.steps}
    limiter = trio.CapacityLimiter(CONFIG_READS)
    configs: dict[str, LiveConfig] = {}

    async def read(address: str, vmid: int) -> None:
        async with limiter:
            try:
                config = await pve.config(vmid)
            except PveError as exc:
                if "does not exist" in str(exc):
                    return
                raise
        configs[address] = live_config(vmid, config)

    async with trio.open_nursery() as nursery:
        for address, vmid in targets.items():
            nursery.start_soon(read, address, vmid)
    keys = {a: tuple(guest_keys(services, steps[a])) for a in configs}
    return configs, keys
