"""homestak's host scenarios as plans: `pve-setup` and `user-setup` against one host.

iac-driver runs these as phases of ansible playbooks, every time. Here each is a short
plan of idempotent steps against the host (`host.*` kinds, executor/kinds/_host_setup.py),
hashed like any plan's, so the store records them and a second run with nothing changed
runs nothing. The order follows iac-driver's `pve-setup` (ensure PVE, configure it, node
config, API token) and PVE's guide to installing on Debian (repository, `proxmox-ve`).

Pure: the host is described by a `HostTarget` the CLI built (address, port, pinned host
key), and the site's secrets are only digested (`SecretDigests`), never copied in.
"""

from __future__ import annotations

import re

from ._errors import PlanError
from ._hashing import plan_hash
from ._plan import Frozen, Plan, PlanSettings, SecretUse
from ._secretuse import Reveal, SecretDigests
from ._stepargs import (
    ApiTokenArgs,
    BridgeArgs,
    HostDownloadArgs,
    HostFileArgs,
    HostKeysArgs,
    HostNodeFileArgs,
    PackagesArgs,
    UserArgs,
)
from ._steps import StepList

PVE_SOURCE_PATH = "/etc/apt/sources.list.d/pve-install-repo.sources"
PVE_SOURCE = (
    "Types: deb\n"
    "URIs: http://download.proxmox.com/debian/pve\n"
    "Suites: trixie\n"
    "Components: pve-no-subscription\n"
    "Signed-By: /usr/share/keyrings/proxmox-archive-keyring.gpg\n"
)
"""PVE 9's no-subscription repository for Debian 13, in deb822 form, as PVE's guide has it."""
PVE_KEYRING_URL = "https://enterprise.proxmox.com/debian/proxmox-archive-keyring-trixie.gpg"
PVE_KEYRING = "/usr/share/keyrings/proxmox-archive-keyring.gpg"
"""Where PVE's guide puts the archive keyring that `Signed-By` names."""
PVE_PACKAGES = ("proxmox-ve", "postfix", "open-iscsi", "chrony")
"""What PVE's guide installs on Debian."""
PVE_DATASTORE = "local"
"""PVE installed on Debian has one storage: `local`, a directory."""
TOKEN = ApiTokenArgs(user="pveplan@pve", token="pveplan", privsep=1)
"""A least-privilege token (iac-driver makes root@pam!tofu without privilege separation;
see docs/homestak-compat.md#scenarios)."""
DEFAULT_USER = "homestak"

HOST_KIND_VERSIONS = {
    "host.download": 1,
    "host.apt_source": 1,
    "host.pve_install": 1,
    "host.bridge": 1,
    "host.authorized_keys": 1,
    "host.api_token": 1,
    "host.node_file": 1,
    "host.user": 1,
    "host.sudoers": 1,
}


class HostTarget(Frozen, kw_only=True):
    """The machine a scenario sets up, as the CLI found it: `name` labels the plan and its
    workspace (the address given with `--remote`, or a host file's name)."""

    name: str
    address: str
    ssh_port: int = 22
    ssh_user: str = "root"
    ssh_host_key: str


def pve_setup_plan(
    target: HostTarget, driver_key: str, keyring_sha256: str, *, bridge: str = "vmbr0"
) -> Plan:
    """`pve-setup`: PVE's archive keyring (its sha256 pinned: `keyring_sha256`) and
    repository, PVE, the bridge, the driver's key for root, an API token (kept in the
    site's secrets.yaml) and the host's node file in the site config."""
    if not re.fullmatch(r"[0-9a-f]{64}", keyring_sha256):
        raise PlanError.at(None, "the PVE keyring's sha256 must be 64 lowercase hex digits")
    steps = StepList(target.name, _version)
    keyring = steps.add(
        "host.pve_keyring",
        "host.download",
        HostDownloadArgs(url=PVE_KEYRING_URL, path=PVE_KEYRING, sha256=keyring_sha256, mode=0o644),
    )
    repo = steps.add(
        "host.pve_repo",
        "host.apt_source",
        HostFileArgs(path=PVE_SOURCE_PATH, text=PVE_SOURCE, mode=0o644),
        deps=(keyring,),
    )
    install = steps.add(
        "host.pve_install", "host.pve_install", PackagesArgs(packages=PVE_PACKAGES), deps=(repo,)
    )
    node = {"pve_node": f"{install}#pve_node"}
    net = steps.add(
        "host.bridge", "host.bridge", BridgeArgs(bridge=bridge, interface="eth0"), refs=node
    )
    keys = steps.add(
        "host.driver_key",
        "host.authorized_keys",
        HostKeysArgs(user="root", keys=(driver_key,), secret_keys=()),
    )
    token = steps.add("host.api_token", "host.api_token", TOKEN, refs=node, deps=(net,))
    steps.add(
        "host.node_file",
        "host.node_file",
        HostNodeFileArgs(
            address=target.address,
            ssh_port=target.ssh_port,
            ssh_user=target.ssh_user,
            ssh_host_key=target.ssh_host_key,
            datastore=PVE_DATASTORE,
            token_name=f"{TOKEN.user}!{TOKEN.token}",
        ),
        refs={**node, "token_id": f"{token}#token_id"},
        deps=(keys,),
    )
    return _plan("pve-setup", target, steps)


def user_setup_plan(
    target: HostTarget, reveal: Reveal, key_names: tuple[str, ...], *, user: str = DEFAULT_USER
) -> Plan:
    """`user-setup`: `user` with a home, bash and the sudo group, sudo without a password
    (homestak's user.yml), and the site's SSH keys (`ssh_keys.*`, all unless
    `key_names` names some) in its authorized_keys."""
    digests = SecretDigests(reveal)
    names = tuple(sorted(f"ssh_keys.{k}" for k in key_names))
    if not names:
        raise PlanError.at(
            None,
            "secrets.yaml has no ssh_keys for the user's authorized_keys",
            "add at least one: ssh_keys: {ops: 'ssh-ed25519 AAAA... ops@example'}",
        )
    uses: tuple[SecretUse, ...] = tuple(digests.use(name) for name in names)
    steps = StepList(target.name, _version)
    made = steps.add("host.user", "host.user", UserArgs(name=user, sudo=True))
    steps.add(
        "host.sudoers",
        "host.sudoers",
        HostFileArgs(
            path=f"/etc/sudoers.d/{user}", text=f"{user} ALL=(ALL) NOPASSWD:ALL\n", mode=0o440
        ),
        deps=(made,),
    )
    steps.add(
        "host.user_keys",
        "host.authorized_keys",
        HostKeysArgs(user=user, keys=(), secret_keys=names),
        secrets=uses,
        deps=(made,),
    )
    return _plan("user-setup", target, steps)


def _version(kind: str) -> int:
    return HOST_KIND_VERSIONS[kind]


def _plan(scenario: str, target: HostTarget, steps: StepList) -> Plan:
    done = steps.done()
    manifest = f"scenario.{scenario}"
    settings = PlanSettings(parallelism=1)
    return Plan(
        manifest=manifest,
        host=target.name,
        settings=settings,
        steps=done,
        hash=plan_hash(
            manifest, target.name, "apply", settings, [(s.address, s.hash) for s in done]
        ),
    )
