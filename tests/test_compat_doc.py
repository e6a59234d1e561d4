"""docs/homestak-compat.md stays true: every "same" names a test that exists, every hint
points at a section that exists.

The doc is the one place listing each form of homestak's iac-driver (verb, noun, flag,
scenario, report field, site-config form, ...) with what pveplan does with it, in tables
`iac-driver | pveplan | why | test`. A row whose pveplan cell starts with "same" claims
pveplan behaves as iac-driver does, and that claim is only as good as the test that shows
it: its test cell names one or more `tests/PATH.py::NAME` (or `::Class::NAME`), and each must
exist. A reference followed by `(pending BRANCH)` is a test that branch brings and may be
missing until it is merged; `test_pending_references_are_listed` prints each with whether
it exists now, so that the markers are dropped after the merge and the rule holds again.

Code and docs point users at the doc with `hint: ... (see docs/homestak-compat.md#ANCHOR)`:
each such anchor must be a heading of the doc, or the hint sends the user nowhere.

Everything is read as text and with `ast`: no test module is imported, so a reference to
a test that would fail to import (or to a slow one) costs nothing here.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "homestak-compat.md"

SECTIONS = (
    "verbs",
    "nouns",
    "flags",
    "scenarios",
    "reports",
    "preflight",
    "site-config",
    "secrets",
    "tokens",
    "destroy",
)
"""The anchors every helper's hints use (fixed by the team brief)."""

HEADER = ("iac-driver", "pveplan", "why", "test")
TEST_REF = re.compile(
    r"(tests/[\w/]+\.py)::([\w:]+)(?:\[[^\]]*\])?`?(?:\s*\(pending ([\w./-]+)\))?"
)
ANCHOR_USE = re.compile(r"homestak-compat\.md#([A-Za-z0-9_-]+)")
CODE_DIRS = ("cli", "planner", "executor", "dsl", "store", "sim", "pveplan", "tools")


def slug(heading: str) -> str:
    """The anchor GitHub (and most markdown renderers) give a heading: lower case,
    punctuation dropped, spaces made hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


class Row:
    """One table row of the doc, with the section (anchor) it sits in and its line."""

    def __init__(self, section: str, line: int, cells: list[str]) -> None:
        self.section, self.line, self.cells = section, line, cells

    @property
    def same(self) -> bool:
        return self._pveplan.startswith("same")

    @property
    def pointer(self) -> bool:
        """A row that only sends the reader to another section ("see [tokens](#tokens)")."""
        return self._pveplan.startswith("see ")

    @property
    def _pveplan(self) -> str:
        return re.sub(r"^[*_`\s]+", "", self.cells[1]).lower()

    def where(self) -> str:
        return f"docs/homestak-compat.md:{self.line} ({self.cells[0][:60]})"


def split_cells(line: str) -> list[str]:
    """A markdown table line's cells; `\\|` inside a cell is not a separator."""
    inner = line.strip()[1:-1] if line.strip().endswith("|") else line.strip()[1:]
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", inner)]


@cache
def parse(text: str) -> tuple[tuple[str, ...], tuple[Row, ...]]:
    """The doc's heading anchors (in order) and the rows of its compat tables."""
    anchors: list[str] = []
    rows: list[Row] = []
    section = ""
    in_fence = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        heading = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if heading:
            anchors.append(slug(heading.group(2)))
            if len(heading.group(1)) == 2:
                section = anchors[-1]
            continue
        if not line.lstrip().startswith("|"):
            continue
        cells = split_cells(line)
        if [c.lower() for c in cells] == list(HEADER) or all(
            re.fullmatch(r":?-{3,}:?", c) for c in cells
        ):
            continue
        rows.append(Row(section, number, cells))
    return tuple(anchors), tuple(rows)


def doc() -> tuple[tuple[str, ...], tuple[Row, ...]]:
    return parse(DOC.read_text(encoding="utf-8"))


