"""The site-config files as frozen, strict Structs: what each YAML file may say.

Presets, postures and specs follow homestak's JSON schemas (`defs/posture.schema.json`,
`defs/spec.schema.json`); `site.yaml`, `nodes/*.yaml` and `hosts/*.yaml` model the keys
homestak's own files and iac-driver use. Unknown keys are errors (with "did you mean"),
because a misspelt key silently ignored is a setting silently lost. The one exception is
a spec's `config`, which the schema leaves open: its other keys are kept, as written, in
`SpecConfig.extra`.

These are the files as written, before anything is merged or resolved; `_resolve`
turns them into what a node gets. Secrets never appear here: a file only ever names a
secret (an id in `ssh_keys`, a token name), never holds one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta


class Frozen(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """Base for every site-config struct: immutable, strict, with stable encodings."""


Cores = Annotated[int, Meta(ge=1, le=1024, description="CPU cores")]
MemoryMb = Annotated[int, Meta(ge=16, le=16_777_216, description="Memory in MB")]
DiskGb = Annotated[int, Meta(ge=1, le=1_000_000, description="Disk size in GB")]
Port = Annotated[int, Meta(ge=1, le=65_535)]
Names = tuple[str, ...]
ImageFormat = Literal["qcow2", "raw", "img", "vztmpl"]
"""`vztmpl`: an LXC container template (a root file system archive), which a `ct` node
names as its `template`; the others are disk images for `vm` and `pve` nodes."""


# ---- presets/*.yaml -------------------------------------------------------------------


class Preset(Frozen):
    """A VM size (presets/{name}.yaml); a manifest's cores/memory/disk override it."""

    cores: Cores
    memory: MemoryMb
    disk: DiskGb


# ---- postures/*.yaml ------------------------------------------------------------------


class PostureAuth(Frozen):
    method: Literal["network", "site_token", "node_token"] = "network"


class PostureSsh(Frozen):
    port: Port = 22
    permit_root_login: Literal["yes", "no", "prohibit-password"] | None = None
    password_authentication: Literal["yes", "no"] | None = None


class PostureSudo(Frozen):
    nopasswd: bool = False


class PostureFail2ban(Frozen):
    enabled: bool = False


class Posture(Frozen):
    """A security posture (postures/{name}.yaml), named by a spec's `access.posture`."""

    auth: PostureAuth = PostureAuth()
    ssh: PostureSsh = PostureSsh()
    sudo: PostureSudo = PostureSudo()
    fail2ban: PostureFail2ban = PostureFail2ban()
    packages: Names = ()


# ---- specs/*.yaml ---------------------------------------------------------------------

DEFAULT_POSTURE = "dev"  # spec.schema.json: access.posture "defaults to 'dev'"


class SpecIdentity(Frozen):
    hostname: str | None = None
    domain: str | None = None


class SpecNetwork(Frozen):
    ip: str
    gateway: str
    dns: Names = ()


class SpecUser(Frozen):
    """A user to create; `ssh_keys` omitted (None) means every key in secrets.ssh_keys."""

    name: str
    sudo: bool = False
    ssh_keys: Names | None = None


class SpecAccess(Frozen):
    posture: str = DEFAULT_POSTURE
    users: tuple[SpecUser, ...] = ()


class SpecServices(Frozen):
    enable: Names = ()
    disable: Names = ()


class SpecPlatform(Frozen):
    packages: Names = ()
    services: SpecServices = SpecServices()


class SpecPveConfig(Frozen):
    remove_subscription_nag: bool | None = None


class SpecConfig(Frozen):
    """`config`: the schema's known keys, plus `extra` for the others it allows.

    `extra` is filled by the loader (a key literally named `extra` in a file lands in
    it too, never here as a field). Treat it as read-only: frozen is shallow.
    """

    timezone: str | None = None
    pve: SpecPveConfig | None = None
    extra: dict[str, Any] = msgspec.field(default_factory=dict)


class SpecRun(Frozen):
    trigger: Literal["schedule", "webhook", "git", "manual"] = "manual"
    interval: str | None = None
    port: Port | None = None
    path: str | None = None
    repo: str | None = None
    branch: str | None = None
    poll_interval: str | None = None


class Spec(Frozen):
    """What a node should become (specs/{name}.yaml, schema v1)."""

    schema_version: Literal[1]
    identity: SpecIdentity | None = None
    network: SpecNetwork | None = None
    access: SpecAccess = SpecAccess()
    platform: SpecPlatform = SpecPlatform()
    config: SpecConfig = SpecConfig()
    run: SpecRun | None = None


SPEC_CONFIG_KEYS = frozenset(f for f in SpecConfig.__struct_fields__ if f != "extra")


# ---- site.yaml ------------------------------------------------------------------------


