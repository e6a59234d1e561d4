"""Container (LXC) step kinds: create (adopting a container that already matches), start,
wait for an address, and destroy, over either transport (each is a `PveRequest` on
`/nodes/{node}/lxc`: the HTTPS API, or `pvesh` over SSH).

A container is recognised as ours by its hostname and the `pveplan` tag, the template it
was made from is written in its description, as a VM's image is. What a difference
between a live container and its args means is the args' own rule (`CtCreateArgs.RULES`,
the same the plan's diff shows): a new template or a change of `unprivileged` replaces
the container; cores, memory, swap and `nesting` are set in place; the root file system
grows in place.

Its SSH host key: PVE writes fresh host keys into a container's root file system when it
creates it (no cloud-init, no way to hand one in at create), so pveplan reads the public
key through the host once the container runs (`pct exec VMID -- cat ...`), over the
host's own SSH channel, whose key is pinned: a trusted path, never trust on first use of
the container's sshd. `wait_ip` does it, and `ssh.wait`/`config.push` take the key from
there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import trio

from pveplan.planner import AUTH_SECRETS, CtCreateArgs, GuestDestroyArgs, change_of

from .._context import StepContext
from .._kinds import StepKind, register
from .._model import Outputs, StepFailed
from ..pve import PveDriver, PveError, first_ipv4, property_string, requests, tags
from ._vm import ID_ATTEMPTS, MANAGED_TAG, NODE_SECRETS, POLL_FIRST, POLL_MAX

HOST_KEY_PATH = "/etc/ssh/ssh_host_ed25519_key.pub"
ROOTFS = "rootfs"
_DESCRIPTION = re.compile(r"^pveplan: template=(?P<template>\S+)", re.MULTILINE)


def _tags(entry: Mapping[str, Any]) -> list[str]:
    return [t for t in str(entry.get("tags") or "").replace(",", ";").split(";") if t]


async def find_ct(pve: PveDriver, name: str, vmid: int | None) -> dict[str, Any] | None:
    """The container this step means: by vmid when pinned (it must be a container with
    that hostname: a VM holding the vmid is an error, vmids being one space for both),
    else by name among pveplan's containers."""
    guests = await pve.run(requests.cluster_resources("vm")) or []
    if vmid is not None:
        for guest in guests:
            if guest.get("vmid") != vmid:
                continue
            kind = "container" if guest.get("type") == "lxc" else "VM"
            if kind == "VM" or guest.get("name") != name:
                raise StepFailed(
                    f"vmid {vmid} on {pve.node} belongs to {kind} {guest.get('name')!r}, not "
                    f"container {name!r}: pick another vmid, or remove that {kind}"
                )
            return dict(guest)
        return None
    for guest in guests:
        if guest.get("type") == "lxc" and guest.get("name") == name and MANAGED_TAG in _tags(guest):
            return dict(guest)
    return None


def ct_params(args: CtCreateArgs, template: str, keys: list[str]) -> dict[str, Any]:
    """`POST /nodes/{node}/lxc`'s parameters for `args` (`template`: the vztmpl volid)."""
    return {
        "ostemplate": template,
        "hostname": args.name,
        "cores": args.cores,
        "memory": args.memory,
        "swap": args.swap,
        "rootfs": f"{args.storage}:{args.disk}",
        "net0": property_string("name=eth0", bridge=args.bridge or "vmbr0", ip="dhcp"),
        "features": property_string(f"nesting={int(args.nesting)}"),
        "unprivileged": args.unprivileged,
        "ssh-public-keys": "\n".join(keys),
        "ostype": "debian",
        "tags": tags(list(args.tags) or [MANAGED_TAG]),
        "description": description(args),
        **{f: getattr(args, f) for f in DNS if getattr(args, f)},
    }


DNS = ("nameserver", "searchdomain")
"""The container's DNS options: set when the args say, else PVE's (the host's) default."""


def description(args: CtCreateArgs) -> str:
    return f"pveplan: template={args.template}"


def live_fields(config: Mapping[str, Any]) -> dict[str, Any]:
    """What a container's config says of the fields its args set, in the args' units."""
    rootfs = re.search(r"size=(\d+)G", str(config.get("rootfs", "")))
    features = dict(
        part.split("=", 1) for part in str(config.get("features", "")).split(",") if "=" in part
    )
    described = _DESCRIPTION.search(str(config.get("description", "")))
    return {
        "cores": int(config.get("cores", 1)),
        "memory": int(config.get("memory", 512)),
        "swap": int(config.get("swap", 512)),
        "disk": int(rootfs.group(1)) if rootfs else 0,
        "nesting": features.get("nesting") in ("1", "on", "true", "yes"),
        "unprivileged": str(config.get("unprivileged", "0")) in ("1", "True", "true"),
        "template": described.group("template") if described else None,
    }


