"""The PVE lifecycle of a nested host (a `pve` node with children), one idempotent step each.

homestak's order (homestak.md): bootstrap pveplan, copy the scoped secrets and site.yaml,
authorise the driver's key, give the host its key for the next hop, install PVE, bridge
vmbr0, write its node file (its API endpoint, with its certificate pinned), create its
least-privilege API token (and put it in the host's own secrets.yaml), authorise its own
key. Then `subplan.delegate` runs the children there; that executor reaches PVE on its
host with the token over HTTPS, and SSH only for what needs root (snippet files).

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
from ..pve import PveDriver, PveError, PveRequest, cert_fingerprint
from ..pve._privileges import least_privilege_token
from ..pve._requests import create_token
from ..remote._layout import (
    AUTHORIZED_KEYS,
    NEXT_HOP_KEY,
    REMOTE_USER,
    SITE_CONFIG,
    sftp_path,
)
from ._storage import content_of

INSTALL_TIMEOUT = 1200.0
COMMAND_TIMEOUT = 120.0
PVE_PACKAGES = ("proxmox-ve",)
DEFAULT_NESTED_STORAGE = "local"  # planner._compile.NESTED_STORAGE
PVE_CERT = "/etc/pve/local/pve-ssl.pem"
"""The node's certificate, which its API (pveproxy) serves: pinned in its node file."""
PROXY_CERT = "/etc/pve/local/pveproxy-ssl.pem"
"""A certificate uploaded for pveproxy, which it serves instead when present."""
API_PORT = 8006
TOKEN_PATH = "/access/users/{userid}/token/{tokenid}"


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
    """site.yaml and the secrets the subtree needs, mode 0600: of `api_tokens`, only the
    host's own (once its api_token step has made it; that step also adds it itself)."""

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
        own = own_token(ctx)
        if own is not None:  # this host's own token (made by its api_token step), only
            _put_dotted(secrets, f"api_tokens.{node_name(ctx)}", own)
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


def own_token(ctx: StepContext) -> str | None:
    """The host's own API token as secrets.yaml holds one (`USER@REALM!TOKENID=VALUE`),
    from the driver's store, where its api_token step keeps it; None before it ran (or a
    value an older pveplan kept, without its token id: that token is not the one used)."""
    secret = ctx.secret_name("apitoken", f"node.{node_name(ctx)}.api_token")
    stored = ctx.services.store.get_secret(secret)
    text = stored.decode() if stored is not None else ""
    return text if "!" in text.partition("=")[0] and "=" in text else None


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
        await _ready_local_storage(ctx, pve)
        return {"pve_version": str(version.get("version", "")), "pve_node": names[0]}


NESTED_CONTENT = ("images", "import", "snippets")
"""What the levels below need on a nested host's `local`: VM disks, images, cloud-init
snippets. PVE installed on Debian leaves `import` out."""


