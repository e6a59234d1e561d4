"""A node's spec as a plan of node-local steps: one per aspect, and per user.

The plan is built on the node from the spec document (by the node's own pveplan, which
calls this through `pveplan.planner`), hashed exactly like the driver's plans
(`_steps.StepList`), and run by the same executor against the node's own store. So
a step's hash changes exactly when its part of the spec does (a new package changes
`config.packages`, nothing else), an unchanged spec re-runs nothing, and a run with
`refresh` probes every cached step and re-runs exactly those whose part of the world
drifted. Addresses are what the node reports as changed and drifted:

    config.timezone  config.packages  config.user.NAME  config.ssh_keys.NAME
    config.sudo.NAME  config.services  config.sshd  config.fail2ban  config.converge_timer

Steps that share a resource wait for each other: a user's keys and sudo rule for the user,
and every apt-get for the one before it (dpkg takes one at a time).
"""

from __future__ import annotations

from ._hashing import plan_hash, secret_digest
from ._nodespec import DEFAULT_INTERVAL, SpecDocument, SpecError, node_spec, systemd_interval
from ._plan import Plan, PlanSettings, SecretUse
from ._stepargs import (
    ConvergeTimerArgs,
    NoArgs,
    PackagesArgs,
    ServicesArgs,
    SshdArgs,
    SshKeysArgs,
    StepArgs,
    SudoArgs,
    TimezoneArgs,
    UserArgs,
)
from ._steps import StepList

HOST = "local"
MANIFEST = "config"
KIND_VERSION = 1
BOOT_DELAY = "5min"
"""How long after boot a scheduled node converges first (then every interval)."""
SETTINGS = PlanSettings(on_error="continue")
"""A failed aspect stops only what depends on it: converge as much as can be."""


def node_workspace(identity: str) -> str:
    """The node store's workspace of a node's convergence."""
    return f"{MANIFEST}@{identity}"


class _Steps(StepList):
    """The node's steps; deps on steps the spec did not need are dropped, and secrets are
    named, digested here from the document's values."""

    def __init__(self, document: SpecDocument) -> None:
        super().__init__(HOST, lambda _kind: KIND_VERSION)
        self.document = document

    def add(  # type: ignore[override]
        self,
        address: str,
        kind: str,
        args: StepArgs,
        *,
        deps: tuple[str, ...] = (),
        secrets: list[str] | None = None,
    ) -> str:
        return super().add(
            address,
            kind,
            args,
            deps=tuple(d for d in deps if d in self.hashes),
            secrets=tuple(self._use(name) for name in secrets or ()),
        )

    def _use(self, name: str) -> SecretUse:
        """A secret by name with a digest of its value, so a changed key changes its step.
        Keyed by the identity only: the store holding it sits next to spec.yaml, which
        holds the values themselves, so a site key would protect nothing here."""
        value = self.document.secrets.get(name)
        digest = secret_digest(self.document.identity, value) if value is not None else "missing"
        return SecretUse(name=name, digest=digest)


def build_node_plan(document: SpecDocument, *, bundle: str | None = None) -> Plan:
    """The node-local plan of `document`; `bundle` is the installed bundle's hash (what a
    converge timer runs). SpecError when the spec asks for something it cannot have."""
    spec = node_spec(document)
    steps = _Steps(document)
    if spec.timezone:
        steps.add("config.timezone", "node.timezone", TimezoneArgs(timezone=spec.timezone))
    apt = ""
    if spec.packages:
        apt = steps.add(
            "config.packages", "node.packages", PackagesArgs(packages=tuple(spec.packages))
        )
    posture = spec.posture_settings
    if posture is not None and posture.fail2ban.enabled:
        apt = steps.add("config.fail2ban", "node.fail2ban", NoArgs(), deps=(apt,))
    nopasswd = posture is not None and posture.sudo.nopasswd
    for user in spec.users:
        name = user.name
        address = steps.add(f"config.user.{name}", "node.user", UserArgs(name=name, sudo=user.sudo))
        if user.ssh_keys:
            keys = list(user.ssh_keys)
            steps.add(
                f"config.ssh_keys.{name}",
                "node.ssh_keys",
                SshKeysArgs(user=name, keys=tuple(keys)),
                deps=(address,),
                secrets=sorted(set(keys)),
            )
        if user.sudo:
            steps.add(
                f"config.sudo.{name}",
                "node.sudo",
                SudoArgs(user=name, nopasswd=nopasswd),
                deps=(address,),
            )
    services = spec.services
    if services.enable or services.disable:
        steps.add(
            "config.services",
            "node.services",
            ServicesArgs(enable=tuple(services.enable), disable=tuple(services.disable)),
            deps=("config.packages", "config.fail2ban"),
        )
    if posture is not None:
        ssh = posture.ssh
        settings = {  # only what the posture sets
            key: value
            for key, value in (
                ("port", ssh.port),
                ("permit_root_login", ssh.permit_root_login),
                ("password_authentication", ssh.password_authentication),
            )
            if value is not None
        }
        if settings:
            steps.add("config.sshd", "node.sshd", SshdArgs(**settings))
    if spec.run is not None and spec.run.trigger == "schedule":
        if bundle is None:
            raise SpecError(
                "the spec runs on a schedule, but no installed pveplan bundle is known to "
                "schedule (pull.json names none)"
            )
        steps.add(
            "config.converge_timer",
            "node.converge_timer",
            ConvergeTimerArgs(
                interval=systemd_interval(spec.run.interval or DEFAULT_INTERVAL),
                boot=BOOT_DELAY,
                bundle=bundle,
            ),
        )
    built = tuple(steps.steps)
    return Plan(
        manifest=MANIFEST,
        host=HOST,
        settings=SETTINGS,
        steps=built,
        hash=plan_hash(MANIFEST, HOST, "apply", SETTINGS, [(s.address, s.hash) for s in built]),
    )
