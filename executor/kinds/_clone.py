"""Templates and clones: `pve.template.create` makes a VM template from an image once;
`pve.clone.create` makes a VM by cloning it (linked or full) instead of importing.

A template is a VM created as any other (the image imported, the disk grown), then
turned into a template (PVE's `POST .../template`: its disks become read-only base
volumes) and never started. Its description records its args' digest, so a re-run
adopts the template that matches and remakes one that does not. PVE refuses to destroy
a template that linked clones are children of, so remaking one first destroys its
linked clones that pveplan made (their steps, which depend on the template's, clone them
again in the same run) and refuses when a clone is not pveplan's.

A clone is `POST .../clone` (`newid`, `name`, `full`) followed to the end of PVE's task,
then set up as a new VM is: cores, memory, NIC, the cloud-init snippet with the pinned
host key and the keys, tags and description, and its disk grown to the size asked
(never shrunk: the planner refuses that). Its description records the template (by
vmid) and how it was cloned, so a clone of a template since remade is remade too.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from pveplan.planner import GuestDestroyArgs, TemplateCreateArgs, VmCloneArgs

from .._context import StepContext
from .._keys import generate_ed25519
from .._kinds import StepKind, register
from .._model import Outputs, StepFailed
from ..pve import PveDriver, PveError, encode_sshkeys, property_string, tags
from ._pull import pull_boot
from ._snippets import cicustom, remove_snippets, site_user_data, write_vendor_data
from ._vm import (
    ID_ATTEMPTS,
    MANAGED_TAG,
    SNIPPETS,
    VmCreate,
    _outputs,
    _snippet_name,
    _tags,
    _user_data,
    destroy_node,
    destroy_vm,
    find_vm,
    reconcile,
)
from ._vmdevices import live_gib
from ._vmsettings import guest_keys

_TEMPLATE = re.compile(r"^pveplan: template=(?P<digest>\w+)", re.MULTILINE)
_CLONE = re.compile(r"^pveplan: clone=(?P<source>\d+) (?P<how>linked|full)", re.MULTILINE)
_FROM = re.compile(r"^pveplan: from=(?P<name>\S+)", re.MULTILINE)


def _disk_gib(config: Mapping[str, Any]) -> int:
    """The boot disk's (`scsi0`, where a template's image goes) size in whole GiB."""
    return live_gib(str(config.get("scsi0", "")))


def template_digest(args: TemplateCreateArgs) -> str:
    """What the template was made from and as: a change of any of it makes a new one."""
    text = json.dumps(
        {
            "image": args.image,
            "cores": args.cores,
            "memory": args.memory,
            "disk": args.disk,
            "bridge": args.bridge,
            "storage": args.storage,
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def template_params(args: TemplateCreateArgs, volid: str) -> dict[str, Any]:
    """A template's VM: the image's disk, a NIC and a cloud-init drive (what every clone
    inherits), the agent and serial console; no keys or snippet of its own (each clone
    gets its own)."""
    storage = args.storage
    return {
        "name": args.name,
        "cores": args.cores,
        "memory": args.memory,
        "cpu": "host",
        "ostype": "l26",
        "scsihw": "virtio-scsi-single",
        "scsi0": property_string(f"{storage}:0", import_from=volid),
        "net0": property_string("virtio", bridge=args.bridge or "vmbr0"),
        "ide2": f"{storage}:cloudinit",
        "ipconfig0": "ip=dhcp",
        "agent": property_string("enabled=1"),
        "serial0": "socket",
        "vga": "serial0",
        "boot": "order=scsi0",
        "tags": tags(list(args.tags) or [MANAGED_TAG]),
        "description": f"pveplan: template={template_digest(args)}\npveplan: image={args.image}",
    }


def clone_params(
    args: VmCloneArgs, source: int, keys: list[str], vmid: int, storage_id: str
) -> dict[str, Any]:
    """What a fresh clone is set to: its own sizes, NIC, cloud-init (DNS too) and identity."""
    how = "linked" if args.linked else "full"
    dns = {f: getattr(args, f) for f in ("nameserver", "searchdomain") if getattr(args, f)}
    return {
        "cores": args.cores,
        "memory": args.memory,
        "net0": property_string("virtio", bridge=args.bridge or "vmbr0"),
        "ciuser": args.cloud_init.user or "homestak",
        "sshkeys": encode_sshkeys(keys),
        "ipconfig0": "ip=dhcp",
        "cicustom": cicustom(args, storage_id, vmid),
        **dns,
        "tags": tags(list(args.tags) or [MANAGED_TAG]),
        "description": f"pveplan: clone={source} {how}\npveplan: from={args.source}",
    }


def _is_clone_of(description: str, args: VmCloneArgs, source: int) -> bool:
    """Whether a VM's description says it is this clone: linked, of the template's current
    vmid (a new template means a new linked clone); or full, of the same source node (a
    full copy does not depend on its source any more)."""
    described = _CLONE.search(description)
    if described is None:
        return False
    if args.linked:
        return described.groups() == (str(source), "linked")
    named = _FROM.search(description)
    return described["how"] == "full" and named is not None and named["name"] == args.source


async def _claimed(pve: PveDriver, pinned: int | None) -> int:
    return pinned or await pve.claim_id()


def _taken(exc: PveError) -> bool:
    return "already exists" in str(exc)


@register
class TemplateCreate(StepKind):
    name = "pve.template.create"
    tier = "long"
    resource = True
    resource_args = GuestDestroyArgs

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        pve = await ctx.pve()
        args = ctx.args_as(TemplateCreateArgs)
        found = await find_vm(pve, args.name, args.vmid)
        if found is not None:
            if MANAGED_TAG not in _tags(found):
                raise StepFailed(
                    f"VM {found['vmid']} ({args.name}) on {pve.node} exists but was not made by "
                    "pveplan (no 'pveplan' tag): refusing to adopt it"
                )
            vmid = found["vmid"]
            config = await pve.config(vmid)
            described = _TEMPLATE.search(str(config.get("description", "")))
            if described is not None and described.group("digest") == template_digest(args):
                ctx.log(f"template {vmid} ({args.name}) exists: adopting it")
                return await self._finish(ctx, pve, vmid, args, config)
            ctx.log(f"template {vmid} ({args.name}) was made from other args: making it anew")
            await self._destroy_with_clones(ctx, pve, vmid, args.name)
        return await self._create(ctx, pve, args, refs["volume"])

    async def _create(
        self, ctx: StepContext, pve: PveDriver, args: TemplateCreateArgs, volid: str
    ) -> Outputs:
        for _ in range(1 if args.vmid else ID_ATTEMPTS):
            vmid = await _claimed(pve, args.vmid)
            ctx.log(f"creating template {vmid} ({args.name}) from {volid}")
            try:
                await pve.create_vm(vmid, template_params(args, volid))
                break
            except PveError as exc:
                if args.vmid or not _taken(exc):
                    raise StepFailed(f"creating template {vmid} ({args.name}): {exc}") from None
        else:
            raise StepFailed(
                f"creating template {args.name} on {pve.node}: {ID_ATTEMPTS} free vmids in a "
                "row were taken by other creates; pin a vmid in the manifest, or apply again"
            )
        return await self._finish(ctx, pve, vmid, args, await pve.config(vmid))

    async def _finish(
        self,
        ctx: StepContext,
        pve: PveDriver,
        vmid: int,
        args: TemplateCreateArgs,
        config: Mapping[str, Any],
    ) -> Outputs:
        """Grow the disk and make it a template, unless done (a kill in between)."""
        partial = {"vm_id": vmid, "name": args.name, "node": pve.node}
        try:
            if not config.get("template"):
                if _disk_gib(config) < args.disk:
                    await pve.resize(vmid, "scsi0", f"{args.disk}G")
                await pve.make_template(vmid)
                config = await pve.config(vmid)
        except PveError as exc:
            raise StepFailed(f"making template {vmid} ({args.name}): {exc}", partial) from None
        return {**partial, "uuid": str(config.get("vmgenid", "")), "disk": _disk_gib(config)}

    async def _destroy_with_clones(
        self, ctx: StepContext, pve: PveDriver, vmid: int, name: str
    ) -> None:
        """Destroy template `vmid`, its linked clones first (PVE refuses otherwise); a
        linked clone pveplan did not make stops it."""
        clones = []
        for vm in await pve.vms():
            if vm.get("vmid") == vmid:
                continue
            config = await pve.config(vm["vmid"])
            disks = [str(v) for k, v in config.items() if re.fullmatch(r"(scsi|virtio|sata)\d+", k)]
            if any(f"base-{vmid}-" in disk for disk in disks):
                clones.append((vm, config))
        foreign = [vm for vm, _ in clones if MANAGED_TAG not in _tags(vm)]
        if foreign:
            names = ", ".join(f"{vm['vmid']} ({vm.get('name')})" for vm in foreign)
            raise StepFailed(
                f"template {vmid} ({name}) must be made anew, but VMs not made by pveplan are "
                f"linked clones of it: {names}; PVE refuses to destroy a template with linked "
                "clones: destroy or full-clone those VMs, then apply again"
            )
        for vm, _ in clones:
            ctx.log(f"destroying linked clone {vm['vmid']} ({vm.get('name')}) of template {vmid}")
            await destroy_vm(ctx, pve, vm["vmid"], str(vm.get("name")))
        await destroy_vm(ctx, pve, vmid, name)

    async def destroy(self, ctx: StepContext, step: Any, outputs: Mapping[str, Any]) -> None:
        args = ctx.args_as(TemplateCreateArgs | GuestDestroyArgs)
        await destroy_node(ctx, args.name or "", outputs.get("vm_id") or args.vmid, step.address)

    async def probe(
        self, ctx: StepContext, step: Any, refs: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> str | None:
        pve = await ctx.pve()
        name = ctx.args_as(TemplateCreateArgs).name
        found = await find_vm(pve, name, outputs.get("vm_id"))
        if found is None:
            return f"template {outputs.get('vm_id')} ({name}) no longer exists"
        if not (await pve.config(found["vmid"])).get("template"):
            return f"VM {found['vmid']} ({name}) is no longer a template"
        return None


@register
class CloneCreate(StepKind):
    """A VM cloned from its template; adopted as `pve.vm.create` adopts a VM."""

    name = "pve.clone.create"
    tier = "long"
    resource = True
    resource_args = GuestDestroyArgs

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        pve = await ctx.pve()
        args = ctx.args_as(VmCloneArgs)
        source = int(refs["template"])
        found = await find_vm(pve, args.name, args.vmid)
        if found is not None:
            if MANAGED_TAG not in _tags(found):
                raise StepFailed(
                    f"VM {found['vmid']} ({args.name}) on {pve.node} exists but was not made by "
                    "pveplan (no 'pveplan' tag): refusing to adopt it"
                )
            config = await pve.config(found["vmid"])
            how = "linked" if args.linked else "full"
            if _is_clone_of(str(config.get("description", "")), args, source):
                # The same VM's adoption as an imported one's: sizes, tags, host key.
                return await VmCreate._adopt(self, ctx, pve, found["vmid"], config, args)  # type: ignore[arg-type]
            ctx.log(f"VM {found['vmid']} is not a {how} clone of {source}: replacing it")
            await destroy_vm(ctx, pve, found["vmid"], args.name)
        return await self._clone(ctx, pve, args, source)

    _snippet = VmCreate._snippet
    _user_file = VmCreate._user_file
    _host_key = VmCreate._host_key

    async def _clone(
        self, ctx: StepContext, pve: PveDriver, args: VmCloneArgs, source: int
    ) -> Outputs:
        private, public = generate_ed25519(f"root@{args.name}")
        ctx.services.store.put_secret(ctx.secret_name("hostkey"), private)
        keys = guest_keys(ctx.services, ctx.step)
        pull, instance = None, None
        if args.cloud_init.pull:
            pull, instance = pull_boot(ctx, args.cloud_init.pull)
        storage_id, path = ctx.services.hosts.snippet_storage(ctx.host)
        site = site_user_data(ctx, args)
        user_data = _user_data(args, keys, private, public, None, pull, site).encode()  # type: ignore[arg-type]
        how = "linked" if args.linked else "full"
        for _ in range(1 if args.vmid else ID_ATTEMPTS):
            vmid = await _claimed(pve, args.vmid)
            snippet = f"{path}/{SNIPPETS}/{_snippet_name(vmid)}"
            await pve.channel.put_file(snippet, user_data, 0o600)
            await write_vendor_data(ctx, pve, args, vmid)
            ctx.log(f"cloning VM {vmid} ({args.name}) from template {source} ({how})")
            try:
                await pve.clone_vm(
                    source,
                    vmid,
                    name=args.name,
                    full=not args.linked,
                    storage=args.storage if not args.linked else None,
                )
                break
            except PveError as exc:
                if args.vmid or not _taken(exc):
                    partial: Outputs = {"name": args.name, "node": pve.node}
                    raise StepFailed(f"cloning VM {vmid} ({args.name}): {exc}", partial) from None
                await remove_snippets(ctx, pve, vmid)
        else:
            raise StepFailed(
                f"cloning VM {args.name} on {pve.node}: {ID_ATTEMPTS} free vmids in a row were "
                "taken by other creates; pin a vmid in the manifest, or apply again"
            )
        partial = {"vm_id": vmid, "name": args.name, "node": pve.node}
        try:
            params = clone_params(args, source, keys, vmid, storage_id)
            await pve.set_config(vmid, params)
            config = await pve.config(vmid)
            if _disk_gib(config) < args.disk:
                await pve.resize(vmid, "scsi0", f"{args.disk}G")
                config = await pve.config(vmid)
        except PveError as exc:
            raise StepFailed(f"setting up clone {vmid} ({args.name}): {exc}", partial) from None
        return _outputs(pve, vmid, args.name, config, public, instance)

    async def destroy(self, ctx: StepContext, step: Any, outputs: Mapping[str, Any]) -> None:
        args = ctx.args_as(VmCloneArgs | GuestDestroyArgs)
        await destroy_node(ctx, args.name or "", outputs.get("vm_id") or args.vmid, step.address)

    async def probe(
        self, ctx: StepContext, step: Any, refs: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> str | None:
        pve = await ctx.pve()
        args = ctx.args_as(VmCloneArgs)
        found = await find_vm(pve, args.name, outputs.get("vm_id"))
        if found is None:
            return f"VM {outputs.get('vm_id')} ({args.name}) no longer exists"
        config = await pve.config(found["vmid"])
        if str(config.get("vmgenid", "")) != str(outputs.get("uuid", "")):
            return f"VM {found['vmid']} was re-created behind pveplan's back"
        size = reconcile(
            pve.node, found["vmid"], config, cores=args.cores, memory=args.memory, disk=args.disk
        )
        if size:
            return f"VM {found['vmid']} ({args.name}) differs from its args: re-adopting it"
        return None
