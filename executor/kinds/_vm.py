"""VM step kinds: create (adopting a VM that already matches), start, wait for an address,
and destroy. Each checks PVE's real state first, so a re-run after a kill or a lost
store adopts instead of duplicating, and destroying what is gone succeeds.

A VM is recognised as ours by its name and the `pveplan` tag; the image it was built
from is written in its description (PVE keeps no other record of it). What a difference
between a live VM and its args means is the args' own rule (`VmCreateArgs.reconcile`,
the same rules the planner's diff shows): a changed image replaces the VM, cores and
memory are set in place, a disk grows in place.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

import trio
import yaml
from msgspec import UNSET

from pveplan.planner import GuestDestroyArgs, VmCreateArgs, merge_user_data

from .._context import StepContext
from .._keys import generate_ed25519, public_line
from .._kinds import StepKind, register
from .._model import Outputs, StepFailed
from ..pve import (
    PveDriver,
    PveError,
    PveRequest,
    encode_sshkeys,
    first_ipv4,
    property_string,
    requests,
    tags,
)
from ._imported import recorded_host_key, take_image
from ._pull import pull_boot, pull_instance
from ._snapshot import snapshot_before
from ._snippets import (
    SNIPPETS,
    cicustom,
    converge_snippets,
    remove_snippets,
    site_user_data,
    write_vendor_data,
)
from ._snippets import user_snippet_name as _snippet_name
from ._vmdevices import boot_key, create_params, device_changes, reconcile
from ._vmsettings import guest_keys, settings_requests

MANAGED_TAG = "pveplan"
ID_ATTEMPTS = 5
"""How many of PVE's next free vmids an unpinned create tries before giving up."""
POLL_FIRST = 0.05
POLL_MAX = 2.0
DESTROYING = "pveplan: destroying"
_DESCRIPTION = re.compile(r"^pveplan: image=(?P<image>\S+)", re.MULTILINE)


async def find_vm(pve: PveDriver, name: str, vmid: int | None) -> dict[str, Any] | None:
    """The VM this step means: by vmid when pinned (it must carry the name), else by name
    among pveplan's VMs. A vmid held by a VM of another name is an error, not a match."""
    vms = await pve.vms()
    if vmid is not None:
        for vm in vms:
            if vm.get("vmid") == vmid:
                if vm.get("name") != name:
                    raise StepFailed(
                        f"vmid {vmid} on {pve.node} belongs to VM {vm.get('name')!r}, not {name!r}: "
                        "pick another vmid, or remove that VM"
                    )
                return vm
        return None
    for vm in vms:
        if vm.get("name") == name and MANAGED_TAG in str(vm.get("tags", "")).split(";"):
            return vm
    return None


NODE_SECRETS = (("hostkey", "create"), ("nexthop", "next_hop_key"), ("apitoken", "api_token"))
"""(purpose, step) of the run-time secrets a node's steps keep in the store."""


def _user_data(
    args: VmCreateArgs,
    keys: list[str],
    host_private: bytes,
    host_public: str,
    root_keys: list[str] | None = None,
    pull: Mapping[str, Any] | None = None,
    site: str | None = None,
) -> str:
    """cloud-init user-data: the user with sudo and keys, the pinned host key, the agent.

    `root_keys` (a `pve` node's: its lifecycle and executor run as root) go to root's
    authorized_keys, which cloud-init does for top-level keys with `disable_root: false`.
    `pull` (a pull node's `write_files` and `runcmd`, from `_pull.pull_boot`) is added last:
    its runcmd runs after the agent is enabled. `site` (the site's `user_data` snippet,
    checked when planned) is merged in before it: its lists after pveplan's.
    """
    cloud = args.cloud_init
    user = cloud.user or "homestak"
    data: dict[str, Any] = {
        "hostname": args.name,
        "users": [
            {
                "name": user,
                "sudo": "ALL=(ALL) NOPASSWD:ALL" if cloud.sudo else False,
                "shell": "/bin/bash",
                "ssh_authorized_keys": keys,
            }
        ],
        "ssh_deletekeys": True,
        "ssh_keys": {"ed25519_private": host_private.decode(), "ed25519_public": host_public},
        "packages": ["qemu-guest-agent"],
        "runcmd": [["systemctl", "enable", "--now", "qemu-guest-agent"]],
    }
    if cloud.timezone:
        data["timezone"] = cloud.timezone
    if root_keys:
        data["disable_root"] = False
        data["ssh_authorized_keys"] = root_keys
    if site is not None:
        data = merge_user_data(data, site)
    if pull:
        data["write_files"] = [*data.get("write_files", []), *pull["write_files"]]
        data["runcmd"] = [*data["runcmd"], *pull["runcmd"]]
    return "#cloud-config\n" + yaml.safe_dump(data, sort_keys=True)


