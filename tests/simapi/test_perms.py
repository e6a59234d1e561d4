"""The permission each simulated method checks is the PVE 9.1 schema's (sim/_perms.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pveplan.sim import _rest  # noqa: F401  (registers every route)
from pveplan.sim._api import ROUTES
from pveplan.sim._perms import HANDLER_CHECKS, SCHEMA_CHECKS

SCHEMA = Path(__file__).resolve().parents[1] / "fixtures" / "pve" / "apidata-pve9.1.json"


def _schema_permissions() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}

    def walk(node: dict[str, Any]) -> None:
        for method, info in node.get("info", {}).items():
            found[f"{method} {node['path']}"] = info.get("permissions", {})
        for child in node.get("children", []):
            walk(child)

    for node in json.loads(SCHEMA.read_text()):
        walk(node)
    return found


def test_every_route_says_what_it_needs() -> None:
    missing = [f"{r.method} {r.template}" for r in ROUTES]
    assert [key for key in missing if key not in SCHEMA_CHECKS] == []


def test_the_checks_are_the_schemas() -> None:
    schema = _schema_permissions()
    for key, check in SCHEMA_CHECKS.items():
        assert key in schema, key
        assert check == schema[key].get("check"), key
        if check is None:
            assert schema[key].get("user") == "all", key


def test_handler_checks_fill_only_what_the_schema_leaves_open() -> None:
    assert all(SCHEMA_CHECKS[key] is None for key in HANDLER_CHECKS)
