"""`pveplan fmt`: golden cases, and the properties every layout must keep."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pveplan.dsl._formatter import format_source
from pveplan.dsl._parser import parse
from tests._tiers import examples

from .strategies import messy, programs

CASES = Path(__file__).parent / "cases"


def _cases() -> list[Path]:
    return sorted(CASES.glob("*.in.pvp"))


@pytest.mark.parametrize("source", _cases(), ids=lambda p: p.name.removesuffix(".in.pvp"))
def test_golden(source: Path) -> None:
    expected = source.with_name(source.name.replace(".in.pvp", ".out.pvp")).read_text()
    assert format_source(source.read_text(), str(source)) == expected


@pytest.mark.parametrize("source", _cases(), ids=lambda p: p.name.removesuffix(".in.pvp"))
def test_golden_output_is_canonical(source: Path) -> None:
    expected = source.with_name(source.name.replace(".in.pvp", ".out.pvp")).read_text()
    assert format_source(expected) == expected


def _comments(text: str) -> list[str]:
    return sorted(c.text for c in parse(text, "t.pvp")[1])


@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_messy_layout_parses_to_the_generated_tree(data: st.DataObject) -> None:
    module = data.draw(programs)
    source = data.draw(messy(module))
    assert parse(source, "t.pvp")[0] == module


@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fmt_keeps_the_program_and_is_idempotent(data: st.DataObject) -> None:
    source = data.draw(messy(data.draw(programs)))
    formatted = format_source(source)
    assert parse(formatted, "t.pvp")[0] == parse(source, "t.pvp")[0]
    assert format_source(formatted) == formatted


@settings(max_examples=examples(80), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fmt_keeps_every_comment(data: st.DataObject) -> None:
    source = data.draw(messy(data.draw(programs)))
    assert _comments(format_source(source)) == _comments(source)


def test_comment_after_one_line_block_stays_with_the_block() -> None:
    source = 'manifest "m" {\n  node "a" { type = "vm"  image = "x" }  # the a node\n}\n'
    assert format_source(source) == (
        'manifest "m" {\n  node "a" {\n    type = "vm"\n    image = "x"\n  }  # the a node\n}\n'
    )


def test_comment_inside_an_inline_expression_moves_above_its_statement() -> None:
    source = 'manifest "m" {\n  x = f(1,  # one\n    2)\n}\n'
    assert format_source(source) == 'manifest "m" {\n  # one\n  x = f(1, 2)\n}\n'


def test_blank_lines_collapse_to_one_and_none_open_a_block() -> None:
    source = 'manifest "m" {\n\n\n  a = 1\n\n\n\n  b = 2\n}\n'
    assert format_source(source) == 'manifest "m" {\n  a = 1\n\n  b = 2\n}\n'


def test_long_record_breaks_into_lines_and_short_one_stays_inline() -> None:
    short = "let r = {a=1,b=2}\n"
    assert format_source(short) == "let r = { a = 1, b = 2 }\n"
    long = 'let r = {preset="vm-large", image="debian-13-pve", disk=64, cores=8, memory=16384}\n'
    assert format_source(long).count("\n") == 7


def test_parentheses_only_where_precedence_needs_them() -> None:
    source = "let x = ((1 + 2)) * (3) - (4 - 5) - -(1)\nlet y = (a and b) or (not c)\n"
    assert format_source(source) == "let x = (1 + 2) * 3 - (4 - 5) - -1\nlet y = a and b or not c\n"


def test_strings_are_escaped_canonically() -> None:
    source = 'let s = "tab\\there \\u{41} \\${literal} ${n + 1}"\n'
    assert format_source(source) == 'let s = "tab\\there A \\${literal} ${n + 1}"\n'