def _vm_params(
    args: VmCreateArgs, volid: str, keys: list[str], vmid: int, storage_id: str
) -> dict[str, Any]:
    storage = args.storage
    onboot = {} if args.onboot is UNSET else {"onboot": args.onboot}
    return {
        **onboot,
        "name": args.name,
        "cores": args.cores,
        "memory": args.memory,
        "cpu": "host",
        "ostype": "l26",
        "scsihw": "virtio-scsi-single",
        **create_params(args, volid),  # disks, NICs, ipconfigN, DNS, the boot order
        "ide2": f"{storage}:cloudinit",
        "ciuser": args.cloud_init.user or "homestak",
        "sshkeys": encode_sshkeys(keys),
        "cicustom": cicustom(args, storage_id, vmid),
        "agent": property_string("enabled=1"),
        "serial0": "socket",
        "vga": "serial0",
        "tags": tags(list(args.tags) or [MANAGED_TAG]),
        "description": _description(args),
    }


def _description(args: VmCreateArgs) -> str:
    return f"pveplan: image={args.image}"


def _reconcile(
    node: str, vmid: int, config: Mapping[str, Any], args: VmCreateArgs
) -> list[PveRequest]:
    boot = boot_key(args)
    return reconcile(
        node, vmid, config, cores=args.cores, memory=args.memory, disk=args.disk, boot=boot
    )


def _tags(entry: Mapping[str, Any]) -> list[str]:
    """A VM's tags (a listing entry's or its config's `a;b`), in PVE's order."""
    return [t for t in str(entry.get("tags") or "").replace(",", ";").split(";") if t]


def _recorded_vmid(ctx: StepContext) -> int | None:
    """The vmid the store records for this step's VM: that VM is ours even when someone
    removed its `pveplan` tag (which then goes back)."""
    for resource in ctx.services.store.resources(ctx.workspace):
        if resource.address == ctx.step.address:
            vmid = resource.outputs.get("vm_id")
            return vmid if isinstance(vmid, int) else None
    return None


