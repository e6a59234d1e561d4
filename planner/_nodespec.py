"""The spec document a pull node fetches, typed and checked before its plan is built.

The document is what `GET /spec/{identity}` answers (and what `spec get` saves as
spec.yaml): the node's identity, the spec's name and hash, the spec as `_pullspec.spec_args`
builds it, and the values of the secrets it names. On the node it is untrusted input in
one respect: its values end up as command arguments. Commands are argument vectors (never
shell lines), and every value that becomes an argument is checked here against what it
may be, so that none can be read as an option (`-o...`) either.

Pure data and checks: reading and writing spec.yaml is the executor's (`executor.pull`).
"""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec

from pveplan.dsl import Diagnostic

from ._errors import PlanError

USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
"""Debian's (and useradd's default) user names: also safe in a sudoers.d file name."""
PACKAGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9+._:-]{0,127}")
"""Never an option; apt itself tells a missing or misspelt package."""
UNIT_RE = re.compile(r"[A-Za-z0-9_:@][A-Za-z0-9_.:@-]{0,255}")
TIMEZONE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_+/-]{0,63}")
INTERVAL_RE = re.compile(r"(?:(\d{1,6})\s*(s|sec|m|min|h|hr|d|w))+\s*")
_INTERVAL_PART = re.compile(r"(\d{1,6})\s*(s|sec|m|min|h|hr|d|w)")
_UNIT_SECONDS = {
    "s": 1,
    "sec": 1,
    "m": 60,
    "min": 60,
    "h": 3600,
    "hr": 3600,
    "d": 86400,
    "w": 604800,
}
MIN_INTERVAL = 60
"""The shortest converge interval accepted (seconds): anything less hammers the server."""


class SpecError(PlanError):
    """The spec document is unusable; `str()` is the message for the user."""

    def __init__(self, message: str) -> None:
        super().__init__([Diagnostic(summary=message)])


class SpecUser(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    sudo: bool = False
    ssh_keys: list[str] = msgspec.field(default_factory=list)


class SpecServices(msgspec.Struct, frozen=True, kw_only=True):
    enable: list[str] = msgspec.field(default_factory=list)
    disable: list[str] = msgspec.field(default_factory=list)


class PostureSsh(msgspec.Struct, frozen=True, kw_only=True):
    port: int | None = None
    permit_root_login: Literal["yes", "no", "prohibit-password"] | None = None
    password_authentication: Literal["yes", "no"] | None = None


class PostureSudo(msgspec.Struct, frozen=True, kw_only=True):
    nopasswd: bool = False


class PostureFail2ban(msgspec.Struct, frozen=True, kw_only=True):
    enabled: bool = False


class PostureSettings(msgspec.Struct, frozen=True, kw_only=True):
    """A posture as plan data (defaults are omitted there, so every field has one)."""

    ssh: PostureSsh = PostureSsh()
    sudo: PostureSudo = PostureSudo()
    fail2ban: PostureFail2ban = PostureFail2ban()


class SpecRun(msgspec.Struct, frozen=True, kw_only=True):
    trigger: Literal["schedule", "webhook", "git", "manual"] = "manual"
    interval: str | None = None


class NodeSpec(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of `spec_args` a node converges on (other keys are carried, not used)."""

    spec: str | None = None
    users: list[SpecUser] = msgspec.field(default_factory=list)
    packages: list[str] = msgspec.field(default_factory=list)
    services: SpecServices = SpecServices()
    timezone: str | None = None
    posture: str | None = None
    posture_settings: PostureSettings | None = None
    run: SpecRun | None = None


class SpecDocument(msgspec.Struct, frozen=True, kw_only=True):
    """The JSON body of `GET /spec/{identity}`, and the content of spec.yaml."""

    identity: str
    spec_name: str
    spec_hash: str
    spec: dict[str, Any]
    secrets: dict[str, str] = msgspec.field(default_factory=dict)

    def __repr__(self) -> str:  # never print secret values
        return f"SpecDocument(identity={self.identity!r}, spec_hash={self.spec_hash!r})"


def decode_spec_document(data: Any) -> SpecDocument:
    """The document from decoded JSON/YAML data; SpecError names what is wrong."""
    try:
        return msgspec.convert(data, SpecDocument)
    except msgspec.ValidationError as exc:
        raise SpecError(f"the spec document is not valid: {exc}") from None


def node_spec(document: SpecDocument) -> NodeSpec:
    """The document's spec, typed and with every value that becomes an argument checked."""
    try:
        spec = msgspec.convert(document.spec, NodeSpec)
    except msgspec.ValidationError as exc:
        raise SpecError(f"spec {document.spec_name!r} is not valid: {exc}") from None
    _check(spec)
    return spec


def _bad(what: str, value: str, why: str) -> SpecError:
    return SpecError(f"the spec names {what} {value!r}, which {why}")


def _check(spec: NodeSpec) -> None:
    for user in spec.users:
        if not USER_RE.fullmatch(user.name):
            raise _bad("the user", user.name, "is not a valid user name")
    for package in spec.packages:
        if not PACKAGE_RE.fullmatch(package):
            raise _bad("the package", package, "is not a package name")
    for unit in [*spec.services.enable, *spec.services.disable]:
        if not UNIT_RE.fullmatch(unit):
            raise _bad("the service", unit, "is not a systemd unit name")
    if spec.timezone is not None and not TIMEZONE_RE.fullmatch(spec.timezone):
        raise _bad("the timezone", spec.timezone, "is not a time zone name")
    posture = spec.posture_settings
    if posture is not None and posture.ssh.port is not None and not 0 < posture.ssh.port < 65536:
        raise _bad("the SSH port", str(posture.ssh.port), "is not a TCP port")
    if spec.run is not None and spec.run.trigger == "schedule":
        systemd_interval(spec.run.interval or DEFAULT_INTERVAL)


DEFAULT_INTERVAL = "1h"


def systemd_interval(text: str) -> str:
    """homestak's interval ("1h", "30m", "1h30m", "45s", "2d") in systemd's time-span
    syntax ("1h", "30min", "1h 30min"): `m` is minutes in both, but only `min` reads the
    same to everyone, so the result spells units out the systemd way."""
    if not INTERVAL_RE.fullmatch(text.strip()):
        raise _bad("the converge interval", text, "is not like 30m, 1h or 1h30m")
    seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in _INTERVAL_PART.findall(text))
    if seconds < MIN_INTERVAL:
        raise _bad("the converge interval", text, f"is shorter than {MIN_INTERVAL}s")
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts)
