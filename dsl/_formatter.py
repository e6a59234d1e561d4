"""`pveplan fmt`: the one canonical layout of a `.pvp` file, comments kept.

The layout depends only on the program and its comments, never on how it was spaced:
two-space indents, one statement per line, `key = value`, a record or list on one line
when that line is short (at most `INLINE_WIDTH` characters) and holds no comments,
otherwise one item per line. Single blank lines between statements are kept (runs of
them collapse to one), so a reader's grouping survives.

Comments travel with the statement they precede, or stay at the end of its line. A
comment written inside an expression that is laid out on one line moves just above
its statement: kept, never dropped. So `fmt(fmt(x)) == fmt(x)` and
`parse(fmt(x)) == parse(x)` (tests check both, by hypothesis).
"""

from __future__ import annotations

import bisect

from . import _ast as A
from ._parser import parse

INLINE_WIDTH = 60
INDENT = "  "

_PREC = {
    "or": 1,
    "and": 2,
    "==": 4,
    "!=": 4,
    "<": 4,
    "<=": 4,
    ">": 4,
    ">=": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
    "%": 6,
}


def format_source(text: str, file: str = "<input>") -> str:
    """The canonical form of `.pvp` source `text` (a `DslError` if it does not parse)."""
    module, comments = parse(text, file)
    return _Printer(comments).module(module)


