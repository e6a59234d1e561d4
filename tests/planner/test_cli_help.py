"""Help that teaches: every command's `--help` has examples that work and names the
environment variables it reads, from one table that also covers every variable the
sources read and that docs/cli.md holds verbatim."""

from __future__ import annotations

import argparse
import ast
import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pveplan.cli._app import build_parser
from pveplan.cli._environment import ENVIRONMENT, environment_markdown, variables_for

from ..cli_runner import run_cli

ROOT = Path(__file__).resolve().parent.parent.parent
PACKAGES = ("dsl", "planner", "executor", "store", "sim")
SHELL_SYNTAX = ("|", ">", "<", "&&", "#")


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command and action parser, with the words that reach it (`("store", "gc")`)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from commands(sub, (*path, name))


ALL_COMMANDS = [words for words, _ in commands(build_parser())]


def section(help_text: str, title: str) -> list[str]:
    """The indented lines under `title:` in a help text."""
    lines = help_text.splitlines()
    start = lines.index(f"{title}:") + 1
    body = []
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        body.append(line.strip())
    return body


def examples_of(words: tuple[str, ...]) -> list[str]:
    code, out, _ = run_cli([*words, "--help"])
    assert code == 0
    return section(out, "examples")


def pveplan_argv(example: str) -> list[str] | None:
    """The pveplan arguments of an example line, without its shell redirections and
    comments; None when the line runs something else (`source <(...)`)."""
    words = shlex.split(example, comments=True)
    cut = next((i for i, w in enumerate(words) if w in SHELL_SYNTAX), len(words))
    words = words[:cut]
    return words[1:] if words and words[0] == "pveplan" else None


@pytest.mark.parametrize("words", ALL_COMMANDS, ids=" ".join)
def test_every_command_help_has_examples_and_its_environment(words: tuple[str, ...]) -> None:
    code, out, _ = run_cli([*words, "--help"])
    assert code == 0
    examples = section(out, "examples")
    if len(words) == 1:
        assert 2 <= len(examples) <= 4, examples
    assert examples and all("pveplan" in line for line in examples)
    named = [line.split()[0] for line in section(out, "environment") if line.split()[0].isupper()]
    assert named == [name for name, _ in variables_for(words[0])]
    assert "NO_COLOR" in named  # main() reads it for every command


def test_each_command_lists_only_what_it_reads() -> None:
    """The table is per command: the store's variables are not fmt's, the driver key is
    apply's and not validate's, pull nodes' sysroot is config's and not apply's."""
    assert [name for name, _ in variables_for("fmt")] == ["NO_COLOR"]
    assert "PVEPLAN_STORE" in dict(variables_for("plan"))
    assert "PVEPLAN_DRIVER_KEY" in dict(variables_for("apply"))
    assert "PVEPLAN_DRIVER_KEY" not in dict(variables_for("validate"))
    assert "PVEPLAN_SYSROOT" in dict(variables_for("config"))
    assert "PVEPLAN_SYSROOT" not in dict(variables_for("apply"))
    assert "HOMESTAK_SITE_CONFIG" not in dict(variables_for("store"))


