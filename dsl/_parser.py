"""Text -> syntax tree for `.pvp` files, with positions, comments and bounded depth.

lark's LALR parser runs with the tree builder replaced by `_Build`, so each reduction
creates our AST node directly (no intermediate parse tree). Every node gets its span,
and a depth that lets us refuse absurdly nested input here, with a position, rather
than overflow the stack later in the evaluator or formatter.

lark is imported lazily: `pveplan --version` must not pay for building the parser.
"""

from __future__ import annotations

import threading
from typing import Any

from . import _ast as A
from ._errors import DslError, location_in_text
from ._strings import string_parts, string_value

MAX_DEPTH = 200

_local = threading.local()


def parse(text: str, file: str) -> tuple[A.Module, list[A.Comment]]:
    """Parse a whole `.pvp` file: its module and its comments (for the formatter)."""
    return _parse(text, file, "start")


def parse_expr(text: str, file: str) -> A.Expr:
    """Parse a single expression (used by tests and tools)."""
    return _parse(text, file, "expr")[0]


def _parse(text: str, file: str, start: str) -> tuple[Any, list[A.Comment]]:
    import lark

    parser, builder = _parser()
    builder.begin(text, file)
    try:
        tree = parser.parse(text, start=start)
    except DslError:
        raise
    except lark.exceptions.UnexpectedInput as exc:
        raise _syntax_error(exc, text, file) from None
    except RecursionError:
        raise DslError.at(
            location_in_text(file, text, 1, 1), "input is nested too deeply"
        ) from None
    finally:
        comments = builder.end()
    return tree, comments


def _parser() -> tuple[Any, _Build]:
    """One lark parser per thread (its comment list and transformer are per parse):
    from the shipped LALR tables when they match the grammar (`_tables`), else built."""
    found = getattr(_local, "parser", None)
    if found is None:
        from ._lexer import FastLexer
        from ._tables import GRAMMAR, load_tables

        grammar = GRAMMAR.read_text()
        builder = _Build()
        parser = load_tables(grammar, FastLexer, builder)
        if parser is None:
            parser, builder = build_parser(grammar)
        parser.parser.lexer.comment_sink = builder.comment
        found = _local.parser = (parser, builder)
    return found


def build_parser(grammar: str) -> tuple[Any, _Build]:
    """A lark parser of `grammar` built from scratch (grammar analysis and LALR tables)."""
    import lark

    from ._lexer import FastLexer

    builder = _Build()
    parser = lark.Lark(
        grammar,
        parser="lalr",
        lexer=FastLexer,
        maybe_placeholders=True,
        start=["start", "expr"],
        transformer=builder,
    )
    parser.parser.lexer.comment_sink = builder.comment
    return parser, builder


# --- syntax errors -----------------------------------------------------------------------

_TOKEN_WORDS = {
    "NAME": "a name",
    "STRING": "a string",
    "INT": "an integer",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "LBRACKET": "'['",
    "RBRACKET": "']'",
    "LPAR": "'('",
    "RPAREN": "')'",
    "EQUAL": "'='",
    "COMMA": "','",
    "DOT": "'.'",
    "SPREAD": "'...'",
    "CMP_OP": "a comparison",
    "MUL_OP": "an operator",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "$END": "end of file",
}


def _word(token_type: str) -> str:
    if token_type in _TOKEN_WORDS:
        return _TOKEN_WORDS[token_type]
    if token_type.isupper() and token_type.isalpha():
        return repr(token_type.lower())  # keywords: IF -> 'if'
    return token_type


def _syntax_error(exc: Any, text: str, file: str) -> DslError:
    import lark

    line = getattr(exc, "line", 1) or 1
    col = getattr(exc, "column", 1) or 1
    if line < 1:  # lark reports -1 at end of input
        lines = text.split("\n")
        line, col = len(lines), len(lines[-1]) + 1
    where = location_in_text(file, text, line, col)
    expected = sorted(
        {_word(t) for t in (getattr(exc, "expected", None) or getattr(exc, "allowed", None) or ())}
    )
    hint = (
        "expected " + ", ".join(expected[:12]) + (" ..." if len(expected) > 12 else "")
        if expected
        else ""
    )
    if isinstance(exc, lark.exceptions.UnexpectedCharacters):
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        if char == '"':
            return DslError.at(
                where,
                "unterminated or malformed string",
                "strings end on the same line; an interpolation ${...} may not contain quotes or braces",
            )
        return DslError.at(where, f"unexpected character {char!r}", hint)
    if isinstance(exc, lark.exceptions.UnexpectedEOF):
        return DslError.at(where, "unexpected end of file", hint)
    token = getattr(exc, "token", None)
    if token is not None and token.type == "$END":
        return DslError.at(where, "unexpected end of file", hint)
    shown = str(token) if token is not None else "?"
    if len(shown) > 30:
        shown = shown[:27] + "..."
    return DslError.at(where, f"unexpected {shown!r}", hint)