def reconcile(node: str, vmid: int, config: Mapping[str, Any], args: CtCreateArgs) -> list[Any]:
    """The requests that bring an adopted container to `args` in place, by `RULES`:
    cores, memory, swap, nesting and DNS set (only what differs), then the root file system
    grown. Pure; empty when it matches. (What would need a replacement is `replaces`.)"""
    live = live_fields(config)
    changes: dict[str, Any] = {}
    for field in ("cores", "memory", "swap"):
        if live[field] != getattr(args, field):
            changes[field] = getattr(args, field)
    if live["nesting"] != args.nesting:
        changes["features"] = property_string(f"nesting={int(args.nesting)}")
    deletes = []
    for field in DNS:
        wanted = getattr(args, field) or None
        if wanted is not None and config.get(field) != wanted:
            changes[field] = wanted
        elif wanted is None and field in config:
            deletes.append(field)
    if deletes:
        changes["delete"] = ",".join(deletes)
    out: list[Any] = []
    if changes:
        out.append(requests.set_ct_config(node, vmid, changes))
    if live["disk"] != args.disk and change_of(CtCreateArgs, "disk", live["disk"], args.disk) == (
        "in_place"
    ):
        out.append(requests.resize_ct(node, vmid, ROOTFS, f"{args.disk}G"))
    return out


def replaces(config: Mapping[str, Any], args: CtCreateArgs) -> list[str]:
    """The fields whose difference only a new container can carry out (`RULES`)."""
    live = live_fields(config)
    found = args.reconcile({f: live[f] for f in ("template", "unprivileged")})
    return sorted(field for field, change in found.items() if change == "replace")


