"""What the VM create kind does differently for a VM `pveplan import` adopted.

Such a VM was made outside pveplan (`qm create`, another tool): its description names
no image, and the store holds its host key's public half only (read from the guest
through its agent; the private half never leaves the guest). Kept apart from `_vm` so the
create kind reads as the common case.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pveplan.planner import VmCreateArgs

from .._context import StepContext
from ..pve import PveDriver


async def take_image(
    ctx: StepContext,
    pve: PveDriver,
    vmid: int,
    config: Mapping[str, Any],
    args: VmCreateArgs,
    description: str,
) -> str:
    """The image of a VM whose description names none: PVE keeps no record of what a
    disk was made from, so the manifest's is taken and written to the description (after
    what is there, `description` being pveplan's line), so that a later change of the
    manifest's image replaces the VM as it would any other."""
    ctx.log(f"VM {vmid} records no image: taking the manifest's ({args.image}) as its own")
    text = f"{config.get('description') or ''}\n{description}".strip()
    await pve.set_config(vmid, {"description": text})
    return args.image


def recorded_host_key(ctx: StepContext) -> str | None:
    """The host key the store records for this step's VM (its resource's `host_key`)."""
    for resource in ctx.services.store.resources(ctx.workspace):
        if resource.address == ctx.step.address:
            key = resource.outputs.get("host_key")
            return key if isinstance(key, str) and key else None
    return None
