"""The plan model: steps, subplans, plans. Data only; building them is `_compile`.

A `Step` is a pure description of one effect: what kind of thing to do (`kind`, with a
`kind_version` bumped whenever the meaning of its args changes), where (`host`), with
which literal inputs (`args`), which outputs of other steps it consumes (`refs`, as
`"address#output"`), which secrets it needs (by name, with a keyed digest so a changed
secret changes the step), and what must finish first (`deps`). Its `hash` covers all of
that plus the hashes of the steps it refers to, like a Nix derivation: a step's hash
changes exactly when something it depends on changes.

A `Plan` is the steps for one host, plus, for each nested PVE host, the `Plan` of its
children (`subplans`, keyed by the address of the `subplan.delegate` step that carries
it; that step's args hold the subplan's hash, so the hashes form a Merkle tree).

Everything here is canonical by construction: tuples, no floats, and no value that may
differ between machines (paths, times, user names): those live in the plan file header.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

# Literal values a step's args may hold. Floats are excluded: their text form is not
# canonical across encoders, and nothing we describe needs them.
ArgValue = str | int | bool | None | list[Any] | dict[str, Any]


class Frozen(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """Base of the plan model: immutable, strict, stable encodings."""


class SecretUse(Frozen, kw_only=True):
    """A secret a step needs: its name, and HMAC-SHA256(site signing key, value) in hex.

    The digest changes the step's hash when the secret changes, is the same wherever the
    same site config is used, and (being keyed) allows no offline guessing of the value.
    """

    name: str
    digest: str


class Step(Frozen, kw_only=True):
    """One pure, input-addressed step of a plan."""

    address: str
    kind: str
    kind_version: int
    host: str
    args: dict[str, Any] = msgspec.field(default_factory=dict)
    refs: dict[str, str] = msgspec.field(default_factory=dict)
    secrets: tuple[SecretUse, ...] = ()
    deps: tuple[str, ...] = ()
    # Not hashed: where to fetch things from (a pinned image's URL). A new mirror changes
    # the plan file, but no step's identity, so nothing re-runs for it.
    hints: dict[str, Any] = msgspec.field(default_factory=dict)
    hash: str

    def ref_addresses(self) -> tuple[str, ...]:
        """The addresses this step's refs point at (without the `#output` part)."""
        return tuple(ref.split("#", 1)[0] for ref in self.refs.values())


class PlanSettings(Frozen, kw_only=True):
    """How the plan is run (from the manifest's settings): part of the plan's hash."""

    on_error: Literal["stop", "rollback", "continue"] = "stop"
    parallelism: int = 10
    cleanup_on_failure: bool = True
    timeout_buffer: int = 60


class Drift(Frozen, kw_only=True):
    """One way a live VM differs from what was applied, as the probe before a plan saw it.

    `address` is the step whose re-run converges it (the node's create, or its start);
    `fix` says how: `in_place` (the create step adopts the VM and sets the field back),
    `start`, `recreate` (the VM is gone) or `report` (nothing pveplan can do safely: a
    disk grown by hand, which PVE cannot shrink). Values are text, as shown to a reader.
    """

    address: str
    node: str
    type: str = "vm"
    field: str
    live: str
    wanted: str
    cause: str
    fix: Literal["in_place", "start", "recreate", "report"]
    path: tuple[str, ...] = ()
    """The nested hosts from the plan's own level down to the one this VM is on (empty: the
    plan's own host). Its level's executor finds and converges it; left off the wire when
    empty, so a plan without nested drift keeps its bytes and hash."""


class Plan(Frozen, kw_only=True):
    """The steps for one host (in a stable order), and the subplans of its nested hosts.

    `drift`: what the live-state probe before this plan found (empty for a plan made
    offline, `--refresh=false`); hashed with the plan when present, so a saved plan's
    apply re-runs exactly what its reviewer saw drift in (docs/plan-format.md)."""

    manifest: str
    host: str
    action: Literal["apply", "destroy"] = "apply"
    settings: PlanSettings = PlanSettings()
    steps: tuple[Step, ...] = ()
    subplans: dict[str, Plan] = msgspec.field(default_factory=dict)
    targets: tuple[str, ...] = ()
    """`-target NODE`s: the plan holds only those nodes and what they need; the rest of
    the workspace is not considered (kept, never destroyed), and the applied state is
    left as it was. Hashed (empty: not, so untargeted plans keep their hashes)."""
    drift: tuple[Drift, ...] = ()
    hash: str

    def step(self, address: str) -> Step:
        """The step at `address` (KeyError if none)."""
        for step in self.steps:
            if step.address == address:
                return step
        raise KeyError(address)

    def walk(self, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Step]]:
        """Every step of this plan and its subplans, with the delegate path leading to it."""
        out = [(path, step) for step in self.steps]
        for address, subplan in self.subplans.items():
            out.extend(subplan.walk((*path, address)))
        return out