class SiteDefaults(Frozen):
    """`defaults:` in site.yaml; empty strings mean "not set", as in homestak's file."""

    gateway: str = ""
    dns_servers: Names = ()
    domain: str = ""
    timezone: str | None = None
    host_user: str | None = None
    vm_user: str = "homestak"
    packages: Names = ()
    server_url: str = ""
    bridge: str = "vmbr0"
    image_release: str = "latest"


class SiteImage(Frozen):
    """An entry of site.yaml's `images:` (pveplan extension); checked further in `_images`."""

    url: str | None = None
    sha256: str | None = None
    format: ImageFormat | None = None


Seconds = Annotated[float, Meta(gt=0, le=86_400, description="Seconds")]
Connections = Annotated[int, Meta(ge=1, le=65_536)]


class SiteSpecServer(Frozen):
    """`spec_server:` in site.yaml (pveplan extension): the spec server's limits, for
    `pveplan serve` and the server an apply starts. Unset means the server's default
    (docs/pull.md, "Limits"); the planner never reads these."""

    handshake_timeout: Seconds | None = None
    header_timeout: Seconds | None = None
    body_timeout: Seconds | None = None
    idle_timeout: Seconds | None = None
    send_timeout: Seconds | None = None
    max_connections: Connections | None = None
    max_connections_per_address: Connections | None = None
    max_body: Annotated[int, Meta(ge=1024, le=1 << 30, description="Bytes")] | None = None


class SiteStorage(Frozen):
    """`storage:` in site.yaml (pveplan extension): what the plan may do to a host's
    storages. `enable_content` (default true): a `pve.storage.content` step enables a
    content type the plan needs and the storage lacks (`pvesm set --content`); false:
    it refuses, naming the command to run (docs/site-config.md, "Storage")."""

    enable_content: bool = True


class SiteStore(Frozen):
    """`store:` in site.yaml (pveplan extension): the store a team shares, set once for
    everyone who uses this site config. `url` is a `postgresql://USER@HOST[:PORT]/DB`
    URL without a password (secrets.yaml's `store.password`, or $PVEPLAN_STORE_PASSWORD,
    gives it); `lock_timeout` is how long an apply waits for another one's workspace
    lock before refusing (`--lock-timeout` wins). $PVEPLAN_STORE wins over both."""

    url: str | None = None
    lock_timeout: Annotated[float, Meta(ge=0, le=86400)] = 0.0


class SiteFile(Frozen):
    """site.yaml: homestak's `defaults`, plus pveplan's `images`, `trusted_plan_keys`,
    `spec_server`, `storage` and `store`."""

    defaults: SiteDefaults = SiteDefaults()
    images: dict[str, SiteImage] = msgspec.field(default_factory=dict)
    trusted_plan_keys: Names = ()
    spec_server: SiteSpecServer = SiteSpecServer()
    storage: SiteStorage = SiteStorage()
    store: SiteStore = SiteStore()


# ---- nodes/*.yaml and hosts/*.yaml ----------------------------------------------------


class NodeFile(Frozen):
    """nodes/{host}.yaml: a PVE instance reachable through its API (PVE installed)."""

    node: str | None = None
    host: str | None = None
    parent_node: str | None = None
    api_endpoint: str | None = None
    api_token: str | None = None  # FK -> secrets.api_tokens (default: the host name)
    datastore: str | None = None
    ip: str | None = None
    ssh_user: str | None = None
    # pveplan extensions: a host served by `pveplan sim`, and a pinned SSH host key
    # (an OpenSSH public key line) for a real host.
    sim: bool = False
    ssh_port: int = 22
    ssh_host_key: str | None = None
    vm_ssh_port: int = 22  # the port this host's VMs answer SSH on (nested hosts' node files)
    # How PVE's operations reach the host: its HTTPS API with the token, or pvesh over SSH
    # (null: the API when api_endpoint and the token's secret are both given).
    transport: Literal["api", "ssh"] | None = None
    # The API certificate's SHA-256 fingerprint ("AB:CD:...", as `pvenode cert info`
    # prints it): pinned instead of trusting the system's CAs.
    api_fingerprint: str | None = None


class HostInterface(Frozen):
    type: str | None = None
    ports: Names = ()
    address: str | None = None
    gateway: str | None = None


class HostNetwork(Frozen):
    interfaces: dict[str, HostInterface] = msgspec.field(default_factory=dict)


class ZfsPool(Frozen):
    name: str
    devices: Names = ()


class HostStorage(Frozen):
    zfs_pools: tuple[ZfsPool, ...] = ()


class HostAccess(Frozen):
    ssh_user: str | None = None
    authorized_keys: Names = ()  # FKs -> secrets.ssh_keys


class HostFile(Frozen):
    """hosts/{host}.yaml: a machine reachable over SSH only (before PVE is installed)."""

    host: str | None = None
    ip: str | None = None
    network: HostNetwork | None = None
    storage: HostStorage | None = None
    access: HostAccess | None = None
    timezone: str | None = None
