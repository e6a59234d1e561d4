"""A VM's cloud-init snippet files on its host: the user-data pveplan writes (with the
site's `user_data` snippet merged in) and the site's `vendor_data` snippet, and the
`cicustom` option that points PVE at them.

Both files sit on the host's snippets storage, named after the vmid, mode 0600 (the
user-data holds the VM's private host key; a site snippet may hold secrets). Their text
comes from the site config at apply (`services.reveal`), never from the plan, which holds
only their keyed digests. On an existing VM a changed file is rewritten and the
cloud-init drive regenerated: the guest reads it at its next boot (PVE's documented
behaviour; pveplan does not reboot it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from msgspec import UNSET

from pveplan.planner import VmCloneArgs, VmCreateArgs

from .._context import StepContext
from ..pve import PveDriver, PveRequest, requests

SNIPPETS = "snippets"
"""The snippets directory of a dir storage (PVE's content type `snippets`)."""


def user_snippet_name(vmid: int) -> str:
    return f"pveplan-{vmid}-user.yaml"


def vendor_snippet_name(vmid: int) -> str:
    return f"pveplan-{vmid}-vendor.yaml"


def cicustom(args: VmCreateArgs | VmCloneArgs, storage_id: str, vmid: int) -> str:
    """PVE's `cicustom`: pveplan's user-data, and the site's vendor-data when asked for."""
    parts = [f"user={storage_id}:{SNIPPETS}/{user_snippet_name(vmid)}"]
    if args.vendor_data is not UNSET:
        parts.append(f"vendor={storage_id}:{SNIPPETS}/{vendor_snippet_name(vmid)}")
    return ",".join(parts)


def site_user_data(ctx: StepContext, args: VmCreateArgs | VmCloneArgs) -> str | None:
    """The site's user-data snippet the step names (checked when planned), else None."""
    return None if args.user_data is UNSET else ctx.services.reveal(args.user_data)


async def write_vendor_data(
    ctx: StepContext, pve: PveDriver, args: VmCreateArgs | VmCloneArgs, vmid: int
) -> bool:
    """Write the vendor-data file the step names (if it differs); whether it was written."""
    if args.vendor_data is UNSET:
        return False
    _, path = ctx.services.hosts.snippet_storage(ctx.host)
    target = f"{path}/{SNIPPETS}/{vendor_snippet_name(vmid)}"
    data = ctx.services.reveal(args.vendor_data).encode()
    if await pve.channel.get_file(target) == data:
        return False
    await pve.channel.put_file(target, data, 0o600)
    return True


async def converge_snippets(
    ctx: StepContext,
    pve: PveDriver,
    vmid: int,
    config: Mapping[str, Any],
    args: VmCreateArgs | VmCloneArgs,
    user_data: bytes | None,
) -> list[PveRequest]:
    """On an existing VM: rewrite the user-data (`user_data`: what a create would write
    now; None to keep the file) and vendor-data files that differ, and the requests that
    point `cicustom` at them and regenerate the cloud-init drive (empty: all as asked)."""
    storage_id, path = ctx.services.hosts.snippet_storage(ctx.host)
    changed = await write_vendor_data(ctx, pve, args, vmid)
    if user_data is not None:
        target = f"{path}/{SNIPPETS}/{user_snippet_name(vmid)}"
        if await pve.channel.get_file(target) != user_data:
            await pve.channel.put_file(target, user_data, 0o600)
            changed = True
    out: list[PveRequest] = []
    wanted = cicustom(args, storage_id, vmid)
    # Only where pveplan writes the user-data: an adopted VM made elsewhere keeps its own.
    if user_data is not None and str(config.get("cicustom", "")) != wanted:
        out.append(requests.set_vm_config(pve.node, vmid, {"cicustom": wanted}))
        changed = True
    if changed:
        ctx.log("cloud-init snippets changed: the guest reads them at its next boot")
        out.append(requests.regenerate_cloudinit(pve.node, vmid))
    return out


async def remove_snippets(ctx: StepContext, pve: PveDriver, vmid: int) -> None:
    """Remove VM `vmid`'s snippet files (absent is fine); a failure is only logged: the
    VM is gone, and a stale file only wastes a few bytes."""
    _, path = ctx.services.hosts.snippet_storage(ctx.host)
    files = [f"{path}/{SNIPPETS}/{name(vmid)}" for name in (user_snippet_name, vendor_snippet_name)]
    try:
        await pve.channel.run(["rm", "-f", *files], timeout=30)
    except Exception as exc:
        ctx.log(f"could not remove the snippets of VM {vmid}: {exc}")
