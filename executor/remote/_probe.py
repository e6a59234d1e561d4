"""Probing nested levels: each applied nested host's executor finds its own level's drift.

The driver (at `plan` and `status` time) and every executor below it (answering a probe)
do the same here: `probe_nested` asks each nested host of a level, concurrently with a
bound, over the same SSH path an apply uses (the host key pinned when the VM was made),
to run the bundle already installed there with a `probe` request. That executor lists its
own PVE host once (`probe_level`: one `/cluster/resources` call), compares it with its own
store, and asks the hosts below it the same, so each level costs one listing whatever its
depth. Nothing is shipped or installed: a host whose executor predates the request is
reported as too old, one that does not answer (its VM stopped, SSH refused) as unreachable,
and neither ever fails the plan.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import trio

from pveplan.executor._errors import ExecutorError
from pveplan.executor._live import probe_live
from pveplan.executor.channels import ChannelError
from pveplan.planner import (
    DelegateArgs,
    LevelProbe,
    StepArgsError,
    args_of,
    below,
    find_drift,
    node_statuses,
)

from ._bundle import REMOTE_REL, TOP, bundle_installed, forget_bundle
from ._client import ProbeUnsupported, RemoteError, executor_argv, probe_remote
from ._layout import REMOTE_USER

if TYPE_CHECKING:
    from pveplan.executor._context import Services
    from pveplan.planner import Plan

PROBE_PARALLEL = 4
"""Nested hosts of one level probed at once (each is an SSH session and a Python start)."""
CONNECT_TIMEOUT = 20.0
"""Seconds to reach a nested host and find its executor before calling it unreachable."""


async def probe_level(services: Services, plan: Plan) -> tuple[LevelProbe, ...]:
    """This level (an empty path; one listing of its host against its store), then every
    level below it. A level with nothing applied answers `not_applied` and asks no host."""
    resources = {r.address: r.outputs for r in services.store.resources(services.workspace)}
    if not resources:
        return (LevelProbe(path=(), state="not_applied"),)
    state = services.store.applied(services.workspace)
    applied = state.steps if state is not None else None
    live = await probe_live(services, plan.host)
    drift = find_drift(plan, live, resources, applied)
    statuses = node_statuses(plan, live, resources, drift)
    own = tuple(n for n in statuses if n.host == plan.host)
    deeper = await probe_nested(services, plan, resources)
    return (LevelProbe(path=(), state="probed", drift=drift, nodes=own), *deeper)


async def probe_nested(
    services: Services, plan: Plan, resources: Mapping[str, Mapping[str, Any]]
) -> tuple[LevelProbe, ...]:
    """Every level below `plan`'s (paths from it down), each nested host before its own
    levels, in the plan's order; at most PROBE_PARALLEL hosts at once."""
    hosts: list[tuple[str, Plan]] = [
        (address, subplan)
        for address, subplan in plan.subplans.items()
        if subplan.action == "apply"
    ]
    found: dict[str, tuple[LevelProbe, ...]] = {}
    limiter = trio.CapacityLimiter(PROBE_PARALLEL)

    async def one(address: str, subplan: Plan) -> None:
        async with limiter:
            found[address] = await _probe_host(services, plan, address, subplan, resources)

    async with trio.open_nursery() as nursery:
        for address, subplan in hosts:
            nursery.start_soon(one, address, subplan)
    return tuple(level for address, _ in hosts for level in found[address])


async def _probe_host(
    services: Services,
    plan: Plan,
    address: str,
    subplan: Plan,
    resources: Mapping[str, Mapping[str, Any]],
) -> tuple[LevelProbe, ...]:
    """The levels of the nested host whose delegate is `address` (its own first)."""
    from pveplan.planner import __version__

    node = address.split(".")[1]
    try:
        host = args_of(plan.step(address), DelegateArgs).host  # type: ignore[union-attr]
    except (KeyError, StepArgsError):
        host = node
    create = resources.get(f"node.{node}.create") or {}
    steps = _recorded(services, (f"node.{node}.wait_ip", f"node.{node}.bootstrap"))
    ip = steps.get(f"node.{node}.wait_ip", {}).get("ip")
    host_key = create.get("host_key")
    recorded = steps.get(f"node.{node}.bootstrap", {}).get("launcher")
    if not (isinstance(ip, str) and isinstance(host_key, str) and isinstance(recorded, str)):
        return (LevelProbe(path=(host,), state="not_applied"),)
    target = services.hosts.vm_target(plan.host, ip, REMOTE_USER, host_key, host)
    try:
        with trio.fail_after(CONNECT_TIMEOUT):
            channel = await services.pool.channel(target)
            launcher, own = await _launcher(services, channel, recorded)
        levels = await probe_remote(
            channel, executor_argv(launcher, warm=own), subplan, host=host, version=__version__
        )
    except ProbeUnsupported as exc:
        return (LevelProbe(path=(host,), state="too_old", reason=str(exc)),)
    except trio.TooSlowError:
        reason = f"no answer within {CONNECT_TIMEOUT:g}s"
        return (LevelProbe(path=(host,), state="unreachable", reason=reason),)
    except (ChannelError, ExecutorError, OSError) as exc:
        if isinstance(exc, RemoteError):  # its launcher may be gone: check it next time
            with contextlib.suppress(ChannelError):
                await forget_bundle(channel, services.bundle().hash)
        return (LevelProbe(path=(host,), state="unreachable", reason=str(exc)),)
    return below(host, levels)


def _recorded(services: Services, addresses: tuple[str, ...]) -> dict[str, Mapping[str, Any]]:
    """The outputs of the applied steps at `addresses` (their latest successful result
    for the step hash this workspace applied): where the nested host answers (`wait_ip`)
    and the bundle its last apply installed (`bootstrap`)."""
    state = services.store.applied(services.workspace)
    applied = state.steps if state is not None else {}
    best: dict[str, Any] = {}
    for result in services.store.results_for(addresses).values():
        if result.status != "ok" or applied.get(result.address) != result.step_hash:
            continue
        known = best.get(result.address)
        if known is None or (result.run_id or 0) > (known.run_id or 0):
            best[result.address] = result
    return {address: result.outputs for address, result in best.items()}


async def _launcher(services: Services, channel: Any, recorded: str) -> tuple[str, bool]:
    """The launcher to probe with, and whether it is this pveplan's own bundle (whose warm
    executor can serve): this pveplan's bundle when the host has it installed, else the one
    its last apply installed (an older executor, which says so)."""
    bundle = services.bundle()
    if await bundle_installed(channel, bundle.hash):
        return f"{REMOTE_REL}/{bundle.hash}/{TOP}/run.py", True
    return recorded, False
