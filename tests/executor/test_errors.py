"""The executor has one error root: every exception class it defines derives from ExecutorError.

Why: a caller catches "the executor failed" in one clause (STYLE §6) and a bug keeps its
traceback. A new exception class that forgets the root fails here.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pveplan.executor as executor
from pveplan.executor import ExecutorError, StepFailed
from pveplan.executor.channels import ChannelError
from pveplan.executor.pve import PveError


def _exception_classes() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    for info in pkgutil.walk_packages(executor.__path__, "pveplan.executor."):
        module = importlib.import_module(info.name)
        found += [
            obj
            for obj in vars(module).values()
            if inspect.isclass(obj)
            and issubclass(obj, BaseException)
            and obj.__module__ == module.__name__
        ]
    return found


def test_every_executor_exception_derives_from_executor_error() -> None:
    classes = _exception_classes()
    assert len(classes) >= 16  # the walk found them (PveError, StepFailed, ChannelError, ...)
    outside = [
        f"{c.__module__}.{c.__qualname__}" for c in classes if not issubclass(c, ExecutorError)
    ]
    assert outside == []


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
