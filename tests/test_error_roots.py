"""Every package has one error root, and every exception class it defines derives from it.

Why: the CLI renders each root in one place (`cli/_app.py`), so a user's mistake is one
clear message and a bug keeps its traceback (STYLE §6); a new exception class that forgets
its package's root would be a traceback for the user. Private control-flow signals
(`_UsedBeforeLet` in the evaluator) are not errors a user sees and are left out; the
executor's private ones (`_Malformed`, `_TooSlow` in the spec server) are held too.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import pveplan.executor as executor
from pveplan.dsl import DiagnosticError
from pveplan.executor import ExecutorError, StepFailed
from pveplan.executor.channels import ChannelError
from pveplan.executor.pve import PveError
from pveplan.planner import PlanError
from pveplan.sim import SimError
from pveplan.store import StoreError

ROOTS: dict[str, tuple[type[BaseException], bool]] = {
    "pveplan.dsl": (DiagnosticError, False),
    "pveplan.planner": (PlanError, False),
    "pveplan.store": (StoreError, False),
    "pveplan.executor": (ExecutorError, True),
    "pveplan.sim": (SimError, False),
}
"""Package -> (its root, whether private classes are held too)."""


def _exception_classes(package: str, private: bool) -> list[type[BaseException]]:
    root = importlib.import_module(package)
    found: list[type[BaseException]] = []
    for info in pkgutil.walk_packages(root.__path__, f"{package}."):
        module = importlib.import_module(info.name)
        found += [
            obj
            for obj in vars(module).values()
            if inspect.isclass(obj)
            and issubclass(obj, BaseException)
            and obj.__module__ == module.__name__
            and (private or not obj.__name__.startswith("_"))
        ]
    return found


@pytest.mark.parametrize("package", sorted(ROOTS))
def test_every_exception_derives_from_its_packages_root(package: str) -> None:
    root, private = ROOTS[package]
    classes = _exception_classes(package, private)
    assert root in classes or (package == "pveplan.planner" and root is PlanError)
    outside = [f"{c.__module__}.{c.__qualname__}" for c in classes if not issubclass(c, root)]
    assert outside == []


def test_planner_errors_are_diagnostics_like_the_dsls() -> None:
    """One renderer serves both: a PlanError is a DiagnosticError."""
    assert issubclass(PlanError, DiagnosticError)


def test_the_families_keep_their_own_names() -> None:
    for family in (StepFailed, ChannelError, PveError):
        assert issubclass(family, ExecutorError)
    assert not issubclass(StepFailed, ChannelError)
    error = StepFailed("no", {"vm_id": 100})
    assert isinstance(error, ExecutorError) and error.outputs == {"vm_id": 100}


def test_executor_exports_the_root_lazily() -> None:
    assert "ExecutorError" in executor.__all__
    assert sorted(executor._EXPORTS) == sorted(executor.__all__)
    assert executor.ExecutorError is ExecutorError
