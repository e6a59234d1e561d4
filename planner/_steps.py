"""Building a plan's steps in order, each hashed from the hashes of what it depends on.

Shared by the planner (a manifest's plans) and by a pull node (its node-local plan), so
both hash steps the one way `_hashing.step_hash` defines: a step added after the steps it
refers to or waits for gets a hash that changes exactly when one of them does. A step's
args come in as its kind's Struct (`_stepargs`) and are stored in their wire form.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._hashing import step_hash
from ._plan import SecretUse, Step
from ._stepargs import StepArgs, to_wire


class StepList:
    """Steps of one plan for `host`, in the order added; `kind_version` versions a kind."""

    def __init__(self, host: str, kind_version: Callable[[str], int]) -> None:
        self.host = host
        self.kind_version = kind_version
        self.steps: list[Step] = []
        self.hashes: dict[str, str] = {}

    def add(
        self,
        address: str,
        kind: str,
        typed: StepArgs,
        *,
        refs: dict[str, str] | None = None,
        secrets: tuple[SecretUse, ...] = (),
        deps: tuple[str, ...] = (),
        hints: dict[str, Any] | None = None,
        host: str | None = None,
    ) -> str:
        """Add a step (its refs and deps must already be here); returns its address.
        `host`: where it runs when not this plan's host (a node placed with `host:`)."""
        on = host or self.host
        args = to_wire(kind, typed)
        refs = refs or {}
        ref_hashes = {}
        for name, ref in refs.items():
            target, _, output = ref.partition("#")
            ref_hashes[name] = f"{self.hashes[target]}#{output}"
        version = self.kind_version(kind)
        digest = step_hash(
            kind=kind,
            kind_version=version,
            host=on,
            args=args,
            secrets=secrets,
            ref_hashes=ref_hashes,
            dep_hashes=[self.hashes[d] for d in deps],
        )
        self.steps.append(
            Step(
                address=address,
                kind=kind,
                kind_version=version,
                host=on,
                args=args,
                refs=refs,
                secrets=secrets,
                deps=deps,
                hints=hints or {},
                hash=digest,
            )
        )
        self.hashes[address] = digest
        return address

    def done(self) -> tuple[Step, ...]:
        return tuple(self.steps)