@register
class CtCreate(StepKind):
    name = "pve.ct.create"
    tier = "long"
    resource = True
    resource_args = GuestDestroyArgs

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        pve = await ctx.pve()
        args = ctx.args_as(CtCreateArgs)
        found = await find_ct(pve, args.name, args.vmid)
        if found is not None:
            vmid = int(found["vmid"])
            if MANAGED_TAG not in _tags(found):
                raise StepFailed(
                    f"container {vmid} ({args.name}) on {pve.node} exists but was not made by "
                    "pveplan (no 'pveplan' tag): refusing to adopt it"
                )
            config = await pve.ct_config(vmid)
            replaced = replaces(config, args)
            if not replaced:
                return await self._adopt(ctx, pve, vmid, config, args)
            ctx.log(f"container {vmid} differs in {', '.join(replaced)}: replacing it")
            await destroy_ct(ctx, pve, vmid, args.name)
        return await self._create(ctx, pve, args, refs)

    async def _adopt(
        self,
        ctx: StepContext,
        pve: PveDriver,
        vmid: int,
        config: Mapping[str, Any],
        args: CtCreateArgs,
    ) -> Outputs:
        ctx.log(f"container {vmid} ({args.name}) exists: adopting it")
        changes = reconcile(pve.node, vmid, config, args)
        lost = [tag for tag in args.tags if tag not in _tags(config)]
        if lost:
            changes.append(
                requests.set_ct_config(pve.node, vmid, {"tags": tags([*_tags(config), *lost])})
            )
        for request in changes:
            ctx.log(f"updating {', '.join(sorted(request.params))} in place")
            await pve.run(request)
        return {"vm_id": vmid, "name": args.name, "node": pve.node}

    async def _create(
        self, ctx: StepContext, pve: PveDriver, args: CtCreateArgs, refs: Mapping[str, Any]
    ) -> Outputs:
        credentials = set(AUTH_SECRETS.values())
        keys = [ctx.services.reveal(s.name) for s in ctx.step.secrets if s.name not in credentials]
        keys.extend(k for k in ctx.services.trusted_keys if k not in keys)
        params = ct_params(args, refs["volume"], keys)
        for _ in range(1 if args.vmid else ID_ATTEMPTS):
            vmid = args.vmid or await pve.claim_id()
            ctx.log(f"creating container {vmid} ({args.name}) from {refs['volume']}")
            try:
                await pve.create_ct(vmid, params)
                break
            except PveError as exc:
                taken = "already exists" in str(exc)
                if args.vmid or not taken:
                    partial: Outputs = {"name": args.name, "node": pve.node}
                    if not taken:
                        partial["vm_id"] = vmid
                    raise StepFailed(
                        f"creating container {vmid} ({args.name}) on {pve.node}: {exc}", partial
                    ) from None
        else:
            raise StepFailed(
                f"creating container {args.name} on {pve.node}: {ID_ATTEMPTS} free vmids in a "
                "row were taken by other creates; pin a vmid in the manifest, or apply again"
            )
        return {"vm_id": vmid, "name": args.name, "node": pve.node}

    async def destroy(self, ctx: StepContext, step: Any, outputs: Mapping[str, Any]) -> None:
        args = ctx.args_as(CtCreateArgs | GuestDestroyArgs)
        await destroy_ct_node(ctx, args.name, outputs.get("vm_id") or args.vmid, step.address)

    async def probe(
        self, ctx: StepContext, step: Any, refs: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> str | None:
        pve = await ctx.pve()
        args = ctx.args_as(CtCreateArgs)
        found = await find_ct(pve, args.name, outputs.get("vm_id"))
        if found is None:
            return f"container {outputs.get('vm_id')} ({args.name}) no longer exists"
        config = await pve.ct_config(int(found["vmid"]))
        if replaces(config, args) or reconcile(pve.node, int(found["vmid"]), config, args):
            return f"container {found['vmid']} ({args.name}) differs from its args"
        return None


async def destroy_ct(ctx: StepContext, pve: PveDriver, vmid: int, name: str) -> None:
    """Stop (if running) and destroy container `vmid` with its volumes; absent is fine."""
    try:
        status = await pve.ct_status(vmid)
    except PveError as exc:
        if "does not exist" in str(exc):
            return
        raise
    if status.get("status") == "running":
        await pve.ct_power(vmid, "stop")
    ctx.log(f"destroying container {vmid} ({name})")
    try:
        await pve.destroy_ct(vmid)
    except PveError as exc:
        if "does not exist" not in str(exc):
            raise


async def destroy_ct_node(ctx: StepContext, name: str, vmid: int | None, create: str) -> None:
    """Destroy the container made by step `create` (found by vmid or name; absent is
    fine) and forget the secrets kept for its node."""
    pve = await ctx.pve()
    found = await find_ct(pve, name, vmid)
    if found is not None:
        await destroy_ct(ctx, pve, int(found["vmid"]), name)
    else:
        ctx.log(f"container {name} is already gone")
    node = create.rsplit(".", 1)[0]
    for purpose, step in NODE_SECRETS:
        ctx.services.store.delete_secret(ctx.secret_name(purpose, f"{node}.{step}"))


@register
class CtStart(StepKind):
    name = "pve.ct.start"
    tier = "medium"

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        pve = await ctx.pve()
        status = await pve.ct_status(refs["vmid"])
        if status.get("status") != "running":
            await pve.ct_power(refs["vmid"], "start")
        return {}

    async def probe(
        self, ctx: StepContext, step: Any, refs: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> str | None:
        pve = await ctx.pve()
        try:
            status = await pve.ct_status(refs["vmid"])
        except PveError as exc:
            return str(exc)
        if status.get("status") != "running":
            return f"container {refs['vmid']} is {status.get('status')}"
        return None


async def read_host_key(pve: PveDriver, vmid: int) -> str:
    """The container's SSH host key, read through its host (`pct exec`): see the module."""
    argv = ["pct", "exec", str(vmid), "--", "cat", HOST_KEY_PATH]
    result = await pve.channel.run(argv, timeout=30)
    line = (result.stdout or b"").decode(errors="replace").strip()
    if result.exit_status != 0 or not line.startswith("ssh-ed25519 "):
        raise StepFailed(
            f"container {vmid} on {pve.node}: reading its host key ({HOST_KEY_PATH}) through "
            f"the host failed (exit {result.exit_status}): is openssh-server in its template?"
        )
    return " ".join(line.split()[:2])


@register
class CtWaitIp(StepKind):
    """The container's address (PVE 9 reads it from the host: `/lxc/{vmid}/interfaces`)
    and its SSH host key."""

    name = "pve.ct.wait_ip"
    tier = "medium"

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        pve = await ctx.pve()
        vmid = refs["vmid"]
        delay = POLL_FIRST
        while True:  # bounded by the step's timeout
            ip = first_ipv4(await pve.ct_interfaces(vmid))
            if ip:
                return {"ip": ip, "host_key": await read_host_key(pve, vmid)}
            await trio.sleep(delay)
            delay = min(delay * 2, POLL_MAX)

    async def probe(
        self, ctx: StepContext, step: Any, refs: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> str | None:
        pve = await ctx.pve()
        try:
            ip = first_ipv4(await pve.ct_interfaces(refs["vmid"]))
        except PveError as exc:
            return str(exc)
        if ip != outputs.get("ip"):
            return f"container {refs['vmid']} now has address {ip}, not {outputs.get('ip')}"
        return None


@register
class CtDestroy(StepKind):
    """The step of a destroy plan: remove the container and forget the resource."""

    name = "pve.ct.destroy"
    tier = "long"
    cacheable = False

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        create = step.address.rsplit(".", 1)[0] + ".create"
        ctx.services.store.remove_resource(ctx.workspace, create)
        args = ctx.args_as(GuestDestroyArgs)
        await destroy_ct_node(ctx, args.name, args.vmid, create)
        return {}
