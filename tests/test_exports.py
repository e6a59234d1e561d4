"""Each package's public API is what its __init__ exports, and every name there exists."""

from __future__ import annotations

import importlib

import pytest

OURS = r"\s*(from\s+pveplan\s+import\s+({0})\b|(from|import)\s+(pveplan\.)?({0})\b)"
"""An import of one of the named packages, in any of the forms they can be written."""


@pytest.mark.parametrize(
    "package", ["pveplan.dsl", "pveplan.planner", "pveplan.planner.siteconfig"]
)
def test_all_names_exist(package: str) -> None:
    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []
    assert len(set(module.__all__)) == len(module.__all__)


def test_dsl_public_api() -> None:
    from pveplan import dsl

    assert {
        "Manifest",
        "Node",
        "Settings",
        "Execution",
        "load_manifest",
        "DslError",
        "SourceMap",
    } <= set(dsl.__all__)


def test_dsl_lazy_table_matches_all() -> None:
    from pveplan import dsl

    assert sorted(dsl._EXPORTS) == sorted(dsl.__all__)


def test_dsl_imports_nothing_of_ours() -> None:
    import pathlib
    import re

    root = pathlib.Path(importlib.import_module("pveplan.dsl").__file__).parent
    offenders = [
        f"{path.name}: {line.strip()}"
        for path in root.glob("*.py")
        for line in path.read_text().splitlines()
        if re.match(OURS.format("planner|executor|store"), line)
    ]
    assert offenders == []


def test_version_is_fast_to_reach() -> None:
    """`pveplan --version` must not import lark, yaml or the evaluator."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom pveplan.planner.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('lark', 'yaml', 'pveplan.dsl._evaluator') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_executor_imports_only_the_planners_public_names() -> None:
    """DESIGN.md: the executor sees the planner's public plan model, never its private
    modules (`pveplan.planner._x`); what it needs is exported from `pveplan.planner`."""
    import pathlib
    import re

    root = pathlib.Path(importlib.import_module("pveplan.executor").__file__).parent
    offenders = [
        f"{path.relative_to(root)}: {line.strip()}"
        for path in root.rglob("*.py")
        for line in path.read_text().splitlines()
        if re.search(r"\bpveplan\.planner\._|\bfrom\s+\.\.+planner\._", line)
    ]
    assert offenders == []
