"""The PVE lifecycle of a nested host (a `pve` node with children), one idempotent step each.

homestak's order (homestak.md): bootstrap pveplan, copy the scoped secrets and site.yaml,
authorise the driver's key, give the host its key for the next hop, install PVE, bridge
vmbr0, write its node file, create its API token, authorise its own key. Then
`subplan.delegate` runs the children there.

All of it happens as root over SSH (cloud-init gives a `pve` node's root the driver's
keys). Files travel over SFTP with mode 0600, never through a command line; each step
reads what is there first and changes only what differs, so a re-run after a lost store
adopts what exists. The layout on the host is `remote._layout`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from pveplan.planner import ApiTokenArgs, BridgeArgs, SiteConfigArgs

from .._context import StepContext
from .._keys import generate_ed25519, public_line, same_key
from .._kinds import StepKind, register
from .._model import Outputs, StepFailed
from ..channels import Channel, ChannelError, CommandResult, SshChannel
from ..pve import PveDriver, PveError
from ..remote._layout import (
    AUTHORIZED_KEYS,
    NEXT_HOP_KEY,
    REMOTE_USER,
    SITE_CONFIG,
    sftp_path,
)

INSTALL_TIMEOUT = 1200.0
COMMAND_TIMEOUT = 120.0
PVE_PACKAGES = ("proxmox-ve",)
DEFAULT_NESTED_STORAGE = "local"  # planner._compile.NESTED_STORAGE


def node_name(ctx: StepContext) -> str:
    return ctx.address.split(".")[1]


async def root_channel(ctx: StepContext, refs: Mapping[str, Any]) -> SshChannel:
    """root on the nested host, with the host key pinned at its creation."""
    target = ctx.services.hosts.vm_target(
        ctx.host, refs["ip"], REMOTE_USER, refs["host_key"], node_name(ctx)
    )
    try:
        return await ctx.services.pool.channel(target)
    except ChannelError as exc:
        raise StepFailed(str(exc)) from None


async def run(channel: Channel, *argv: str, timeout: float = COMMAND_TIMEOUT) -> str:
    """Run argv; its stdout, or StepFailed naming the command and its last error line."""
    try:
        result = await channel.run(argv, timeout=timeout)
    except ChannelError as exc:
        raise StepFailed(str(exc)) from None
    if result.exit_status != 0:
        raise command_failed(channel, result)
    return result.stdout.decode(errors="replace")


def command_failed(channel: Channel, result: CommandResult) -> StepFailed:
    """The error for a command that ran and failed: which, its status, its last line."""
    lines = result.stderr.decode(errors="replace").strip().splitlines()
    return StepFailed(
        f"{channel.name}: `{' '.join(result.argv[:3])}` failed (exit {result.exit_status}): "
        f"{lines[-1] if lines else 'no message'}"
    )


async def converge_file(channel: Channel, relative: str, data: bytes, mode: int = 0o600) -> bool:
    """Write `data` to ~root/`relative` unless it already holds exactly that; changed?"""
    path = sftp_path(relative)
    try:
        if await channel.get_file(path) == data:
            return False
        try:
            await channel.put_file(path, data, mode)
        except ChannelError as exc:
            if exc.kind != "file":
                raise
            # First write into a directory of our layout: make it (private), then retry.
            await run(channel, "mkdir", "-p", "-m", "700", relative.rsplit("/", 1)[0])
            await channel.put_file(path, data, mode)
    except ChannelError as exc:
        raise StepFailed(str(exc)) from None
    return True


async def authorize(channel: Channel, keys: Iterable[str]) -> list[str]:
    """Make root's authorized_keys hold every key in `keys`; the ones it added."""
    path = sftp_path(AUTHORIZED_KEYS)
    try:
        current = (await channel.get_file(path) or b"").decode()
    except ChannelError as exc:
        raise StepFailed(str(exc)) from None
    present = [line for line in current.splitlines() if line.strip()]
    added = [k for k in dict.fromkeys(keys) if not any(_same(k, line) for line in present)]
    if added:
        await converge_file(channel, AUTHORIZED_KEYS, "\n".join([*present, *added, ""]).encode())
    return added