class _Printer:
    def __init__(self, comments: list[A.Comment]) -> None:
        self.comments = sorted(comments, key=lambda c: (c.line, c.col))
        self.keys = [(c.line, c.col) for c in self.comments]
        self.used = [False] * len(self.comments)

    # --- comments ------------------------------------------------------------------------

    def take(self, start: tuple[int, int], end: tuple[int, int]) -> list[A.Comment]:
        """Claim the unclaimed comments positioned in [start, end)."""
        lo = bisect.bisect_left(self.keys, start)
        hi = bisect.bisect_left(self.keys, end)
        out = []
        for i in range(lo, hi):
            if not self.used[i]:
                self.used[i] = True
                out.append(self.comments[i])
        return out

    def any_in(self, span: A.Span) -> bool:
        lo = bisect.bisect_left(self.keys, (span[0], span[1]))
        hi = bisect.bisect_left(self.keys, (span[2], span[3]))
        return any(not self.used[i] for i in range(lo, hi))

    # --- sequences of items --------------------------------------------------------------

    def sequence(
        self,
        items: tuple[A.Node, ...],
        render: object,
        indent: int,
        opened: tuple[int, int],
        closes: tuple[int, int],
        suffix: str = "",
    ) -> list[str]:
        """Lines for items between `opened` and `closes`, with their comments and blank lines."""
        pad = INDENT * indent
        lines: list[str] = []
        last_line = opened[0]

        def gap(line: int) -> None:
            if lines and line > last_line + 1:
                lines.append("")

        for index, item in enumerate(items):
            start = (item.span[0], item.span[1])
            follows = items[index + 1].span[:2] if index + 1 < len(items) else closes
            for comment in self.take(opened, start):
                gap(comment.line)
                lines.append(pad + comment.text)
                last_line = comment.line
            text = render(item, indent)  # type: ignore[operator]
            orphans = self.take(start, (item.span[2], item.span[3]))
            end = (item.span[2], item.span[3])
            trailing = self.take(end, min((item.span[2] + 1, 0), tuple(follows)))
            gap(item.span[0])
            lines.extend(pad + c.text for c in orphans)
            text_lines = (text + suffix).split("\n")
            if trailing:
                text_lines[-1] += "  " + trailing[0].text
                for extra in trailing[1:]:
                    text_lines.append(extra.text)
            lines.append(pad + text_lines[0])
            lines.extend(text_lines[1:])
            last_line = item.span[2]
        for comment in self.take(opened, closes):
            gap(comment.line)
            lines.append(pad + comment.text)
            last_line = comment.line
        return lines

    # --- statements ----------------------------------------------------------------------

    def module(self, module: A.Module) -> str:
        lines: list[str] = []
        items = module.items
        end = (10**9, 0)
        body = self.sequence(items, self.top_item, 0, (1, 0), end)
        # A manifest block always stands apart from what precedes it.
        manifest_at = [i for i, line in enumerate(body) if line.startswith("manifest ")]
        for i, line in enumerate(body):
            if i in manifest_at and i > 0 and body[i - 1] != "" and not body[i - 1].startswith("#"):
                lines.append("")
            lines.append(line)
        return "\n".join(lines).rstrip("\n") + "\n" if lines else ""

    def top_item(self, item: A.Node, indent: int) -> str:
        if isinstance(item, A.Import):
            return f"import {_quote(item.path)} as {item.alias}"
        if isinstance(item, A.ManifestBlock):
            return f"manifest {self.expr(item.name, 0, indent)} {self.block(item.body, indent)}"
        return self.stmt(item, indent)

    def block(self, block: A.Block, indent: int) -> str:
        opened = (block.span[0], block.span[1] + 1)
        closes = (block.span[2], block.span[3] - 1)
        if not block.items and not self.any_in((*opened, *closes)):
            return "{}"
        lines = self.sequence(block.items, self.stmt, indent + 1, opened, closes)
        return "{\n" + "\n".join(lines) + "\n" + INDENT * indent + "}"

    def stmt(self, item: A.Node, indent: int) -> str:
        if isinstance(item, A.Field):
            return f"{item.name} = {self.expr(item.value, 0, indent)}"
        if isinstance(item, A.Spread):
            return "..." + self.expr(item.value, 0, indent)
        if isinstance(item, A.Let):
            return f"let {item.name} = {self.expr(item.value, 0, indent)}"
        if isinstance(item, A.NodeBlock):
            return f"node {self.expr(item.name, 0, indent)} {self.block(item.body, indent)}"
        if isinstance(item, A.ForBlock):
            return f"for {item.var} in {self.expr(item.iterable, 1, indent)} {self.block(item.body, indent)}"
        if isinstance(item, A.IfBlock):
            out = f"if {self.expr(item.cond, 1, indent)} {self.block(item.body, indent)}"
            if isinstance(item.orelse, A.IfBlock):
                out += " else " + self.stmt(item.orelse, indent)
            elif item.orelse is not None:
                out += " else " + self.block(item.orelse, indent)
            return out
        raise TypeError(f"not a statement: {item!r}")

    # --- expressions ---------------------------------------------------------------------

    def expr(self, e: A.Expr, min_prec: int, indent: int) -> str:
        text, prec = self._expr(e, indent)
        return f"({text})" if prec < min_prec else text

    def _expr(self, e: A.Expr, indent: int) -> tuple[str, int]:
        if isinstance(e, A.IntLit):
            return str(e.value), 9
        if isinstance(e, A.StrLit):
            return self.string(e, indent), 9
        if isinstance(e, A.BoolLit):
            return ("true" if e.value else "false"), 9
        if isinstance(e, A.NullLit):
            return "null", 9
        if isinstance(e, A.Var):
            return e.name, 9
        if isinstance(e, A.ListLit):
            return self.collection(e, e.items, "[", "]", ",", indent), 9
        if isinstance(e, A.RecordLit):
            return self.collection(e, e.items, "{", "}", "", indent), 9
        if isinstance(e, A.ListComp):
            out = f"[{self.expr(e.element, 1, indent)} for {e.var} in {self.expr(e.iterable, 1, indent)}"
            if e.condition is not None:
                out += f" if {self.expr(e.condition, 1, indent)}"
            return out + "]", 9
        if isinstance(e, A.Lambda):
            return f"fn({', '.join(e.params)}) => {self.expr(e.body, 0, indent)}", 0
        if isinstance(e, A.IfExpr):
            cond = self.expr(e.cond, 1, indent)
            then = self.expr(e.then, 1, indent)
            return f"if {cond} then {then} else {self.expr(e.orelse, 0, indent)}", 0
        if isinstance(e, A.Call):
            args = ", ".join(self.expr(a, 0, indent) for a in e.args)
            return f"{self.expr(e.func, 8, indent)}({args})", 8
        if isinstance(e, A.Attr):
            return f"{self.expr(e.obj, 8, indent)}.{e.name}", 8
        if isinstance(e, A.Index):
            return f"{self.expr(e.obj, 8, indent)}[{self.expr(e.index, 0, indent)}]", 8
        if isinstance(e, A.UnaryOp):
            if e.op == "not":
                return f"not {self.expr(e.operand, 3, indent)}", 3
            return f"-{self.expr(e.operand, 7, indent)}", 7
        if isinstance(e, A.BinOp):
            prec = _PREC[e.op]
            left_min = prec + 1 if prec == 4 else prec  # comparisons do not chain
            left = self.expr(e.left, left_min, indent)
            right = self.expr(e.right, prec + 1, indent)
            return f"{left} {e.op} {right}", prec
        raise TypeError(f"not an expression: {e!r}")

    def collection(
        self,
        e: A.Node,
        items: tuple[A.Node, ...],
        opener: str,
        closer: str,
        comma: str,
        indent: int,
    ) -> str:
        def item_text(item: A.Node, level: int) -> str:
            if isinstance(item, (A.Field, A.Spread)):
                return self.stmt(item, level)
            return self.expr(item, 0, level)  # type: ignore[arg-type]

        if not self.any_in(e.span):
            inline = [item_text(item, indent) for item in items]
            joined = ", ".join(inline)
            if not items:
                return opener + closer
            text = f"{opener} {joined} {closer}" if opener == "{" else f"{opener}{joined}{closer}"
            if len(text) <= INLINE_WIDTH and "\n" not in text:
                return text
        opened = (e.span[0], e.span[1] + 1)
        closes = (e.span[2], e.span[3] - 1)
        lines = self.sequence(items, item_text, indent + 1, opened, closes, suffix=comma)
        return opener + "\n" + "\n".join(lines) + "\n" + INDENT * indent + closer

    def string(self, e: A.StrLit, indent: int) -> str:
        out = ['"']
        for part in e.parts:
            if isinstance(part, str):
                out.append(_escape(part))
            else:
                out.append("${" + self.expr(part, 0, indent) + "}")
        out.append('"')
        return "".join(out)


def _escape(text: str) -> str:
    out = []
    for i, char in enumerate(text):
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif char == "$" and text[i + 1 : i + 2] == "{":
            out.append("\\$")
        elif char < " " or char == "\x7f":
            out.append(f"\\u{{{ord(char):x}}}")
        else:
            out.append(char)
    return "".join(out)


def _quote(text: str) -> str:
    return '"' + _escape(text) + '"'
