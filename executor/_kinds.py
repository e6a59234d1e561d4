"""Step kinds: what a step of a given `kind` does to the world, written `ensure_*`-style.

A kind's `apply` looks at the real state first and adopts what already matches (so a
re-run after a lost store, or after a kill between "created" and "recorded", creates no
duplicate); `destroy` of something absent succeeds; `probe` says how the real state has
drifted from a recorded result (for `--refresh`), or None. Kinds hold no state: all they
touch comes through the `StepContext`, including the step's args, decoded once into the
kind's Struct (`ctx.args_as(VmCreateArgs)`; the planner's `STEP_ARGS` says which).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from ._model import Outputs

if TYPE_CHECKING:
    from pveplan.planner import Step, StepArgs

    from ._context import StepContext

# The seeds' timeout tiers, in seconds.
TIERS: dict[str, float] = {
    "quick": 30,
    "short": 60,
    "medium": 300,
    "long": 600,
    "extended": 1200,
}


class StepKind:
    """Base of every kind. Subclasses set `name` and override what they support."""

    name: ClassVar[str] = ""
    tier: ClassVar[str] = "short"
    resource: ClassVar[bool] = False
    """Whether a success leaves something live that `destroy` removes (a VM)."""
    cacheable: ClassVar[bool] = True
    """False for kinds whose effect can be undone behind the record's back (a destroy)."""
    args_type: ClassVar[type[StepArgs] | None] = None
    """Only for a kind the planner does not make (a benchmark's): the Struct of its args.
    The planner's kinds have theirs in `pveplan.planner.STEP_ARGS`."""
    resource_args: ClassVar[type[StepArgs] | None] = None
    """For a resource kind: the Struct of what its `destroy` needs, which is all a live
    resource rebuilt from the store's outputs carries (`executor._run.resource_step`).
    `destroy` gets either this or, rolling back a step of the plan, the kind's own args."""

    def unchanged(self, outputs: Mapping[str, Any]) -> bool:
        """Whether a successful (uncacheable) run changed nothing, so it reports as cached:
        a delegate whose remote level ran no step."""
        return False

    def timeout(self, args: StepArgs) -> float:
        """The step's own time limit (a wait's `timeout` arg), else its kind's tier."""
        value = args.wait_limit()
        return float(value) if isinstance(value, int) and value > 0 else TIERS[self.tier]

    async def apply(self, ctx: StepContext, step: Step, refs: Mapping[str, Any]) -> Outputs:
        raise NotImplementedError

    async def destroy(self, ctx: StepContext, step: Step, outputs: Mapping[str, Any]) -> None:
        """Undo `apply` (absent is success). Kinds that leave nothing behind do nothing."""

    async def probe(
        self, ctx: StepContext, step: Step, refs: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> str | None:
        """How the world differs from `outputs` (None: it does not, or cannot be told)."""
        return None


_REGISTRY: dict[str, StepKind] = {}


def register(kind: type[StepKind]) -> type[StepKind]:
    """Class decorator: make `kind` the implementation of `kind.name`."""
    _REGISTRY[kind.name] = kind()
    return kind


def kind_for(name: str) -> StepKind | None:
    """The implementation of step kind `name`, loading the built-in kinds on first use."""
    if not _REGISTRY:
        from . import kinds  # noqa: F401  (registers on import)
    return _REGISTRY.get(name)