@cache
def defined_tests(path: str) -> frozenset[str]:
    """The `name` and `Class::name` of every test function and class in a test file,
    found with ast (nothing imported)."""
    file = ROOT / path
    if not file.is_file():
        return frozenset()
    tree = ast.parse(file.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(f"{node.name}::{item.name}")
    return frozenset(names)


def references(row: Row) -> list[tuple[str, str, str | None]]:
    """(file, test, pending branch or None) for every test a row's test cell names."""
    return [(m[1], m[2], m[3]) for m in TEST_REF.finditer(row.cells[3])]


def missing_tests(rows: Iterable[Row]) -> list[str]:
    """Every named test that does not exist and is not excused as pending."""
    return [
        f"{row.where()}: {path}::{name}"
        for row in rows
        for path, name, branch in references(row)
        if name not in defined_tests(path) and not branch
    ]


def test_the_doc_has_its_ten_sections_in_order() -> None:
    anchors, _ = doc()
    assert [a for a in anchors if a in SECTIONS] == list(SECTIONS)


def test_every_row_has_four_cells_and_says_what_pveplan_does() -> None:
    _, rows = doc()
    assert len(rows) > 100, "the inventory lost its rows"
    bad = [r.where() for r in rows if len(r.cells) != 4 or not r.cells[0] or not r.cells[1]]
    assert not bad, f"rows that are not `iac-driver | pveplan | why | test`: {bad}"
    outside = [r.where() for r in rows if r.section not in SECTIONS]
    assert not outside, f"rows outside the ten sections: {outside}"


def test_every_same_row_names_a_test_that_exists() -> None:
    _, rows = doc()
    missing: list[str] = []
    for row in rows:
        if not row.same:
            continue
        refs = references(row)
        if not refs:
            missing.append(f"{row.where()}: says same, names no test")
    missing += missing_tests(r for r in rows if r.same)
    assert not missing, "\n".join(missing)


def test_every_named_test_exists_or_is_pending() -> None:
    """Rows that differ name tests too (the test that shows the difference): the same rule."""
    _, rows = doc()
    missing = missing_tests(rows)
    assert not missing, "tests named but not found:\n" + "\n".join(missing)


def test_every_difference_says_why() -> None:
    _, rows = doc()
    silent = [
        r.where()
        for r in rows
        if not (r.same or r.pointer) and len(r.cells) == 4 and not r.cells[2]
    ]
    assert not silent, f"rows where pveplan differs without a why: {silent}"


def test_pending_references_are_listed() -> None:
    """Prints every pending reference (`pytest -rP`) with whether it exists now, so the
    markers can be dropped once their branches are merged."""
    _, rows = doc()
    marked = 0
    for row in rows:
        for path, name, branch in references(row):
            if branch:
                marked += 1
                state = "exists" if name in defined_tests(path) else "not here yet"
                print(f"pending {branch}: {path}::{name} ({state})")
    written = sum(row.cells[3].count("(pending ") for row in rows if len(row.cells) == 4)
    assert marked == written, "a `(pending ...)` marker that follows no test reference"


def anchor_uses() -> list[tuple[str, str]]:
    """(where, anchor) for every `homestak-compat.md#ANCHOR` in the code and the docs."""
    files = [p for d in CODE_DIRS for p in (ROOT / d).rglob("*.py")]
    files += [*(ROOT / "docs").glob("*.md"), ROOT / "README.md"]
    uses = []
    for file in files:
        text = file.read_text(encoding="utf-8")
        for match in ANCHOR_USE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            uses.append((f"{file.relative_to(ROOT)}:{line}", match.group(1)))
    return uses


def test_every_hint_names_an_anchor_of_the_doc() -> None:
    anchors, _ = doc()
    dangling = [f"{where}: #{a}" for where, a in anchor_uses() if a not in anchors]
    assert not dangling, "hints pointing at no heading of the doc:\n" + "\n".join(dangling)


def test_the_readme_and_concepts_link_the_doc() -> None:
    for page, link in (
        ("README.md", "docs/homestak-compat.md"),
        ("docs/concepts.md", "homestak-compat.md"),
    ):
        assert f"]({link}" in (ROOT / page).read_text(encoding="utf-8"), page


# The checker checks itself on a small made-up doc.

SAMPLE = """\
# title

## Verbs

| iac-driver | pveplan | why | test |
|---|---|---|---|
| `create` | same | | `tests/test_compat_doc.py::test_slug_follows_github` |
| `x` | same: more | | `tests/nowhere.py::test_gone` (pending i21-x) |
| `y` | differs | safer | `tests/test_compat_doc.py::TestNope::test_gone` |

```
| not | a | row | here |
```

## Site config

| `a \\| b` | refused | clearer | |
"""


def test_the_parser_reads_anchors_rows_and_pending_marks() -> None:
    anchors, rows = parse(SAMPLE)
    assert anchors == ("title", "verbs", "site-config")
    assert [(r.section, r.same) for r in rows] == [
        ("verbs", True),
        ("verbs", True),
        ("verbs", False),
        ("site-config", False),
    ]
    assert rows[3].cells[0] == "`a | b`"
    assert references(rows[1]) == [("tests/nowhere.py", "test_gone", "i21-x")]
    assert references(rows[2]) == [("tests/test_compat_doc.py", "TestNope::test_gone", None)]
    assert "TestNope::test_gone" not in defined_tests("tests/test_compat_doc.py")
    # a missing test is reported unless it is marked pending
    assert [m.split(": ", 1)[1] for m in missing_tests(rows)] == [
        "tests/test_compat_doc.py::TestNope::test_gone"
    ]
    assert "test_slug_follows_github" in defined_tests("tests/test_compat_doc.py")


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Verbs", "verbs"),
        ("Site config", "site-config"),
        ("`--json-output` & co.", "--json-output--co"),
    ],
)
def test_slug_follows_github(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor
