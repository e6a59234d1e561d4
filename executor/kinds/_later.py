"""Kinds a plan may hold that this release cannot run yet: each fails with a clear reason.

Pull-mode nodes (`config.await_report`) arrive with the spec server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._context import StepContext
from .._kinds import StepKind, register
from .._model import Outputs, StepFailed

LATER = {"pull-mode nodes (the spec server)": ("config.await_report",)}


class _NotYet(StepKind):
    feature = ""

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        raise StepFailed(
            f"{step.kind} is part of {self.feature}, which this release of pveplan cannot "
            "apply yet; `pveplan plan` shows these steps"
        )


for _feature, _names in LATER.items():
    for _name in _names:
        register(type(f"NotYet_{_name}", (_NotYet,), {"name": _name, "feature": _feature}))
