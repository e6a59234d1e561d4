"""`ssh.wait`: the VM answers SSH, presenting the host key pinned at its creation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pveplan.planner import SshWaitArgs

from .._context import StepContext
from .._kinds import StepKind, register
from .._model import Outputs, StepFailed
from ..channels import ChannelError, SshTarget, wait_for_ssh


def vm_target(ctx: StepContext, refs: Mapping[str, Any], user: str) -> SshTarget:
    """How to reach the VM of this step's node (its address and pinned key come as refs)."""
    node = ctx.address.split(".")[1]
    return ctx.services.hosts.vm_target(ctx.host, refs["ip"], user, refs["host_key"], node)


@register
class SshWait(StepKind):
    name = "ssh.wait"
    tier = "short"

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        target = vm_target(ctx, refs, ctx.args_as(SshWaitArgs).user)
        try:
            await wait_for_ssh(ctx.services.pool, target, timeout=self.timeout(ctx.args))
        except ChannelError as exc:
            raise StepFailed(str(exc)) from None
        return {"ssh": f"{target.user}@{target.host}"}

    async def probe(
        self, ctx: StepContext, step: Any, refs: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> str | None:
        target = vm_target(ctx, refs, ctx.args_as(SshWaitArgs).user)
        try:
            channel = await ctx.services.pool.channel(target)
            result = await channel.run(["true"], timeout=10)
        except ChannelError as exc:
            return str(exc)
        return None if result.exit_status == 0 else "SSH answers, but `true` failed"
