"""The import contract: which package may import which, and only through public names.

DESIGN.md's dependency rules, encoded so they stay true: `dsl` and `store` import nothing
of ours; `planner` imports `dsl` and `store`; `executor` imports `store` and the planner;
`sim` imports nothing of ours but the executor's public key helper; only `cli` sees
everything. Across packages an import names a package (or a public subpackage) and public
names only: `from pveplan.executor import run_workspace`, never
`pveplan.executor._run` or `from pveplan.planner import _hashing`. The same holds for
module paths written as strings (`-m pveplan.sim._daemon`, `importlib.import_module`), since
those are imports too.

The checker reads source with `ast` (nothing is imported), so it also runs on a
synthetic tree: the tests below show it catches each kind of breach.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

ALLOWED: dict[str, frozenset[str]] = {
    "dsl": frozenset(),
    "store": frozenset(),
    "planner": frozenset({"dsl", "store"}),
    "executor": frozenset({"store", "planner", "dsl"}),
    "sim": frozenset({"executor"}),
    "cli": frozenset({"dsl", "store", "planner", "executor", "sim"}),
}
"""Package -> the packages it may import. `executor` may name `dsl` only for the error
types the planner's plan model carries (DiagnosticError is the root PlanError derives from)."""

NARROW: dict[tuple[str, str], frozenset[str]] = {
    ("sim", "executor"): frozenset({"generate_ed25519", "public_line"}),
}
"""(importer, imported) -> the only names the importer may take from it."""

MODULE_PATH = re.compile(r"\bpveplan(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def _package_of(path: Path, root: Path) -> str | None:
    top = path.relative_to(root).parts[0]
    return top if top in ALLOWED else None


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _imports(tree: ast.AST) -> list[tuple[int, str, tuple[str, ...], bool]]:
    """(line, module, names, in_text) for every absolute import, and every module path
    written in a string (`in_text`: a name in a string may be data, such as the list of
    packages a bundle ships, so only the privacy rule applies to it)."""
    found: list[tuple[int, str, tuple[str, ...], bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, (), False) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module, tuple(a.name for a in node.names), False))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found += [(node.lineno, m, (), True) for m in MODULE_PATH.findall(node.value)]
    return found


def violations(root: Path) -> list[str]:
    """Every breach of the contract in the packages under `root`, as `file:line: why`."""
    found: list[str] = []
    for package in ALLOWED:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for line, module, names, in_text in _imports(tree):
                parts = module.split(".")
                if parts[0] != "pveplan" or len(parts) < 2 or parts[1] == package:
                    continue
                where = f"{path.relative_to(root)}:{line}"
                target = parts[1]
                if target not in ALLOWED:
                    continue  # `pveplan` itself, or text that only looks like a path
                if target not in ALLOWED[package] and not in_text:
                    found.append(f"{where}: {package} must not import {target} ({module})")
                    continue
                private = [p for p in (*parts[2:], *names) if _is_private(p)]
                if private:
                    found.append(f"{where}: private {', '.join(private)} (from {module})")
                narrow = NARROW.get((package, target))
                if narrow and not in_text and (len(parts) > 2 or not set(names) <= narrow):
                    found.append(f"{where}: {package} may take only {sorted(narrow)} from {target}")
    return found


def test_the_packages_keep_the_contract() -> None:
    assert violations(ROOT) == []


def test_every_package_of_the_contract_exists() -> None:
    assert all((ROOT / package / "__init__.py").is_file() for package in ALLOWED)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for package in ALLOWED:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("name", "text", "why"),
    [
        ("cli/_a.py", "from pveplan.executor._run import run_workspace\n", "private"),
        ("cli/_a.py", "from pveplan.planner import _hashing\n", "private"),
        ("cli/_a.py", "import pveplan.executor.remote._bundle\n", "private"),
        ("cli/_a.py", "ARGV = ['python3', '-m', 'pveplan.sim._daemon']\n", "private"),
        ("executor/_a.py", "from pveplan.cli import main\n", "must not import cli"),
        ("planner/_a.py", "from pveplan.executor import execute\n", "must not import executor"),
        ("dsl/_a.py", "from pveplan.store import Store\n", "must not import store"),
        ("store/_a.py", "from pveplan.planner import Plan\n", "must not import planner"),
        ("sim/_a.py", "from pveplan.executor import run_workspace\n", "may take only"),
        ("sim/_a.py", "from pveplan.planner import Plan\n", "must not import planner"),
    ],
)
def test_the_checker_catches_each_breach(tmp_path: Path, name: str, text: str, why: str) -> None:
    found = violations(_tree(tmp_path, {name: text}))
    assert len(found) == 1 and why in found[0], found


def test_the_checker_allows_what_the_layering_allows(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "cli/_a.py": "from pveplan.executor import run_workspace\nfrom pveplan.sim import up\n",
            "executor/_a.py": "from pveplan.planner import Plan\nfrom pveplan.store import Store\n",
            "planner/_a.py": "from pveplan.dsl import Manifest\nfrom ._own import _private\n",
            "sim/_a.py": "from pveplan.executor import generate_ed25519\n",
            "store/_a.py": "from pveplan.store._schema import migrate\n",
        },
    )
    assert violations(root) == []


MAX_MODULE_LINES = 600


def test_no_module_is_over_600_lines() -> None:
    """Small modules with one job: a module past the limit is split by concern."""
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for package in ALLOWED
        for path in (ROOT / package).rglob("*.py")
    }
    assert {path: n for path, n in sizes.items() if n > MAX_MODULE_LINES} == {}
