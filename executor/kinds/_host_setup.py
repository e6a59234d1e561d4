"""The steps of homestak's host scenarios (`pve-setup`, `user-setup`), against the host itself.

Unlike a nested host's lifecycle (`_pve_host`, reached through the VM it runs in), these
act on the run's own host (`ctx.host`, as the CLI described it: `--remote ADDR` with its
pinned host key), logged in as root. Each reads what is there first and changes only what
differs (`ensure_*`), so a run after a lost store adopts a host already set up; the store
makes the second run with nothing changed run nothing at all.

What they leave in the local site config (the host's node file, its API token in
secrets.yaml) is written by `_host_files`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pveplan.planner import (
    ApiTokenArgs,
    BridgeArgs,
    HostDownloadArgs,
    HostFileArgs,
    HostKeysArgs,
    HostNodeFileArgs,
    PackagesArgs,
    UserArgs,
)

from .._context import StepContext
from .._kinds import StepKind, register
from .._model import Outputs, StepFailed
from ..channels import Channel, ChannelError
from ..pve import PveDriver, PveError
from ._config import Guest, ensure_user
from ._host_files import set_api_token, site_api_token, write_node_file
from ._pve_host import (
    API_PORT,
    INSTALL_TIMEOUT,
    _ready_local_storage,
    _same,
    certificate_pin,
    ensure_token,
    run,
)

LOCALHOST = "localhost"
"""What pvesh accepts as `{node}` before the node's name is known."""


async def host_channel(ctx: StepContext) -> Channel:
    try:
        return await ctx.services.hosts.channel(ctx.host)
    except ChannelError as exc:
        raise StepFailed(str(exc)) from None


async def converge_path(channel: Channel, path: str, data: bytes, mode: int) -> bool:
    """Absolute `path` on the host holds exactly `data` (mode `mode`); changed?"""
    try:
        if await channel.get_file(path) == data:
            return False
        await channel.put_file(path, data, mode)
    except ChannelError as exc:
        raise StepFailed(str(exc)) from None
    return True


PART = "pveplan-download.part"
"""Where a download lands first, in root's home (relative: the same place on a real host
and in a simulated machine), before its checksum lets it into place."""


@register
class Download(StepKind):
    """A file fetched by the host itself (`wget`, as PVE's guide does), put in place only
    once its sha256 is the planned one; a file already there with that sum is adopted."""

    name = "host.download"
    tier = "medium"

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        args = ctx.args_as(HostDownloadArgs)
        channel = await host_channel(ctx)
        try:
            if _sha256(await channel.get_file(args.path)) == args.sha256:
                return {"path": args.path, "sha256": args.sha256}
            ctx.log(f"fetching {args.url}")
            await run(channel, "wget", "-q", "-O", PART, args.url, timeout=INSTALL_TIMEOUT)
            data = await channel.get_file(f"/root/{PART}")
            got = _sha256(data)
            if data is None or got != args.sha256:
                raise StepFailed(
                    f"{args.url} has sha256 {got}, not the pinned {args.sha256}: not installed "
                    "(check the sum PVE's guide gives, and pass that one)"
                )
            await channel.put_file(args.path, data, args.mode)
        except ChannelError as exc:
            raise StepFailed(str(exc)) from None
        return {"path": args.path, "sha256": args.sha256}


def _sha256(data: bytes | None) -> str | None:
    import hashlib

    return hashlib.sha256(data).hexdigest() if data is not None else None


class _PlannedFile(StepKind):
    """A file with exactly the planned text and mode; `written` runs after a change."""

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        args = ctx.args_as(HostFileArgs)
        channel = await host_channel(ctx)
        if await converge_path(channel, args.path, args.text.encode(), args.mode):
            ctx.log(f"wrote {args.path}")
            await self.written(channel)
        return {"path": args.path}

    async def written(self, channel: Channel) -> None:
        """What a change of the file calls for (nothing, by default)."""