# --- tree building -----------------------------------------------------------------------


def _start_of(item: Any) -> tuple[int, int] | None:
    if isinstance(item, A.Node):
        return (item.span[0], item.span[1]) if item.span[0] else None
    if hasattr(item, "line") and item.line is not None:
        return (item.line, item.column)
    return None


def _end_of(item: Any) -> tuple[int, int] | None:
    if isinstance(item, A.Node):
        return (item.span[2], item.span[3]) if item.span[0] else None
    if hasattr(item, "end_line") and item.end_line is not None:
        return (item.end_line, item.end_column)
    return None


def _span_of(children: list[Any]) -> A.Span:
    """From the first positioned child's start to the last one's end."""
    start = end = None
    for child in children:
        for item in child if isinstance(child, tuple) else (child,):
            start = _start_of(item)
            if start:
                break
        if start:
            break
    for child in reversed(children):
        for item in reversed(child) if isinstance(child, tuple) else (child,):
            end = _end_of(item)
            if end:
                break
        if end:
            break
    if start is None or end is None:
        return A.NO_SPAN
    return (start[0], start[1], end[0], end[1])


def _depth(*nodes: Any) -> int:
    deepest = 0
    for node in nodes:
        if isinstance(node, tuple):
            for item in node:
                if isinstance(item, A.Node) and item.depth > deepest:
                    deepest = item.depth
        elif isinstance(node, A.Node) and node.depth > deepest:
            deepest = node.depth
    return deepest + 1


def _nodes(children: list[Any]) -> tuple[Any, ...]:
    return tuple(x for x in children if isinstance(x, A.Node))