def _same(key: str, line: str) -> bool:
    try:
        return same_key(key, line)
    except ValueError:
        return False  # an options-prefixed or foreign line: not ours to judge


@register
class Bootstrap(StepKind):
    """pveplan itself on the host: the driver's bundle, shipped once per version."""

    name = "pveplan.bootstrap"
    tier = "long"

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        from ..remote import BundleError, ensure_bundle

        channel = await root_channel(ctx, refs)
        bundle = ctx.services.bundle()
        try:
            launcher = await ensure_bundle(channel, bundle)
        except (BundleError, ChannelError) as exc:
            raise StepFailed(str(exc)) from None
        return {"bundle": bundle.hash, "launcher": launcher}


@register
class SiteConfigCopy(StepKind):
    """site.yaml and the secrets the subtree needs (never api_tokens), mode 0600."""

    name = "pveplan.site_config"
    tier = "short"

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        channel = await root_channel(ctx, refs)
        excluded = tuple(f"{prefix}." for prefix in ctx.args_as(SiteConfigArgs).exclude)
        secrets: dict[str, Any] = {}
        for use in step.secrets:
            if use.name.startswith(excluded):
                continue
            _put_dotted(secrets, use.name, ctx.services.reveal(use.name))
        site_root = ctx.services.site_root
        site_file = site_root / "site.yaml" if site_root is not None else None
        site = site_file.read_bytes() if site_file is not None and site_file.is_file() else b""
        changed = [
            name
            for name, data in (
                ("site.yaml", site),
                ("secrets.yaml", yaml.safe_dump(secrets, sort_keys=True).encode()),
            )
            if await converge_file(channel, f"{SITE_CONFIG}/{name}", data)
        ]
        if changed:
            ctx.log(f"wrote {', '.join(changed)} (mode 0600)")
        return {"secrets": len(step.secrets)}


def _put_dotted(tree: dict[str, Any], name: str, value: str) -> None:
    *parents, leaf = name.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


@register
class AuthorizeDriverKey(StepKind):
    """root trusts the driver (and the levels above it): the executor logs in as root."""

    name = "ssh.authorize_driver_key"
    tier = "quick"

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        channel = await root_channel(ctx, refs)
        added = await authorize(channel, ctx.services.trusted_keys)
        if added:
            ctx.log(f"authorised {len(added)} key(s) for root")
        return {"keys": len(ctx.services.trusted_keys)}


@register
class InstallNextHopKey(StepKind):
    """The host's own key pair, with which its executor reaches itself and its children.

    Generated by the driver and kept in its store (a secret), so a re-run installs the
    same key; after a lost store the key already on the host is adopted.
    """

    name = "ssh.install_next_hop_key"
    tier = "quick"

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        channel = await root_channel(ctx, refs)
        store = ctx.services.store
        secret = ctx.secret_name("nexthop")
        private = store.get_secret(secret)
        if private is None:
            try:
                private = await channel.get_file(sftp_path(NEXT_HOP_KEY))
                if private is not None:
                    public_line(private)  # adopt only a usable ed25519 key
            except (ChannelError, ValueError):
                private = None
            if private is None:
                private, _ = generate_ed25519(f"pveplan@{node_name(ctx)}")
            store.put_secret(secret, private)
        public = public_line(private, f"pveplan@{node_name(ctx)}")
        await converge_file(channel, NEXT_HOP_KEY, private, 0o600)
        await converge_file(channel, NEXT_HOP_KEY + ".pub", (public + "\n").encode(), 0o644)
        return {"public_key": public}


@register
class PveInstall(StepKind):
    """PVE on the host: present already (a PVE image) or installed with apt."""

    name = "pve.install"
    tier = "extended"

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        channel = await root_channel(ctx, refs)
        status = await channel.run(
            ["dpkg-query", "-W", "-f=${Status}", *PVE_PACKAGES], timeout=COMMAND_TIMEOUT
        )
        if "install ok installed" not in status.stdout.decode(errors="replace"):
            ctx.log("installing proxmox-ve")
            await run(
                channel,
                "env",
                "DEBIAN_FRONTEND=noninteractive",
                "apt-get",
                "install",
                "-y",
                *PVE_PACKAGES,
                timeout=INSTALL_TIMEOUT,
            )
        pve = PveDriver(channel, node_name(ctx))
        try:
            version = await pve.version()
            nodes = await pve.nodes()
        except PveError as exc:
            raise StepFailed(f"PVE does not answer on {node_name(ctx)}: {exc}") from None
        names = [n.get("node") for n in nodes or [] if n.get("node")]
        if not names:
            raise StepFailed(f"PVE on {node_name(ctx)} lists no node")
        return {"pve_version": str(version.get("version", "")), "pve_node": names[0]}


