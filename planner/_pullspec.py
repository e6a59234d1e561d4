"""What a pull-mode node fetches from the spec server, and the hash both ends agree on.

A pull node converges itself: at first boot it fetches its spec over HTTPS, applies it and
reports back the hash of what it applied. The planner, the spec server and the node must
all mean the same document by that hash, so it is computed here, once, from the same
plan data the `config.await_report` step carries: the spec as `spec_args` builds it, and
the keyed digests of the secrets it names (never their values). The server later fills in
the values for the node; the hash does not change when it does.

Which credential a node presents follows its posture's `auth.method`:
`network` none, `site_token` the site's shared token (`secrets auth.site_token`),
`node_token` a provisioning token minted for that node at create time from
`auth.signing_key` (homestak's HMAC-signed `{"v","n","s","iat"}` tokens).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from ._errors import PlanError
from ._hashing import canonical, digest, has_float
from ._plan import Frozen, SecretUse, Step
from ._stepargs import (
    AuthMethod,
    AwaitReportArgs,
    ConfigPushArgs,
    PullTimeouts,
    ServicesArgs,
    SpecArgs,
    SpecUserArgs,
    args_as,
    args_of,
    to_plain,
)
from .siteconfig import ResolvedNode

AUTH_SECRETS: dict[str, str] = {
    "site_token": "auth.site_token",
    "node_token": "auth.signing_key",
}
"""The secret each posture's credential comes from (network needs none)."""

SPEC_TIMEOUT = 300
CONFIG_TIMEOUT = 300
"""The seeds' pull timeouts: fetching the spec, then converging on it (seconds)."""


class PulledSpec(Frozen, kw_only=True):
    """One pull node's spec as the server publishes it (names and digests, no values)."""

    identity: str
    spec_name: str
    auth: AuthMethod
    spec: dict[str, Any]
    secrets: tuple[SecretUse, ...] = ()
    hash: str


def spec_args(node: ResolvedNode) -> SpecArgs:
    """What the config phase needs: the resolved spec, posture and packages (no secrets)."""
    spec = node.spec
    assert spec is not None
    if has_float(spec.config_extra):
        raise PlanError.at(
            None,
            f"spec {node.spec_name!r} has a number with a fraction in its config",
            "plans hold no floats (their text is not canonical); write the value as a string",
        )
    return SpecArgs(
        spec=node.spec_name,
        hostname=spec.hostname,
        domain=spec.domain,
        users=tuple(
            SpecUserArgs(name=u.name, sudo=u.sudo, ssh_keys=tuple(k.name for k in u.ssh_keys))
            for u in spec.users
        ),
        packages=node.packages,
        services=ServicesArgs(enable=spec.services_enable, disable=spec.services_disable),
        timezone=node.timezone,
        posture=node.posture_name,
        posture_settings=None if node.posture is None else _plain_cached(node.posture),
        network=_plain(spec.network) if spec.network is not None else None,
        pve=_plain(spec.pve) if spec.pve is not None else None,
        config=dict(spec.config_extra),
        # only when set: plans made before `run` existed keep their hashes
        run=_plain(spec.run) if spec.run is not None else msgspec.UNSET,
    )


def push_args(node: ResolvedNode) -> ConfigPushArgs:
    """The args of a push node's `config.push` step: its spec, and whom to log in as."""
    spec = spec_args(node)
    return ConfigPushArgs(**msgspec.structs.asdict(spec), ssh_user=node.vm_user)


def spec_key_names(node: ResolvedNode) -> list[str]:
    """The secrets a node's spec names (its users' SSH keys), sorted, without repeats."""
    assert node.spec is not None
    return sorted({key.name for user in node.spec.users for key in user.ssh_keys})


def auth_method(node: ResolvedNode) -> AuthMethod:
    """How the node proves who it is to the spec server (its posture's auth method)."""
    return node.posture.auth.method if node.posture is not None else "network"


def spec_hash(spec: dict[str, Any], secrets: Iterable[SecretUse]) -> str:
    """The identity of a served spec: its plan data and the digests of its secrets."""
    return digest(canonical({"spec": spec, "secrets": sorted([s.name, s.digest] for s in secrets)}))


def pulled_spec(node: ResolvedNode, secret_use: Callable[[str], SecretUse]) -> PulledSpec:
    """The spec `node` (pull mode, with a spec) fetches; `secret_use` digests a secret."""
    args = to_plain(spec_args(node))
    uses = tuple(secret_use(name) for name in spec_key_names(node))
    return PulledSpec(
        identity=node.name,
        spec_name=node.spec_name or "",
        auth=auth_method(node),
        spec=args,
        secrets=uses,
        hash=spec_hash(args, uses),
    )


def await_args(pulled: PulledSpec, server: str | None) -> AwaitReportArgs:
    """The args of a pull node's `config.await_report` step (the plan shows them)."""
    return AwaitReportArgs(
        identity=pulled.identity,
        spec_name=pulled.spec_name,
        auth=pulled.auth,
        spec_hash=pulled.hash,
        spec=msgspec.convert(pulled.spec, SpecArgs),
        server=server,
        timeouts=PullTimeouts(spec=SPEC_TIMEOUT, config=CONFIG_TIMEOUT),
    )


def from_await_step(step: Step) -> PulledSpec:
    """The spec an `await_report` step expects its node to fetch (for the server to serve).

    The step's secrets are the spec's keys plus the node's credential; only the keys
    are part of the spec. StepArgsError if its args do not fit the kind.
    """
    args = args_as(args_of(step), AwaitReportArgs)
    credential = AUTH_SECRETS.get(args.auth)
    return PulledSpec(
        identity=args.identity,
        spec_name=args.spec_name,
        auth=args.auth,
        spec=to_plain(args.spec),
        secrets=tuple(s for s in step.secrets if s.name != credential),
        hash=args.spec_hash,
    )


def _plain(value: Any) -> Any:
    """A Struct as JSON-native data (lists, not tuples), as it reads back from a plan file."""
    return msgspec.json.decode(msgspec.json.encode(value))


@functools.lru_cache(maxsize=64)
def _plain_cached(value: Any) -> Any:
    """`_plain` once per posture (Structs are hashable); steps share the dict, which
    nothing mutates after compiling."""
    return _plain(value)
