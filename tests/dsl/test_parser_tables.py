"""The shipped LALR tables (`grammar.tables`): current, read as the built parser reads,
and ignored when stale or damaged (the parser is then built from the grammar)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pveplan.dsl import DslError
from pveplan.dsl._lexer import FastLexer
from pveplan.dsl._parser import _Build, build_parser
from pveplan.dsl._tables import GRAMMAR, TABLES, load_tables, serialize
from tests._tiers import examples

from .strategies import messy, programs

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").rglob("*.pvp"))


def _loaded() -> tuple[object, _Build]:
    builder = _Build()
    parser = load_tables(GRAMMAR.read_text(), FastLexer, builder)
    assert parser is not None, "grammar.tables is stale: run python -m pveplan.dsl._tables"
    parser.parser.lexer.comment_sink = builder.comment
    return parser, builder


def _parse(pair: tuple[object, _Build], text: str) -> object:
    parser, builder = pair
    builder.begin(text, "t.pvp")
    try:
        return parser.parse(text, start="start"), builder.end()  # type: ignore[attr-defined]
    except Exception as exc:  # a syntax error: compare its kind and where lark says
        builder.end()
        return type(exc).__name__, getattr(exc, "line", None), getattr(exc, "column", None)


def test_the_shipped_tables_are_those_of_the_grammar() -> None:
    _loaded()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_shipped_tables_parse_every_example_as_the_built_parser(path: Path) -> None:
    text = path.read_text()
    built, loaded = build_parser(GRAMMAR.read_text()), _loaded()
    assert _parse(loaded, text) == _parse(built, text)
    for cut in range(0, len(text), max(1, len(text) // 25)):  # syntax errors too
        assert _parse(loaded, text[:cut]) == _parse(built, text[:cut])


_BUILT = build_parser(GRAMMAR.read_text())


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_shipped_tables_parse_random_programs_as_the_built_parser(data: st.DataObject) -> None:
    source = data.draw(messy(data.draw(programs)))
    cut = data.draw(st.integers(0, len(source)))
    for text in (source, source[:cut]):
        assert _parse(_loaded(), text) == _parse(_BUILT, text)


def test_stale_or_damaged_tables_are_ignored(tmp_path: Path) -> None:
    grammar = GRAMMAR.read_text()
    good = serialize(_BUILT[0], grammar)
    path = tmp_path / "grammar.tables"
    path.write_bytes(good)
    assert load_tables(grammar, FastLexer, _Build(), path) is not None
    assert load_tables(grammar + "\n// edited\n", FastLexer, _Build(), path) is None
    path.write_bytes(good[: len(good) // 2])  # truncated
    assert load_tables(grammar, FastLexer, _Build(), path) is None
    assert load_tables(grammar, FastLexer, _Build(), tmp_path / "missing") is None


def test_tables_that_name_code_are_refused(tmp_path: Path) -> None:
    """The pickle is read as plain data: one that names a class or function is not loaded."""
    import pickle

    grammar = GRAMMAR.read_text()
    head = TABLES.read_bytes().partition(b"\n")[0]
    path = tmp_path / "grammar.tables"
    path.write_bytes(head + b"\n" + pickle.dumps({"data": DslError, "memo": {}}))
    assert load_tables(grammar, FastLexer, _Build(), path) is None
