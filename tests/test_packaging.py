"""One import namespace: the distribution installs `pveplan` and nothing else at the top.

`cli`, `dsl`, `planner`, `executor`, `store` and `sim` are folders of the repository, mapped into
`pveplan.*` by pyproject.toml; generic top-level names would clash with unrelated
packages of the same names and be shadowed by any such folder in the working directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {
    "cli": "pveplan.cli",
    "dsl": "pveplan.dsl",
    "planner": "pveplan.planner",
    "executor": "pveplan.executor",
    "store": "pveplan.store",
    "sim": "pveplan.sim",
}
OLD_NAMES = frozenset(FOLDERS)


def test_pyproject_lists_every_package_folder() -> None:
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {"pveplan"}
    for folder, package in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((package, *rel)))
    assert listed == found


def test_every_module_imports_under_pveplan_alone() -> None:
    """In a fresh interpreter outside the checkout (so no folder can stand in for a
    package), import every module; none may pull in an old top-level name."""
    code = (
        "import importlib, pkgutil, sys\n"
        "import pveplan\n"
        "names = []\n"
        f"for package in {sorted(FOLDERS.values())!r}:\n"
        "    module = importlib.import_module(package)\n"
        "    names += [m.name for m in pkgutil.walk_packages(module.__path__, package + '.')]\n"
        "for name in names:\n"
        "    if '._daemon' in name or name.endswith('__main__'):\n"
        "        continue\n"
        "    importlib.import_module(name)\n"
        f"leaked = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(OLD_NAMES)!r})\n"
        "print(len(names), leaked)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd="/", env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    count, leaked = result.stdout.split(" ", 1)
    assert int(count) > 50 and leaked.strip() == "[]", result.stdout


def test_no_test_imported_an_old_top_level_name() -> None:
    """Tests run from the checkout, where `import planner` would still find the folder:
    whatever the tests imported so far must be pveplan's own modules only."""
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in OLD_NAMES)
    assert leaked == []


@pytest.mark.slow  # builds in an isolated environment, as `pip wheel .` does
def test_the_wheel_holds_pveplan_alone(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = tmp_path.glob("pveplan-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    tops = {name.split("/")[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"pveplan"}
    assert "pveplan/dsl/grammar.lark" in names and "pveplan/planner/siteconfig/images.yaml" in names
    assert "pveplan/dsl/grammar.tables" in names  # the parser's LALR tables (dsl/_tables.py)
    assert not any(name.startswith(("pveplan/tests/", "tests/")) for name in names)