def test_every_example_parses() -> None:
    """A renamed or removed flag breaks the example that uses it, here."""
    parser = build_parser()
    seen = 0
    for words in ALL_COMMANDS:
        for example in examples_of(words):
            argv = pveplan_argv(example)
            if argv is None:
                continue
            seen += 1
            try:
                parser.parse_args(argv)
            except SystemExit:
                pytest.fail(f"`pveplan {' '.join(words)} --help` example does not parse: {example}")
    assert seen > 40


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of examples/ with a private, empty store: where a reader pastes examples."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.setenv("PVEPLAN_STORE", str(tmp_path / "store"))
    monkeypatch.delenv("HOMESTAK_SITE_CONFIG", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    return tmp_path


def test_the_examples_that_touch_no_host_run(workdir: Path) -> None:
    """In the order a reader meets them: plan writes n2.json, show and graph read it,
    keygen makes the key that sign uses."""
    ran = []
    for command in ("validate", "fmt", "plan", "show", "graph", "schema", "keygen", "sign"):
        for example in examples_of((command,)):
            argv = pveplan_argv(example)
            if argv is None or argv[0] != command or "<" in example or "|" in example:
                continue  # another command's line, or one that needs a pipe
            code, _, err = run_cli(argv, cwd=workdir)
            allowed = {0, 2} if "--detailed-exitcode" in argv else {0}
            assert code in allowed, f"{example}\n{err}"
            ran.append(command)
    assert set(ran) == {"validate", "fmt", "plan", "show", "graph", "schema", "keygen", "sign"}
    assert (workdir / "n2.json").is_file() and (workdir / "approver.pub").is_file()


# -- the environment table covers what the sources read ------------------------------------


def env_reads(tree: ast.Module) -> tuple[set[str], list[int]]:
    """Variable names a module reads (`env.get("X")`, `os.environ["X"]`, `"X" in environ`,
    `getenv("X")`), resolving module constants and loops over them; the lines of reads
    whose name it cannot tell."""
    constants: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
            if isinstance(target, ast.Name):
                found = strings(value)
                if found is not None:
                    constants[target.id] = found
    loops: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.For)
            and isinstance(node.target, ast.Name)
            and isinstance(node.iter, ast.Name)
            and node.iter.id in constants
        ):
            loops.setdefault(node.target.id, []).extend(constants[node.iter.id])

    def resolve(expr: ast.expr) -> list[str] | None:
        direct = strings(expr)
        if direct is not None:
            return direct
        if isinstance(expr, ast.Name):
            return constants.get(expr.id) or loops.get(expr.id)
        return None

    names: set[str] = set()
    unknown: list[int] = []
    for node in ast.walk(tree):
        read: ast.expr | None = None
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in ("get", "pop", "setdefault"):
                read = node.args[0] if is_environment(func.value) else None
            elif (isinstance(func, ast.Attribute) and func.attr == "getenv") or (
                isinstance(func, ast.Name) and func.id == "getenv"
            ):
                read = node.args[0]
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            read = node.slice if is_environment(node.value) else None
        elif isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.In | ast.NotIn):
            read = node.left if is_environment(node.comparators[0]) else None
        if read is None:
            continue
        found = resolve(read)
        if found is None:
            unknown.append(node.lineno)
        else:
            names.update(found)
    return names, unknown


def strings(expr: ast.expr) -> list[str] | None:
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return [expr.value]
    if isinstance(expr, ast.Tuple | ast.List):
        items = [strings(e) for e in expr.elts]
        if items and all(i is not None for i in items):
            return [s for i in items for s in i or ()]
    return None


def is_environment(expr: ast.expr) -> bool:
    """`os.environ`, `environ`, `env`, `console.env`, `self.env`: what holds the environment."""
    name = expr.attr if isinstance(expr, ast.Attribute) else getattr(expr, "id", None)
    return name in ("environ", "env")


def source_env_reads() -> tuple[dict[str, str], list[str]]:
    """{variable: first place read} over the packages, and the reads no name was found for."""
    where: dict[str, str] = {}
    unknown: list[str] = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            names, lines = env_reads(ast.parse(path.read_text(), str(path)))
            rel = path.relative_to(ROOT)
            for name in names:
                where.setdefault(name, str(rel))
            unknown += [f"{rel}:{line}" for line in lines]
    return where, unknown


def test_every_variable_the_sources_read_is_in_the_table() -> None:
    where, unknown = source_env_reads()
    # The scan sees literals, module constants, and loops over them:
    assert where.keys() >= {"PVEPLAN_STORE", "HOMESTAK_SITE_CONFIG", "PVEPLAN_SIM_RUNCMD_LIMIT"}
    missing = {name: place for name, place in where.items() if name not in ENVIRONMENT}
    assert missing == {}, "add these to cli/_environment.py's ENVIRONMENT"
    assert unknown == [], "read the environment with a literal name or a module constant"


def test_the_scan_finds_each_kind_of_read() -> None:
    code = (
        "import os\nA = 'VIA_CONSTANT'\nMANY = ('IN_LOOP',)\n"
        "def f(env, console):\n"
        "    env.get('LITERAL'); os.environ['SUBSCRIPT']; os.getenv('GETENV')\n"
        "    console.env.get(A); 'COMPARED' in os.environ\n"
        "    for name in MANY:\n        os.environ.get(name)\n"
        "    env['WRITTEN'] = '1'\n    env.get(whatever)\n"
    )
    names, unknown = env_reads(ast.parse(code))
    assert names == {"LITERAL", "SUBSCRIPT", "GETENV", "VIA_CONSTANT", "COMPARED", "IN_LOOP"}
    assert unknown == [10]


def test_docs_cli_md_holds_the_table_and_the_readme_links_it() -> None:
    docs = (ROOT / "docs" / "cli.md").read_text()
    assert environment_markdown() in docs
    assert "](docs/cli.md)" in (ROOT / "README.md").read_text()