class _Build:
    """lark callbacks: one method per grammar rule or alias, each returning an AST node.

    lark calls each with the rule's children (tokens and already-built nodes); spans
    come from the first and last of them, which is why closing brackets are named
    terminals in the grammar (anonymous ones are dropped before we see them).
    """

    def __init__(self) -> None:
        self.text = ""
        self.file = ""
        self.comments: list[A.Comment] = []
        self.line_offset = 0
        self.sub_depth = 0

    def begin(self, text: str, file: str) -> None:
        self.text, self.file, self.comments = text, file, []

    def end(self) -> list[A.Comment]:
        comments, self.comments = self.comments, []
        return comments

    def comment(self, token: Any) -> Any:
        if self.sub_depth == 0:
            self.comments.append(A.Comment(token.line, token.column, str(token).rstrip()))
        return token

    def error(self, token: Any, offset: int, summary: str, detail: str = "") -> DslError:
        line = token.line + self.line_offset
        where = location_in_text(self.file, self.text, line, token.column + offset)
        return DslError.at(where, summary, detail)

    def sub_expr(self, source: str, line: int, col: int) -> A.Expr:
        """Parse an interpolation's expression, with positions in the enclosing file."""
        import lark

        parser, _ = _parser()
        saved = self.line_offset
        self.line_offset = line - 1
        self.sub_depth += 1
        try:
            return parser.parse(" " * (col - 1) + source, start="expr")
        except lark.exceptions.UnexpectedInput as exc:
            where = location_in_text(self.file, self.text, line, getattr(exc, "column", col) or col)
            raise DslError.at(
                where, "invalid expression in ${...}", "an interpolation holds one expression"
            ) from None
        finally:
            self.sub_depth -= 1
            self.line_offset = saved

    def _mk(self, cls: type, children: list[Any], *args: Any) -> Any:
        span = _span_of(children)
        if self.line_offset and span[0]:
            span = (span[0] + self.line_offset, span[1], span[2] + self.line_offset, span[3])
        node = cls(*args, span=span, depth=_depth(*args))
        if node.depth > MAX_DEPTH:
            raise DslError.at(
                location_in_text(self.file, self.text, span[0], span[1]),
                f"nested more than {MAX_DEPTH} levels deep",
                "split it up with let-bindings",
            )
        return node

    # statements
    def start(self, c: list[Any]) -> A.Module:
        return A.Module(tuple(c), span=(1, 1, 1, 1))

    def import_stmt(self, c: list[Any]) -> A.Import:
        return self._mk(A.Import, c, string_value(c[1], self), str(c[2]))

    def let_stmt(self, c: list[Any]) -> A.Let:
        return self._mk(A.Let, c, str(c[1]), c[2])

    def manifest_block(self, c: list[Any]) -> A.ManifestBlock:
        return self._mk(A.ManifestBlock, c, self.str_lit([c[1]]), c[2])

    def block(self, c: list[Any]) -> A.Block:
        # Hot: one per node. Braces are the first and last children.
        items = tuple(c[1:-1])
        depth = max([item.depth for item in items], default=0) + 1
        if depth > MAX_DEPTH:
            return self._mk(A.Block, c, items)
        first, last = c[0], c[-1]
        off = self.line_offset
        span = (first.line + off, first.column, last.end_line + off, last.end_column)
        return A.Block(items, span=span, depth=depth)

    def field(self, c: list[Any]) -> A.Field:
        # Hot: one per field. `name = value`.
        name, value = c
        if value.depth >= MAX_DEPTH:
            return self._mk(A.Field, c, str(name), value)
        off = self.line_offset
        span = (name.line + off, name.column, value.span[2], value.span[3])
        return A.Field(str(name), value, span=span, depth=value.depth + 1)

    def field_lit(self, c: list[Any]) -> A.Field:
        name, tok = c
        value = getattr(self, _LITERALS[tok.type])([tok])
        off = self.line_offset
        span = (name.line + off, name.column, value.span[2], value.span[3])
        return A.Field(str(name), value, span=span, depth=value.depth + 1)

    def spread_name(self, c: list[Any]) -> A.Spread:
        return self._mk(A.Spread, c, self.var([c[1]]))

    def spread(self, c: list[Any]) -> A.Spread:
        return self._mk(A.Spread, c, c[1])

    def node_block(self, c: list[Any]) -> A.NodeBlock:
        return self._mk(A.NodeBlock, c, self.str_lit([c[1]]), c[2])

    def for_block(self, c: list[Any]) -> A.ForBlock:
        return self._mk(A.ForBlock, c, str(c[1]), c[2], c[3])

    def if_block(self, c: list[Any]) -> A.IfBlock:
        orelse = c[4] if len(c) > 4 else None
        return self._mk(A.IfBlock, c, c[1], c[2], orelse)

    # expressions
    def lambda_(self, c: list[Any]) -> A.Lambda:
        params = tuple(str(x) for x in c[1:-2] if x is not None)
        if len(set(params)) != len(params):
            raise self.error(c[0], 0, "a function has the same parameter twice")
        return self._mk(A.Lambda, c, params, c[-1])

    def if_expr(self, c: list[Any]) -> A.IfExpr:
        return self._mk(A.IfExpr, c, c[1], c[2], c[3])

    def binop(self, c: list[Any]) -> A.BinOp:
        return self._mk(A.BinOp, c, str(c[1]), c[0], c[2])

    def unop(self, c: list[Any]) -> A.UnaryOp:
        return self._mk(A.UnaryOp, c, str(c[0]), c[1])

    def call(self, c: list[Any]) -> A.Call:
        return self._mk(A.Call, c, c[0], _nodes(c[1:]))

    def attr(self, c: list[Any]) -> A.Attr:
        return self._mk(A.Attr, c, c[0], str(c[1]))

    def index(self, c: list[Any]) -> A.Index:
        return self._mk(A.Index, c, c[0], c[1])

    def group(self, c: list[Any]) -> A.Expr:
        return c[0]

    def int_lit(self, c: list[Any]) -> A.IntLit:
        tok = c[0]
        off = self.line_offset
        return A.IntLit(
            int(tok), span=(tok.line + off, tok.column, tok.end_line + off, tok.end_column)
        )

    def str_lit(self, c: list[Any]) -> A.StrLit:
        tok = c[0]
        if "\\" in tok or "${" in tok:
            return self._mk(A.StrLit, c, string_parts(tok, self))
        off = self.line_offset  # hot: plain strings need no unescaping
        span = (tok.line + off, tok.column, tok.end_line + off, tok.end_column)
        return A.StrLit((str(tok)[1:-1],), span=span)

    def true_lit(self, c: list[Any]) -> A.BoolLit:
        return self._mk(A.BoolLit, c, True)

    def false_lit(self, c: list[Any]) -> A.BoolLit:
        return self._mk(A.BoolLit, c, False)

    def null_lit(self, c: list[Any]) -> A.NullLit:
        return self._mk(A.NullLit, c)

    def var(self, c: list[Any]) -> A.Var:
        return self._mk(A.Var, c, str(c[0]))

    def list_lit(self, c: list[Any]) -> A.ListLit:
        return self._mk(A.ListLit, c, _nodes(c[1:-1]))

    def list_comp(self, c: list[Any]) -> A.ListComp:
        # [LBRACKET, element, FOR, NAME, iterable, IF|None, condition|None, RBRACKET]
        return self._mk(A.ListComp, c, c[1], str(c[3]), c[4], c[6])

    def record_lit(self, c: list[Any]) -> A.RecordLit:
        return self._mk(A.RecordLit, c, _nodes(c))


_LITERALS = {
    "STRING": "str_lit",
    "INT": "int_lit",
    "TRUE": "true_lit",
    "FALSE": "false_lit",
    "NULL": "null_lit",
}

# lark looks callbacks up by rule name; `lambda` is a Python keyword.
setattr(_Build, "lambda", _Build.lambda_)
