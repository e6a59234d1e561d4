"""The applied state `pveplan import` records: the steps it established, as a plan.

The store's applied state is a plan object (the diff reads it back and checks its hashes),
so what import records as applied must be a plan whose every step hashes over steps it
also holds. `adopted_plan` keeps the established steps and everything they name through
deps and refs, with their hashes unchanged (a closure needs no rehash), and nothing else:
the steps import could not establish then show in the next `plan` as to be created, and
the drift of what an adopted VM differs in as drift.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from ._hashing import plan_hash
from ._plan import Plan
from ._target import _closure


def adopted_plan(plan: Plan, addresses: Iterable[str]) -> Plan:
    """`plan` cut down to `addresses` (on its own level) and what they need; subplans only
    of delegates kept. No drift and no targets: it is a record of state, not a request."""
    by_address = {s.address: s for s in plan.steps}
    keep = _closure(addresses, by_address)
    steps = tuple(s for s in plan.steps if s.address in keep)
    return msgspec.structs.replace(
        plan,
        steps=steps,
        subplans={a: p for a, p in plan.subplans.items() if a in keep},
        targets=(),
        drift=(),
        hash=plan_hash(
            plan.manifest,
            plan.host,
            plan.action,
            plan.settings,
            [(s.address, s.hash) for s in steps],
        ),
    )
