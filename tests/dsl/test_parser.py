"""Parsing: syntax errors say where and what was expected; absurd input fails cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest

from pveplan.dsl import DslError
from pveplan.dsl import _ast as A
from pveplan.dsl._parser import MAX_DEPTH, parse, parse_expr

from .conftest import errors_of


def test_precedence_and_associativity() -> None:
    e = parse_expr("1 + 2 * 3 - 4", "t")
    assert e == A.BinOp(
        "-", A.BinOp("+", A.IntLit(1), A.BinOp("*", A.IntLit(2), A.IntLit(3))), A.IntLit(4)
    )
    assert parse_expr("not a and b or c", "t") == A.BinOp(
        "or", A.BinOp("and", A.UnaryOp("not", A.Var("a")), A.Var("b")), A.Var("c")
    )


def test_postfix_chains() -> None:
    assert parse_expr("f(1)(2).x[0]", "t") == A.Index(
        A.Attr(A.Call(A.Call(A.Var("f"), (A.IntLit(1),)), (A.IntLit(2),)), "x"), A.IntLit(0)
    )


def test_string_escapes_and_interpolation() -> None:
    e = parse_expr('"a\\tb\\"c\\${d}${n + 1}\\u{263A}"', "t")
    assert e == A.StrLit(('a\tb"c${d}', A.BinOp("+", A.Var("n"), A.IntLit(1)), "\u263a"))


def test_positions_are_recorded() -> None:
    module, comments = parse('let x = 1\n# note\nmanifest "m" {\n  a = [1,\n 2]\n}\n', "t.pvp")
    block = module.items[1]
    assert isinstance(block, A.ManifestBlock)
    assert block.span == (3, 1, 6, 2)
    field = block.body.items[0]
    assert field.span == (4, 3, 5, 4)
    assert [(c.line, c.col, c.text) for c in comments] == [(2, 1, "# note")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('manifest "m" {\n  a = \n}\n', "3:1: unexpected '}'"),
        ('manifest "m" {\n  a = 1 +\n', "unexpected end of file"),
        ('manifest "m" { a = @ }\n', "1:20: unexpected character '@'"),
        ('manifest "m" { a = "open\n}\n', "1:20: unterminated or malformed string"),
        ('manifest "m" { a = "${"x"}" }\n', "1:21: unterminated ${ in string"),
        ('manifest "m" { a = "bad \\q" }\n', "unknown escape \\q"),
        ('manifest "m" { a = "${}" }\n', "empty interpolation"),
        ('manifest "m" { a = "${1 +}" }\n', "invalid expression in ${...}"),
        ('manifest "m" { a = fn(x, x) => x }\n', "same parameter twice"),
        ('import "${x}.pvp" as y\n', "an import path cannot use ${...}"),
    ],
)
def test_syntax_errors(tmp_path: Path, text: str, expected: str) -> None:
    found = errors_of(tmp_path, "m.pvp", text)
    assert expected in found[0], found


def test_syntax_error_names_what_was_expected(tmp_path: Path) -> None:
    found = errors_of(tmp_path, "m.pvp", 'manifest "m" {\n  node edge {}\n}\n')
    assert found[0].startswith("2:8: unexpected 'edge' | expected a string")


@pytest.mark.parametrize("opener", ["[", "-", "not ", "{ a = ", "f("])
def test_deep_nesting_fails_with_a_position(opener: str) -> None:
    closer = {"[": "]", "-": "", "not ": "", "{ a = ": "}", "f(": ")"}[opener]
    text = "let x = " + opener * 5000 + "1" + closer * 5000 + "\n"
    with pytest.raises(DslError) as info:
        parse(text, "deep.pvp")
    assert f"nested more than {MAX_DEPTH} levels deep" in info.value.summary
    assert info.value.location is not None and info.value.location.line == 1


def test_long_left_chains_are_bounded_too() -> None:
    with pytest.raises(DslError) as info:
        parse("let x = " + " + ".join(["1"] * 5000) + "\n", "chain.pvp")
    assert "nested more than" in info.value.summary


def test_redundant_parentheses_leave_no_depth() -> None:
    module, _ = parse("let x = " + "(" * 5000 + "1" + ")" * 5000 + "\n", "parens.pvp")
    assert module.items[0] == A.Let("x", A.IntLit(1))


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ('"\\u0041\\u{1F600}\\ud83d\\ude00"', "A\U0001f600\U0001f600"),
        ('"\\/\\b\\f"', "/\b\f"),
    ],
)
def test_json_string_escapes(literal: str, value: str) -> None:
    assert parse_expr(literal, "t") == A.StrLit((value,))


@pytest.mark.parametrize(
    "literal", ['"\\ud800"', '"\\u{d800}"', '"\\u{110000}"', '"\\u{+1f}"', '"\\u12"']
)
def test_bad_unicode_escapes_are_errors(literal: str) -> None:
    with pytest.raises(DslError) as info:
        parse_expr(literal, "t")
    assert info.value.summary.startswith("bad unicode escape")