async def _ready_local_storage(ctx: StepContext, pve: PveDriver) -> None:
    """Enable NESTED_CONTENT on the new host's `local`, here, as root: the host's own
    executor works with pveplan's least-privilege token, whose role may not change a
    storage's configuration (Datastore.Allocate on /storage, docs/transports.md)."""
    try:
        status = await pve.storage_status("local")
        have = content_of(status or {})
        if status is not None and not set(NESTED_CONTENT) <= have:
            ctx.log(f"enabling content {', '.join(NESTED_CONTENT)} on storage local")
            await pve.set_storage_content("local", sorted(have | set(NESTED_CONTENT)))
    except PveError as exc:
        raise StepFailed(f"storage local on {node_name(ctx)}: {exc}") from None


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
    """nodes/NAME.yaml on the host: how its own executor reaches it, itself: PVE's API
    with the host's token (api_tokens.NAME, which the api_token step puts in its
    secrets.yaml), the certificate pinned; SSH, with its own pinned host key, for what
    needs root (snippet files).

    The pin is the SHA-256 of /etc/pve/local/pve-ssl.pem, read over the root SSH channel
    whose host key was pinned when the VM was made: no certificate is trusted on first use.
    """

    name = "pveplan.node_file"
    tier = "quick"

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        channel = await root_channel(ctx, refs)
        name = node_name(ctx)
        port = ctx.services.hosts.vm_target(ctx.host, refs["ip"], REMOTE_USER, "", name).port
        pin = await certificate_pin(channel, name)
        document = {
            "node": refs["pve_node"],
            "host": name,
            "api_endpoint": f"https://{refs['ip']}:{API_PORT}",
            "api_fingerprint": pin,
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
        return {"node_file": f"nodes/{name}.yaml", "api_fingerprint": pin}


async def certificate_pin(channel: Channel, name: str) -> str:
    """The SHA-256 fingerprint (`AB:CD:...`) of the certificate PVE's API on the host
    serves: an uploaded pveproxy-ssl.pem, else the node's own pve-ssl.pem."""
    for path in (PROXY_CERT, PVE_CERT):
        try:
            pem = await channel.get_file(path)
        except ChannelError as exc:
            raise StepFailed(str(exc)) from None
        if pem is None:
            continue
        try:
            return pem_fingerprint(pem)
        except ValueError:
            raise StepFailed(f"{name}: {path} holds no PEM certificate") from None
    raise StepFailed(f"{name} has no {PVE_CERT}: is PVE (pve-cluster) running there?")


def pem_fingerprint(pem: bytes) -> str:
    """The fingerprint of the first certificate of a PEM file (ValueError: none)."""
    import ssl

    text = pem.decode("ascii", errors="replace")
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    start = text.find(begin)
    stop = text.find(end, start)
    if start < 0 or stop < 0:
        raise ValueError("no certificate")
    return cert_fingerprint(ssl.PEM_cert_to_DER_cert(text[start : stop + len(end)]))


def token_requests(args: ApiTokenArgs) -> list[PveRequest]:
    """What the api_token step asks PVE, in order: for a privilege-separated token, the
    least-privilege role, its user, both ACLs and the token (`least_privilege_token`);
    else only the token (it has its user's privileges)."""
    if args.privsep:
        return least_privilege_token(args.user, args.token)
    return [create_token(args.user, args.token, privsep=False)]


async def ensure_token(pve: PveDriver, args: ApiTokenArgs, known: str | None) -> str:
    """Make `args`' token and what it needs on the host, adopting what exists (a re-run,
    or one after a kill): the token as secrets.yaml holds it (`USER@REALM!TOKENID=VALUE`).

    `known` is the value the driver's store has for it. A token that exists without one
    cannot be recovered (PVE shows a value once): StepFailed says how to start over.
    """
    token_id = f"{args.user}!{args.token}"
    made = known
    for request in token_requests(args):
        try:
            answer = await pve.run(request)
        except PveError as exc:
            if "already exists" not in str(exc):
                raise StepFailed(f"API token {token_id} on {pve.node}: {exc}") from None
            if request.path == TOKEN_PATH and made is None:
                raise StepFailed(
                    f"{pve.node} already has API token {token_id}, but its value is not "
                    f"in this store (a lost store?): remove it on the host (`pveum user token "
                    f"remove {args.user} {args.token}`) and apply again"
                ) from None
            continue  # the role, the user or the token is there already: adopted
        if request.path == TOKEN_PATH:
            try:
                made = f"{answer.get('full-tokenid') or token_id}={answer['value']}"
            except (AttributeError, KeyError, TypeError):
                raise StepFailed(f"PVE on {pve.node} returned no token value") from None
    assert made is not None
    return made


@register
class ApiToken(StepKind):
    """The host's API token, with exactly the privileges pveplan needs (`ROLE`), for its
    own executor: the value is kept as a secret in the driver's store and written into the
    host's secrets.yaml as api_tokens.NAME (what its node file names)."""

    name = "pve.api_token"
    tier = "short"

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        args = ctx.args_as(ApiTokenArgs)
        token_id = f"{args.user}!{args.token}"
        name = node_name(ctx)
        store = ctx.services.store
        secret = ctx.secret_name("apitoken")
        stored = own_token(ctx)
        known = stored if stored is not None and stored.startswith(f"{token_id}=") else None
        channel = await root_channel(ctx, refs)
        token = await ensure_token(PveDriver(channel, name), args, known)
        if token != known:
            store.put_secret(secret, token.encode())  # before anything else can fail
        path = f"{SITE_CONFIG}/secrets.yaml"
        try:
            current = yaml.safe_load(await channel.get_file(sftp_path(path)) or b"") or {}
        except ChannelError as exc:
            raise StepFailed(str(exc)) from None
        except yaml.YAMLError:  # its text holds secrets: not quoted
            current = None
        if not isinstance(current, dict):
            raise StepFailed(f"{name}: its {path} is not a YAML mapping")
        _put_dotted(current, f"api_tokens.{name}", token)
        if await converge_file(channel, path, yaml.safe_dump(current, sort_keys=True).encode()):
            ctx.log(f"api_tokens.{name} ({token_id}) written to secrets.yaml (mode 0600)")
        return {"token_id": token.partition("=")[0]}


@register
class AuthorizeOwnKey(StepKind):
    """root trusts the host's own key: its executor reaches itself over SSH (snippet
    files) and the hosts nested in it."""

    name = "ssh.authorize_own_key"
    tier = "quick"

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        channel = await root_channel(ctx, refs)
        await authorize(channel, [refs["public_key"]])
        return {"public_key": refs["public_key"]}
