"""The CLI renders every package's error root in one place (`cli/_app.py:run`).

A user's mistake from any package is one message and exit 1; anything else (a bug) keeps
its traceback. Each case runs a real command whose body raises that package's error.
"""

from __future__ import annotations

import argparse
import io
import types
from pathlib import Path

import pytest

from pveplan.cli import Console
from pveplan.cli import _app as app
from pveplan.dsl import DslError
from pveplan.executor import StepFailed
from pveplan.executor.pve import PveError
from pveplan.planner import PlanError, SpecError
from pveplan.sim import SimError
from pveplan.store import StoreError


def _run_raising(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> tuple[int, str]:
    def boom(args: argparse.Namespace, console: Console) -> int:
        raise error

    module = types.ModuleType("pveplan.cli._boom")
    module.run_boom = boom  # type: ignore[attr-defined]
    monkeypatch.setitem(app.COMMANDS, "boom", ("pveplan.cli._boom", "run_boom"))
    monkeypatch.setitem(__import__("sys").modules, "pveplan.cli._boom", module)
    err = io.StringIO()
    console = Console(out=io.StringIO(), err=err, env={}, cwd=Path.cwd())
    code = app.run(argparse.Namespace(command="boom"), console)
    return code, err.getvalue()


@pytest.mark.parametrize(
    "error",
    [
        DslError.at(None, "no such preset 'big'"),
        PlanError.at(None, "host 'father' has no node file"),
        SpecError("the spec names user 'Root!', which is not a user name"),
        StoreError("the store is damaged", "run `pveplan store verify`"),
        StepFailed("VM 100 did not get an address"),
        PveError("create VM 100: storage 'local-zfs' does not exist"),
        SimError("cannot start the simulator daemon"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_each_packages_root_is_one_message_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    code, err = _run_raising(monkeypatch, error)
    assert code == 1
    assert str(error).splitlines()[0].split(": ")[-1] in err
    assert "Traceback" not in err


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ZeroDivisionError):
        _run_raising(monkeypatch, ZeroDivisionError("a bug"))
