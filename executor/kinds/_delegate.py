"""`subplan.delegate`: run a nested PVE host's subtree on that host, with its own executor.

The step ships the subplan its args name (by hash) to the nested host over SSH, after
making sure the host runs exactly this pveplan (the bundle, checked by hash), and follows
the run: the remote events appear in this run's display and record, nested under the
host. Its outputs are the nodes of the subtree (`node.NAME.vm_id|ip|host_key`, deeper
levels included), which is what `--json-output` and the `test` verb need.

Never cached: the remote store is what caches. A re-run ships the same subplan and the
remote reports every step cached; drift below is found and repaired by the level it is on.

With `action: destroy` (destroy plans), the subtree is destroyed before its host. A host
that is already gone, or not running, needs nothing: its VMs went (or go) with it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from pveplan.planner import DelegateArgs

from .._context import StepContext
from .._kinds import StepKind, register
from .._model import Outputs, StepFailed
from ..channels import ChannelError, SshTarget
from ..pve import PveError, first_ipv4
from ..remote._layout import REMOTE_USER
from ._vm import find_vm

NODE_FIELDS = {"create": ("vm_id", "host_key"), "wait_ip": ("ip", "host_key")}
"""What a level reports of each node (a container's host key comes from its wait_ip)."""


def node_outputs(outputs: Mapping[str, Mapping[str, Any]]) -> Outputs:
    """The nodes of a finished level as flat outputs: `node.NAME.FIELD`, deeper levels'
    nodes (from their delegate steps) included."""
    found: Outputs = {}
    for address, values in sorted(outputs.items()):
        parts = address.split(".")
        if len(parts) != 3 or parts[0] != "node":
            continue
        for field in NODE_FIELDS.get(parts[2], ()):
            if field in values:
                found[f"node.{parts[1]}.{field}"] = values[field]
        if parts[2] in ("delegate", "destroy_subtree"):
            found.update({k: v for k, v in values.items() if k.startswith("node.")})
    return found


def _failure_message(host: str, result: Any) -> str:
    if not result.failures:
        return f"the run on {host} {result.status}"
    first = result.failures[0]
    nested = first.address.endswith((".delegate", ".destroy_subtree"))
    message = first.message if nested else f"{host} › {first.address}: {first.message}"
    more = len(result.failures) - 1
    return message + (f" (and {more} more failed step{'s' * (more > 1)})" if more else "")


@register
class SubplanDelegate(StepKind):
    name = "subplan.delegate"
    tier = "extended"
    cacheable = False

    def unchanged(self, outputs: Mapping[str, Any]) -> bool:
        return outputs.get("ran") == 0 and not outputs.get("removed")

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        from pveplan.planner import __version__

        from ..remote import BundleError, RemoteError, ensure_bundle, run_remote
        from ..remote._bundle import forget_bundle
        from ..remote._client import executor_argv
        from ..remote._protocol import RunOptions

        args = ctx.args_as(DelegateArgs)
        host = args.host
        subplan = ctx.plan.subplans.get(step.address) if ctx.plan is not None else None
        if subplan is None or subplan.hash != args.subplan:
            raise StepFailed(f"the plan holds no subplan {args.subplan} for {host}")
        destroying = args.action == "destroy"
        target = await _destroy_target(ctx, step) if destroying else _apply_target(ctx, refs)
        if target is None:
            return {"subplan": subplan.hash, "gone": True}
        try:
            channel = await ctx.services.pool.channel(target)
            bundle = ctx.services.bundle()
            launcher = await ensure_bundle(channel, bundle)
            result = await run_remote(
                channel,
                executor_argv(launcher, warm=True),
                subplan,
                host=host,
                version=__version__,
                bundle=bundle.hash,
                options=RunOptions(
                    verb="destroy" if destroying else "apply",
                    authorized_keys=tuple(ctx.services.trusted_keys),
                    spec_server=ctx.services.spec_server,
                    probe_live=ctx.services.probe_live,
                ),
                forward=ctx.forward,
            )
        except (ChannelError, BundleError, RemoteError) as exc:
            if isinstance(exc, RemoteError):  # its launcher may be gone: check it next time
                with contextlib.suppress(ChannelError):
                    await forget_bundle(channel, bundle.hash)
            if destroying:  # the host's own destroy follows, and takes its VMs with it
                ctx.log(
                    f"could not destroy the subtree on {host} first ({exc}); its VMs go with it"
                )
                return {"subplan": subplan.hash, "skipped": True}
            raise StepFailed(str(exc)) from None
        outputs: Outputs = {
            "subplan": subplan.hash,
            "ran": result.ran,
            "cached": result.cached,
            "remote_run": result.run_id,
            "removed": len(result.removed),
            **node_outputs(result.outputs),
        }
        if result.status != "ok":
            raise StepFailed(_failure_message(host, result), outputs)
        ctx.log(f"{host}: {result.ran} ran, {result.cached} cached")
        return outputs


def _apply_target(ctx: StepContext, refs: Mapping[str, Any]) -> SshTarget:
    host = ctx.args_as(DelegateArgs).host
    return ctx.services.hosts.vm_target(ctx.host, refs["ip"], REMOTE_USER, refs["host_key"], host)


async def _destroy_target(ctx: StepContext, step: Any) -> SshTarget | None:
    """Where the nested host answers now, or None if it is gone or stopped (its VMs with it)."""
    host = ctx.args_as(DelegateArgs).host
    node = step.address.split(".")[1]
    create = f"node.{node}.create"
    recorded = {r.address: r.outputs for r in ctx.services.store.resources(ctx.workspace)}
    outputs = recorded.get(create, {})
    pve = await ctx.pve()
    try:
        found = await find_vm(pve, node, outputs.get("vm_id"))
        if found is None:
            ctx.log(f"{host} is already gone: its VMs went with it")
            return None
        status = await pve.status(found["vmid"])
        if status.get("status") != "running":
            ctx.log(f"{host} is not running: its VMs go with it")
            return None
        address = first_ipv4(await pve.interfaces(found["vmid"]))
    except PveError as exc:
        raise StepFailed(f"cannot find {host} on {ctx.host}: {exc}") from None
    host_key = outputs.get("host_key")
    if not address or not isinstance(host_key, str):
        raise StepFailed(
            f"{host} runs, but its address or pinned host key is unknown to this store; "
            "destroy it with `pveplan destroy --discover`, which removes it with its VMs"
        )
    return ctx.services.hosts.vm_target(ctx.host, address, REMOTE_USER, host_key, host)