@register
class PveBridge(StepKind):
    """The bridge the children's NICs plug into (vmbr0 over eth0), applied."""

    name = "pve.bridge"
    tier = "short"

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        channel = await root_channel(ctx, refs)
        pve = PveDriver(channel, refs["pve_node"])
        args = ctx.args_as(BridgeArgs)
        bridge, ports = args.bridge, args.interface
        try:
            found = {n.get("iface"): n for n in await pve.networks("bridge")}
            current = found.get(bridge)
            if current is None:
                ctx.log(f"creating bridge {bridge} over {ports}")
                await pve.create_bridge(bridge, ports)
            if current is None or not current.get("active"):
                await pve.apply_network()
        except PveError as exc:
            raise StepFailed(f"bridge {bridge} on {pve.node}: {exc}") from None
        return {"bridge": bridge}


@register
class NodeFile(StepKind):
    """nodes/NAME.yaml on the host: how its own executor reaches it (itself, over SSH)."""

    name = "pveplan.node_file"
    tier = "quick"

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        channel = await root_channel(ctx, refs)
        name = node_name(ctx)
        port = ctx.services.hosts.vm_target(ctx.host, refs["ip"], REMOTE_USER, "", name).port
        document = {
            "node": refs["pve_node"],
            "host": name,
            "api_endpoint": f"https://{refs['ip']}:8006",
            "api_token": name,
            "datastore": DEFAULT_NESTED_STORAGE,
            "ip": refs["ip"],
            "ssh_user": REMOTE_USER,
            "ssh_port": port,
            "ssh_host_key": refs["host_key"],
            "vm_ssh_port": port,
        }
        text = "# written by pveplan (pveplan.node_file)\n" + yaml.safe_dump(
            document, sort_keys=True
        )
        await converge_file(channel, f"{SITE_CONFIG}/nodes/{name}.yaml", text.encode())
        return {"node_file": f"nodes/{name}.yaml"}


@register
class ApiToken(StepKind):
    """root@pam's API token on the host, its value kept as a secret in the driver's store."""

    name = "pve.api_token"
    tier = "short"

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        args = ctx.args_as(ApiTokenArgs)
        user, token = args.user, args.token
        token_id = f"{user}!{token}"
        secret = ctx.secret_name("apitoken")
        if ctx.services.store.get_secret(secret) is not None:
            return {"token_id": token_id}
        pve = PveDriver(await root_channel(ctx, refs), node_name(ctx))
        try:
            created = await pve.create_token(user, token, privsep=bool(args.privsep))
        except PveError as exc:
            if "already exists" in str(exc):
                raise StepFailed(
                    f"{node_name(ctx)} already has API token {token_id}, but its value is not "
                    f"in this store (a lost store?): remove it on the host (`pveum user token "
                    f"remove {user} {token}`) and apply again"
                ) from None
            raise StepFailed(f"API token {token_id} on {node_name(ctx)}: {exc}") from None
        try:
            value = str(created["value"])
        except (KeyError, TypeError):
            raise StepFailed(f"PVE on {node_name(ctx)} returned no token value") from None
        ctx.services.store.put_secret(secret, value.encode())
        return {"token_id": str(created.get("full-tokenid") or token_id)}


@register
class AuthorizeOwnKey(StepKind):
    """root trusts the host's own key: its executor reaches PVE on itself over SSH."""

    name = "ssh.authorize_own_key"
    tier = "quick"

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        channel = await root_channel(ctx, refs)
        await authorize(channel, [refs["public_key"]])
        return {"public_key": refs["public_key"]}