@register
class AptSource(_PlannedFile):
    """An apt source: written with the planned text, then `apt-get update` reads it."""

    name = "host.apt_source"
    tier = "medium"

    async def written(self, channel: Channel) -> None:
        await run(channel, "apt-get", "update", timeout=INSTALL_TIMEOUT)


@register
class Sudoers(_PlannedFile):
    """A sudoers rule file (0440), the fixed text the plan carries."""

    name = "host.sudoers"
    tier = "short"


async def is_installed(channel: Channel, package: str) -> bool:
    result = await channel.run(["dpkg-query", "-W", "-f=${Status}", package], timeout=60.0)
    return "install ok installed" in result.stdout.decode(errors="replace")


@register
class PveInstallHere(StepKind):
    """PVE on the host: installed already (adopted), else from the repository the apt
    source step added, as PVE's guide for Debian does. Outputs the PVE node's name."""

    name = "host.pve_install"
    tier = "extended"

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        args = ctx.args_as(PackagesArgs)
        channel = await host_channel(ctx)
        try:
            present = await is_installed(channel, args.packages[0])
        except ChannelError as exc:
            raise StepFailed(str(exc)) from None
        if not present:
            ctx.log(f"installing {', '.join(args.packages)}")
            await run(channel, "apt-get", "update", timeout=INSTALL_TIMEOUT)
            await run(
                channel,
                "env",
                "DEBIAN_FRONTEND=noninteractive",
                "apt-get",
                "install",
                "-y",
                *args.packages,
                timeout=INSTALL_TIMEOUT,
            )
        try:
            nodes = await PveDriver(channel, LOCALHOST).nodes()
            names = [n.get("node") for n in nodes if n.get("node")]
            if not names:
                raise StepFailed(f"PVE on {ctx.host} lists no node")
            pve = PveDriver(channel, str(names[0]))
            version = await pve.version()
        except PveError as exc:
            raise StepFailed(f"PVE does not answer on {ctx.host}: {exc}") from None
        await _ready_local_storage(ctx, pve)
        return {"pve_node": pve.node, "pve_version": str(version.get("version", ""))}


@register
class HostBridge(StepKind):
    """The bridge guests plug into (vmbr0 over eth0), applied."""

    name = "host.bridge"
    tier = "short"

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        args = ctx.args_as(BridgeArgs)
        pve = PveDriver(await host_channel(ctx), refs["pve_node"])
        try:
            found = {n.get("iface"): n for n in await pve.networks("bridge")}
            current = found.get(args.bridge)
            if current is None:
                ctx.log(f"creating bridge {args.bridge} over {args.interface}")
                await pve.create_bridge(args.bridge, args.interface)
            if current is None or not current.get("active"):
                await pve.apply_network()
        except PveError as exc:
            raise StepFailed(f"bridge {args.bridge} on {pve.node}: {exc}") from None
        return {"bridge": args.bridge}


async def home_of(channel: Channel, user: str) -> str:
    """`user`'s home directory, from the passwd database."""
    if user == "root":
        return "/root"
    result = await channel.run(["getent", "passwd", user], timeout=60.0)
    fields = result.stdout.decode(errors="replace").strip().split(":")
    if result.exit_status != 0 or len(fields) < 6 or not fields[5].startswith("/"):
        raise StepFailed(f"{channel.name}: user {user} does not exist")
    return fields[5]


