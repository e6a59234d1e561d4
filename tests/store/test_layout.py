"""Where the store lives: PVEPLAN_STORE, else the XDG state directory, from a passed-in env."""

from __future__ import annotations

from pathlib import Path

import pytest

from pveplan.store import store_path


def test_pveplan_store_wins() -> None:
    env = {"PVEPLAN_STORE": "/srv/pveplan", "XDG_STATE_HOME": "/x", "HOME": "/home/u"}
    assert store_path(env) == Path("/srv/pveplan")


def test_xdg_state_home_comes_next() -> None:
    assert store_path({"XDG_STATE_HOME": "/x/state", "HOME": "/home/u"}) == Path("/x/state/pveplan")


def test_home_is_the_fallback() -> None:
    assert store_path({"HOME": "/home/u"}) == Path("/home/u/.local/state/pveplan")


def test_empty_or_relative_values_are_ignored() -> None:
    env = {"PVEPLAN_STORE": "", "XDG_STATE_HOME": "relative/state", "HOME": "/home/u"}
    assert store_path(env) == Path("/home/u/.local/state/pveplan")


def test_without_home_in_env_the_os_home_is_used() -> None:
    assert store_path({}) == Path.home() / ".local" / "state" / "pveplan"


def test_store_path_is_pure(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real environment plays no part: only the mapping passed in counts."""
    monkeypatch.setenv("PVEPLAN_STORE", "/should/not/be/read")
    monkeypatch.setenv("XDG_STATE_HOME", "/nor/this")
    assert store_path({"HOME": "/h"}) == Path("/h/.local/state/pveplan")
