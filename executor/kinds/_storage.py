"""`pve.storage.content`: a storage the plan uses exists on the host and allows the content
types its steps need (`import` for images, `snippets` for cloud-init, `images` for disks).

PVE refuses to download an image to a storage not configured for `import`, and makes a
dir storage's `snippets/` directory only once `snippets` is enabled, so this runs before
anything is put on a storage. A missing type is enabled the way a user does it (`PUT
/storage/{storage}`, what `pvesm set STORAGE --content ...` calls), or, when site.yaml
says `storage: {enable_content: false}`, refused with that exact command. The content
list replaces the old one, so the types the storage has are kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pveplan.planner import StorageContentArgs

from .._context import StepContext
from .._kinds import StepKind, register
from .._model import Outputs, StepFailed
from ..pve import PveDriver, PveError

DATASTORE_CONTENT = frozenset({"images", "rootdir"})


def content_of(config: Mapping[str, Any]) -> set[str]:
    """A storage's content types from its config (`content`: `iso,vztmpl` or `none`)."""
    return {c for c in str(config.get("content") or "").split(",") if c and c != "none"}


def enable_command(storage: str, content: set[str]) -> str:
    return f"pvesm set {storage} --content {','.join(sorted(content))}"


async def _config(pve: PveDriver, args: StorageContentArgs) -> dict[str, Any]:
    try:
        found = await pve.storage_status(args.storage)
    except PveError as exc:
        raise StepFailed(f"storage '{args.storage}' on {pve.node}: {exc}") from None
    if found is not None:
        return found
    if DATASTORE_CONTENT & set(args.content):
        why = "the node file's `datastore` names it: VM disks go there"
        fix = "create it on the host, or name an existing storage as `datastore`"
    else:
        why = "pveplan keeps images (content import) and cloud-init snippets on `local`"
        fix = "every PVE host has `local`: check that this is a PVE host"
    raise StepFailed(
        f"storage '{args.storage}' does not exist on node {pve.node} ({why}); {fix} "
        "(`pvesm status` lists the storages it has; over the API, a token without "
        "Datastore.Audit on the storage does not see it either)"
    )


@register
class StorageContent(StepKind):
    name = "pve.storage.content"
    tier = "quick"

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        pve = await ctx.pve()
        args = ctx.args_as(StorageContentArgs)
        have = content_of(await _config(pve, args))
        missing = sorted(set(args.content) - have)
        if not missing:
            ctx.log(f"storage {args.storage} on {pve.node} allows {', '.join(args.content)}")
            return {}
        command = enable_command(args.storage, have | set(args.content))
        lacks = f"storage '{args.storage}' on node {pve.node} lacks content type(s) " + ", ".join(
            missing
        )
        if not args.enable:
            raise StepFailed(
                f"{lacks}, which this plan needs; enable them on the host with `{command}` "
                "(or set `storage: {enable_content: true}` in site.yaml to let pveplan do it)"
            )
        ctx.log(f"enabling content {', '.join(missing)} on storage {args.storage} ({command})")
        try:
            await pve.set_storage_content(args.storage, sorted(have | set(args.content)))
        except PveError as exc:
            raise StepFailed(f"{lacks}, and enabling them failed: {exc}") from None
        config = await _config(pve, args)
        still = sorted(set(args.content) - content_of(config))
        if still:  # PVE drops a type the storage's plugin cannot hold
            raise StepFailed(
                f"storage '{args.storage}' on node {pve.node} (type {config.get('type')}) "
                f"cannot hold content type(s) {', '.join(still)}"
            )
        return {}

    async def probe(
        self, ctx: StepContext, step: Any, refs: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> str | None:
        pve = await ctx.pve()
        args = ctx.args_as(StorageContentArgs)
        missing = sorted(set(args.content) - content_of(await _config(pve, args)))
        if missing:
            return f"storage {args.storage} on {pve.node} no longer allows {', '.join(missing)}"
        return None