@register
class AuthorizedKeys(StepKind):
    """`user`'s authorized_keys hold the planned keys (others already there stay); for a
    user other than root, its ~/.ssh is its own (0700) as sshd requires."""

    name = "host.authorized_keys"
    tier = "short"

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        args = ctx.args_as(HostKeysArgs)
        keys = [*args.keys, *(ctx.services.reveal(name).strip() for name in args.secret_keys)]
        channel = await host_channel(ctx)
        try:
            home = await home_of(channel, args.user)
            path = f"{home}/.ssh/authorized_keys"
            current = (await channel.get_file(path) or b"").decode()
            present = [line for line in current.splitlines() if line.strip()]
            added = [k for k in dict.fromkeys(keys) if not any(_same(k, p) for p in present)]
            if added:
                if not current:
                    # cwd is root's home: a relative path names the same place on a real
                    # host and inside a simulated machine's tree.
                    await run(channel, "mkdir", "-p", "-m", "700", ".." + home + "/.ssh")
                text = "\n".join([*present, *added, ""]).encode()
                await channel.put_file(path, text, 0o600)
                if args.user != "root":
                    await run(channel, "chown", "-R", f"{args.user}:", f"{home}/.ssh")
                ctx.log(f"authorised {len(added)} key(s) for {args.user}")
        except ChannelError as exc:
            raise StepFailed(str(exc)) from None
        return {"user": args.user, "keys": len(keys)}


@register
class HostUser(StepKind):
    """The user exists, with a home, bash and (`sudo`) the sudo group."""

    name = "host.user"
    tier = "short"

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        args = ctx.args_as(UserArgs)
        guest = Guest(await host_channel(ctx), ctx.host, sudo=False)
        try:
            made = await ensure_user(guest, args.name, args.sudo, repair=True)
        except ChannelError as exc:
            raise StepFailed(str(exc)) from None
        if made:
            ctx.log(f"created user {args.name}")
        return {"user": args.name}


@register
class HostApiToken(StepKind):
    """pveplan's least-privilege API token on the host, kept as a secret in the store and
    written into the local site config's secrets.yaml as api_tokens.NODE."""

    name = "host.api_token"
    tier = "short"

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        args = ctx.args_as(ApiTokenArgs)
        token_id = f"{args.user}!{args.token}"
        node = str(refs["pve_node"])
        store = ctx.services.store
        secret = ctx.secret_name("apitoken")
        stored = store.get_secret(secret)
        known = stored.decode() if stored is not None else None
        if known is None and ctx.services.site_root is not None:
            known = site_api_token(ctx.services.site_root, node)  # a lost store: adopt it
        if known is not None and not known.startswith(f"{token_id}="):
            known = None
        pve = PveDriver(await host_channel(ctx), node)
        token = await ensure_token(pve, args, known)
        if token != known:
            store.put_secret(secret, token.encode())  # before anything else can fail
        site_root = ctx.services.site_root
        if site_root is None:
            raise StepFailed("this run has no site config to keep the API token in")
        if set_api_token(site_root, node, token):
            ctx.log(f"api_tokens.{node} ({token_id}) written to {site_root}/secrets.yaml")
        return {"token_id": token_id}


@register
class HostNodeFile(StepKind):
    """nodes/NODE.yaml in the local site config: the new PVE host, reachable with its API
    token over HTTPS (its certificate pinned, read over the pinned SSH channel) and over SSH
    with its pinned host key: `create -H NODE` works from here on."""

    name = "host.node_file"
    tier = "quick"

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        args = ctx.args_as(HostNodeFileArgs)
        node = str(refs["pve_node"])
        channel = await host_channel(ctx)
        pin = await certificate_pin(channel, node)
        document = {
            "node": node,
            "host": node,
            "api_endpoint": f"https://{args.address}:{API_PORT}",
            "api_fingerprint": pin,
            "api_token": node,
            "datastore": args.datastore,
            "ip": args.address,
            "ssh_user": args.ssh_user,
            "ssh_port": args.ssh_port,
            "ssh_host_key": args.ssh_host_key,
            "vm_ssh_port": args.ssh_port,
        }
        site_root = ctx.services.site_root
        if site_root is None:
            raise StepFailed("this run has no site config to write the node file into")
        path = write_node_file(site_root, node, document)
        if path is not None:
            ctx.log(f"wrote {path}")
        return {"node_file": f"nodes/{node}.yaml", "api_fingerprint": pin}
