"""The store's public API is its __init__'s __all__, and it imports nothing else of ours."""

from __future__ import annotations

import re
from pathlib import Path

from pveplan import store
from tests.test_exports import OURS


def test_every_exported_name_exists() -> None:
    assert [name for name in store.__all__ if not hasattr(store, name)] == []
    assert len(set(store.__all__)) == len(store.__all__)
    assert {
        "open_store",
        "store_path",
        "Store",
        "StoreError",
        "StepResult",
        "AppliedState",
        "Resource",
        "RunEvent",
        "RunRecord",
        "VerifyReport",
        "GcReport",
        "MIGRATIONS",
    } <= set(store.__all__)


def test_store_imports_nothing_else_of_pveplans() -> None:
    root = Path(store.__file__).parent
    offenders = [
        f"{path.name}: {line.strip()}"
        for path in root.glob("*.py")
        for line in path.read_text().splitlines()
        if re.match(OURS.format("dsl|planner|executor"), line)
    ]
    assert offenders == []


def test_private_modules_stay_small() -> None:
    for path in Path(store.__file__).parent.glob("_*.py"):
        assert len(path.read_text().splitlines()) <= 400, path.name
