"""`pve.image.ensure`: the image a VM is built from, present on the host's storage.

Images are fixed inputs: the step is identified by the image's sha256, and PVE verifies
the download against it (`checksum`), so what lands on the storage is exactly what the
plan names, whichever mirror the URL hint points at.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pveplan.planner import ImageEnsureArgs

from .._context import StepContext
from .._kinds import StepKind, register
from .._model import Outputs, StepFailed
from ..pve import PveError

CONTENT = "import"
"""A disk image's content type; a container template (format vztmpl) is `vztmpl`."""


def content_of(args: ImageEnsureArgs) -> str:
    return "vztmpl" if args.format == "vztmpl" else CONTENT


@register
class ImageEnsure(StepKind):
    name = "pve.image.ensure"
    tier = "extended"

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        pve = await ctx.pve()
        args = ctx.args_as(ImageEnsureArgs)
        storage, filename, content = args.storage, args.filename, content_of(args)
        volid = f"{storage}:{content}/{filename}"
        if await self._present(pve, storage, volid, content):
            ctx.log(f"{volid} is already on {pve.node}")
            return {"volid": volid}
        # An unpinned image's URL is its identity; a pinned one's is only a hint.
        url = (args.url or None) or step.hints.get("url")
        if not url:
            raise StepFailed(f"image {args.name} has no URL to fetch it from")
        ctx.log(f"downloading {args.name} to {volid}")
        try:
            await pve.download(
                storage, filename=filename, url=url, content=content, sha256=args.sha256
            )
        except PveError as exc:
            raise StepFailed(f"fetching image {args.name} from {url}: {exc}") from None
        return {"volid": volid}

    async def _present(self, pve: Any, storage: str, volid: str, content: str) -> bool:
        return any(
            item.get("volid") == volid for item in await pve.storage_content(storage, content)
        )

    async def probe(
        self, ctx: StepContext, step: Any, refs: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> str | None:
        pve = await ctx.pve()
        args = ctx.args_as(ImageEnsureArgs)
        volid = str(outputs.get("volid"))
        if not await self._present(pve, args.storage, volid, content_of(args)):
            return f"{outputs.get('volid')} is no longer on {pve.node}"
        return None