@register
class VmCreate(StepKind):
    name = "pve.vm.create"
    tier = "long"
    resource = True
    resource_args = GuestDestroyArgs

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        pve = await ctx.pve()
        args = ctx.args_as(VmCreateArgs)
        await self._clear_cut_off_create(ctx, pve, args)
        found = await find_vm(pve, args.name, args.vmid)
        recorded = _recorded_vmid(ctx)
        if found is None and args.vmid is None and recorded is not None:
            # Unpinned and its `pveplan` tag removed by hand: found by the vmid recorded.
            vms = await pve.vms()
            found = next(
                (v for v in vms if v.get("vmid") == recorded and v.get("name") == args.name), None
            )
        if found is not None:
            if MANAGED_TAG not in _tags(found) and found.get("vmid") != recorded:
                raise StepFailed(
                    f"VM {found['vmid']} ({args.name}) on {pve.node} exists but was not made by "
                    "pveplan (no 'pveplan' tag): refusing to adopt it"
                )
            config = await pve.config(found["vmid"])
            described = _DESCRIPTION.search(str(config.get("description", "")))
            image = described.group("image") if described is not None else None
            if image is None:  # made outside pveplan (imported): no record of its image
                image = await take_image(ctx, pve, found["vmid"], config, args, _description(args))
            moved = device_changes(pve.node, found["vmid"], config, args).replace
            if args.reconcile({"image": image}).get("image") == "replace" or moved:
                why = moved or "it was built from another image"
                ctx.log(f"VM {found['vmid']}: {why}: replacing it")
                await destroy_vm(ctx, pve, found["vmid"], args.name)
            else:
                outputs = await self._adopt(ctx, pve, found["vmid"], config, args)
                if DESTROYING in str(config.get("description", "")):
                    # A destroy was cut off after it began (the VM may be stopped): give
                    # the VM a new identity so every step after this one runs again.
                    ctx.log(
                        f"VM {found['vmid']} was being destroyed when that stopped: recovering it"
                    )
                    await pve.set_config(found["vmid"], {"description": _description(args)})
                    outputs["recovered"] = time.time_ns()
                return outputs
        return await self._create(ctx, pve, args, refs)

    async def _clear_cut_off_create(
        self, ctx: StepContext, pve: PveDriver, args: VmCreateArgs
    ) -> None:
        """Remove the half-made VM a killed create of this node left at its pinned vmid.

        PVE writes a new VM's config in two steps: first empty and locked `create`, then
        whole. A kill in between leaves a nameless locked VM that no lookup by name can
        match, and that blocks the vmid for good. It is this node's own when the store
        holds the host key kept just before that create began; anything else stays."""
        vmid = args.vmid
        if vmid is None or ctx.services.store.get_secret(ctx.secret_name("hostkey")) is None:
            return
        for vm in await pve.vms():
            if vm.get("vmid") == vmid and vm.get("lock") == "create":
                if vm.get("name") in (args.name, None, f"VM {vmid}"):
                    ctx.log(f"VM {vmid} is a create of {args.name} that was cut off: removing it")
                    await pve.destroy_vm(vmid, skiplock=True)
                return

    async def _adopt(
        self,
        ctx: StepContext,
        pve: PveDriver,
        vmid: int,
        config: Mapping[str, Any],
        args: VmCreateArgs,
    ) -> Outputs:
        ctx.log(f"VM {vmid} ({args.name}) exists: adopting it")
        size = _reconcile(pve.node, vmid, config, args)
        devices = device_changes(pve.node, vmid, config, args)
        size.extend(devices.requests)
        for kept in devices.kept:
            ctx.log(f"kept as it is: {kept}")
        lost = [tag for tag in args.tags if tag not in _tags(config)]
        if lost:  # removed by hand: put back, keeping any tag someone else added
            ctx.log(f"restoring tag(s) {', '.join(lost)}")
            size.append(
                requests.set_vm_config(pve.node, vmid, {"tags": tags([*_tags(config), *lost])})
            )
        keys = guest_keys(ctx.services, ctx.step)
        size.extend(settings_requests(pve.node, vmid, config, args, keys))
        size.extend(
            await converge_snippets(ctx, pve, vmid, config, args, self._user_file(ctx, args, keys))
        )
        await snapshot_before(ctx, pve, vmid, args, size)
        for request in size:
            if request.method == "PUT" and request.path.endswith("/cloudinit"):
                ctx.log("regenerating the cloud-init drive (the guest reads it at next boot)")
            elif request.method == "PUT" and request.path.endswith("/config"):
                ctx.log(f"updating {', '.join(sorted(request.params))} in place")
            await pve.run(request)
        host_key = await self._host_key(ctx, pve, vmid)
        instance = None
        if args.cloud_init.pull:
            # The instance its first boot reports under: in the user-data it booted with.
            instance = pull_instance(await self._snippet(ctx, pve, vmid))
            if instance is None:
                raise StepFailed(
                    f"pull node VM {vmid} ({args.name}) exists, but its cloud-init snippet "
                    "does not say which instance it reports as: destroy the VM and apply again"
                )
        return _outputs(pve, vmid, args.name, config, host_key, instance)

    def _user_file(self, ctx: StepContext, args: VmCreateArgs, keys: list[str]) -> bytes | None:
        """The user-data file a create would write now, with the VM's kept host key (None
        for a pull node, whose file says which instance it reports as, or without a kept
        key: the file on the host is kept as it is)."""
        private = ctx.services.store.get_secret(ctx.secret_name("hostkey"))
        if args.cloud_init.pull or private is None:
            return None
        root_keys = list(ctx.services.trusted_keys) if args.type == "pve" else None
        site = site_user_data(ctx, args)
        return _user_data(args, keys, private, public_line(private), root_keys, None, site).encode()

    async def _snippet(self, ctx: StepContext, pve: PveDriver, vmid: int) -> dict[str, Any]:
        """The user-data the VM was created with ({} if its snippet is gone or unreadable)."""
        _, path = ctx.services.hosts.snippet_storage(ctx.host)
        data = await pve.channel.get_file(f"{path}/{SNIPPETS}/{_snippet_name(vmid)}")
        try:
            doc = yaml.safe_load(data or b"") or {}
        except yaml.YAMLError:
            return {}
        return doc if isinstance(doc, dict) else {}

    async def _host_key(self, ctx: StepContext, pve: PveDriver, vmid: int) -> str:
        """The VM's pinned host key: from the store, else from the snippet on the host."""
        stored = ctx.services.store.get_secret(ctx.secret_name("hostkey"))
        if stored is not None:
            return public_line(stored)
        if (pinned := recorded_host_key(ctx)) is not None:
            return pinned
        storage_id, _ = ctx.services.hosts.snippet_storage(ctx.host)
        doc = await self._snippet(ctx, pve, vmid)
        try:
            private = doc["ssh_keys"]["ed25519_private"].encode()
        except (KeyError, TypeError, AttributeError):
            raise StepFailed(
                f"VM {vmid} exists but its cloud-init snippet on {ctx.host} ({storage_id}:"
                f"{SNIPPETS}/{_snippet_name(vmid)}) is gone, so its host key cannot be pinned: "
                "destroy the VM and apply again"
            ) from None
        ctx.services.store.put_secret(ctx.secret_name("hostkey"), private)
        return public_line(private)

    async def _create(
        self, ctx: StepContext, pve: PveDriver, args: VmCreateArgs, refs: Mapping[str, Any]
    ) -> Outputs:
        private, public = generate_ed25519(f"root@{args.name}")
        # Kept before the VM exists: a kill after creation still finds the key.
        ctx.services.store.put_secret(ctx.secret_name("hostkey"), private)
        trusted = ctx.services.trusted_keys
        keys = guest_keys(ctx.services, ctx.step)
        root_keys = list(trusted) if args.type == "pve" else None
        pull, instance = None, None
        if args.cloud_init.pull:
            pull, instance = pull_boot(ctx, args.cloud_init.pull)
        storage_id, path = ctx.services.hosts.snippet_storage(ctx.host)
        site = site_user_data(ctx, args)
        user_data = _user_data(args, keys, private, public, root_keys, pull, site).encode()
        pinned = args.vmid
        for _ in range(1 if pinned else ID_ATTEMPTS):
            # An unpinned VM claims a free id no parallel create of ours has; another tool
            # may still take it first, and then the next one is tried.
            vmid = pinned or await pve.claim_id()
            snippet = f"{path}/{SNIPPETS}/{_snippet_name(vmid)}"
            await pve.channel.put_file(snippet, user_data, 0o600)
            await write_vendor_data(ctx, pve, args, vmid)
            ctx.log(f"creating VM {vmid} ({args.name}) from {refs['volume']}")
            params = _vm_params(args, refs["volume"], keys, vmid, storage_id)
            try:
                await pve.create_vm(vmid, params)
                break
            except PveError as exc:
                taken = "already exists" in str(exc)  # by another VM: never record it as ours
                if pinned or not taken:
                    partial: Outputs = {"name": args.name, "node": pve.node}
                    if not taken:
                        partial["vm_id"] = vmid
                    raise StepFailed(
                        f"creating VM {vmid} ({args.name}) on {pve.node}: {exc}", partial
                    ) from None
                # Not ours: its id was taken. Our snippets (a private key) must not stay.
                await remove_snippets(ctx, pve, vmid)
        else:
            raise StepFailed(
                f"creating VM {args.name} on {pve.node}: {ID_ATTEMPTS} free vmids in a row "
                "were taken by other creates; pin a vmid in the manifest, or apply again"
            )
        partial = {"vm_id": vmid, "name": args.name, "node": pve.node}
        try:
            await pve.resize(vmid, boot_key(args), f"{args.disk}G")
            config = await pve.config(vmid)
        except PveError as exc:
            raise StepFailed(
                f"creating VM {vmid} ({args.name}) on {pve.node}: {exc}", partial
            ) from None
        return _outputs(pve, vmid, args.name, config, public, instance)

    async def destroy(self, ctx: StepContext, step: Any, outputs: Mapping[str, Any]) -> None:
        # A step of the plan (rollback), or a live resource rebuilt from its outputs.
        args = ctx.args_as(VmCreateArgs | GuestDestroyArgs)
        vmid = outputs.get("vm_id") or args.vmid
        await destroy_node(ctx, args.name, vmid, step.address)

    async def probe(
        self, ctx: StepContext, step: Any, refs: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> str | None:
        pve = await ctx.pve()
        name = ctx.args_as(VmCreateArgs).name
        found = await find_vm(pve, name, outputs.get("vm_id"))
        if found is None:
            return f"VM {outputs.get('vm_id')} ({name}) no longer exists"
        config = await pve.config(found["vmid"])
        if str(config.get("vmgenid", "")) != str(outputs.get("uuid", "")):
            return f"VM {found['vmid']} was re-created behind pveplan's back"
        args = ctx.args_as(VmCreateArgs)
        size = _reconcile(pve.node, found["vmid"], config, args)
        devices = device_changes(pve.node, found["vmid"], config, args)
        lost = [tag for tag in args.tags if tag not in _tags(config)]
        keys = guest_keys(ctx.services, ctx.step)
        size.extend(settings_requests(pve.node, found["vmid"], config, args, keys))
        if (
            size or lost or devices.requests or devices.replace
        ):  # what the probes find too, for a plan made offline
            return f"VM {found['vmid']} ({name}) differs from its args: re-adopting it"
        return None


def _outputs(
    pve: PveDriver,
    vmid: int,
    name: str,
    config: Mapping[str, Any],
    host_key: str,
    pull_instance: str | None = None,
) -> Outputs:
    outputs: Outputs = {
        "vm_id": vmid,
        "name": name,
        "node": pve.node,
        "uuid": str(config.get("vmgenid", "")),
        "host_key": host_key,
    }
    if pull_instance is not None:
        outputs["pull_instance"] = pull_instance
    return outputs


async def destroy_node(ctx: StepContext, name: str, vmid: int | None, create: str) -> None:
    """Destroy the VM made by step `create` (found by vmid or name; absent is fine) and
    forget the secrets made for that node at run time (its host key; a nested host's
    next-hop key and API token)."""
    pve = await ctx.pve()
    found = await find_vm(pve, name, None) if vmid is None else await _at_vmid(pve, name, vmid)
    if found is not None:
        await destroy_vm(ctx, pve, found["vmid"], name)
    else:
        ctx.log(f"VM {name} is already gone")
    node = create.rsplit(".", 1)[0]
    for purpose, step in NODE_SECRETS:
        ctx.services.store.delete_secret(ctx.secret_name(purpose, f"{node}.{step}"))


async def _at_vmid(pve: PveDriver, name: str, vmid: int) -> dict[str, Any] | None:
    """`find_vm` for a known vmid from the VM's own status, not a listing of the whole
    host: a destroy of N VMs then lists the host no time at all (N status reads)."""
    try:
        status = await pve.status(vmid)
    except PveError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    if status.get("name") != name:
        raise StepFailed(
            f"vmid {vmid} on {pve.node} belongs to VM {status.get('name')!r}, not {name!r}: "
            "pick another vmid, or remove that VM"
        )
    return {**status, "vmid": vmid}


async def destroy_vm(ctx: StepContext, pve: PveDriver, vmid: int, name: str) -> None:
    """Stop (if running) and destroy VM `vmid`, then remove its snippet; absent is fine."""
    try:
        status = await pve.status(vmid)
    except PveError as exc:
        if "does not exist" in str(exc):
            return
        raise
    if status.get("status") == "running":
        # Marked first: if this is cut off, the next apply knows the VM is not as recorded.
        config = await pve.config(vmid)
        description = str(config.get("description", ""))
        if DESTROYING not in description:
            await pve.set_config(vmid, {"description": f"{description}\n{DESTROYING}".strip()})
        await pve.power(vmid, "stop")
    ctx.log(f"destroying VM {vmid} ({name})")
    try:
        await pve.destroy_vm(vmid)
    except PveError as exc:
        if "does not exist" not in str(exc):
            raise
    await remove_snippets(ctx, pve, vmid)


@register
class VmStart(StepKind):
    name = "pve.vm.start"
    tier = "medium"

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        pve = await ctx.pve()
        vmid = refs["vmid"]
        status = await pve.status(vmid)
        if status.get("status") != "running":
            await pve.power(vmid, "start")
        return {}

    async def probe(
        self, ctx: StepContext, step: Any, refs: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> str | None:
        pve = await ctx.pve()
        try:
            status = await pve.status(refs["vmid"])
        except PveError as exc:
            return str(exc)
        if status.get("status") != "running":
            return f"VM {refs['vmid']} is {status.get('status')}"
        return None


_AGENT_NOT_READY = ("guest agent is not running", "is not running", "No QEMU guest agent")


@register
class VmWaitIp(StepKind):
    name = "pve.vm.wait_ip"
    tier = "medium"

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        pve = await ctx.pve()
        vmid = refs["vmid"]
        delay = POLL_FIRST
        while True:  # bounded by the step's timeout
            try:
                ip = first_ipv4(await pve.interfaces(vmid))
            except PveError as exc:
                if not any(text in str(exc) for text in _AGENT_NOT_READY):
                    raise
                ip = None
            if ip:
                return {"ip": ip}
            await trio.sleep(delay)
            delay = min(delay * 2, POLL_MAX)

    async def probe(
        self, ctx: StepContext, step: Any, refs: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> str | None:
        pve = await ctx.pve()
        try:
            ip = first_ipv4(await pve.interfaces(refs["vmid"]))
        except PveError as exc:
            return str(exc)
        if ip != outputs.get("ip"):
            return f"VM {refs['vmid']} now has address {ip}, not {outputs.get('ip')}"
        return None


@register
class VmDestroy(StepKind):
    """The step of a destroy plan: remove the VM and forget the resource."""

    name = "pve.vm.destroy"
    tier = "long"
    cacheable = False

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        create = step.address.rsplit(".", 1)[0] + ".create"
        # Forgotten first: a destroy cut off half-way leaves no record claiming it is live.
        ctx.services.store.remove_resource(ctx.workspace, create)
        args = ctx.args_as(GuestDestroyArgs)
        await destroy_node(ctx, args.name, args.vmid, create)
        return {}
