"""Fixtures shared by the planner tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "site-config"


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the example site config, with a store of its own and no
    HOMESTAK_SITE_CONFIG from the caller's environment (modules may define their own)."""
    target = tmp_path / "site-config"
    shutil.copytree(EXAMPLES, target)
    monkeypatch.setenv("PVEPLAN_STORE", str(tmp_path / "store"))
    monkeypatch.delenv("HOMESTAK_SITE_CONFIG", raising=False)
    return target
