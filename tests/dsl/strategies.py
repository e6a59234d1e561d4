"""Hypothesis strategies: random `.pvp` programs, and a deliberately messy printer.

`programs()` draws syntax trees shaped like manifests (imports, lets, a manifest block
with node/for/if blocks, every kind of expression). `messy()` prints a tree the way a
careless human might: random spacing and line breaks, optional commas, redundant
parentheses, comments wherever whitespace may go. The parser must read the messy text
back to the same tree, and the formatter must make it canonical.
"""

from __future__ import annotations

from hypothesis import strategies as st

from pveplan.dsl import _ast as A

KEYWORDS = {
    "import", "let", "manifest", "node", "for", "in", "if", "then", "else", "fn", "true",
    "false", "null", "and", "or", "not", "as",
}  # fmt: skip
names = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True).filter(lambda n: n not in KEYWORDS)
text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)),
    max_size=8,
)
comment_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")), max_size=12
).map(lambda t: "#" + t.rstrip())

BINOPS = ("or", "and", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%")


def _join_parts(parts: list[str | A.Expr]) -> tuple[str | A.Expr, ...]:
    """Merge adjacent text and drop empty text, as the parser does."""
    out: list[str | A.Expr] = []
    for part in parts:
        if isinstance(part, str):
            if not part:
                continue
            if out and isinstance(out[-1], str):
                out[-1] = out[-1] + part
                continue
        out.append(part)
    return tuple(out) or ("",)


# Interpolations may hold no quotes or braces: names, ints and arithmetic on them.
interp = st.recursive(
    st.one_of(names.map(A.Var), st.integers(0, 10**6).map(A.IntLit)),
    lambda inner: st.builds(A.BinOp, st.sampled_from(("+", "-", "*")), inner, inner),
    max_leaves=4,
)
strings = st.lists(st.one_of(text, interp), max_size=4).map(lambda ps: A.StrLit(_join_parts(ps)))
plain_strings = text.map(lambda t: A.StrLit((t,)))


def _composites(inner: st.SearchStrategy[A.Expr]) -> st.SearchStrategy[A.Expr]:
    fields = st.builds(A.Field, names, inner)
    spreads = st.builds(A.Spread, inner)
    return st.one_of(
        st.lists(inner, max_size=4).map(lambda xs: A.ListLit(tuple(xs))),
        st.lists(st.one_of(fields, spreads), max_size=4).map(lambda xs: A.RecordLit(tuple(xs))),
        st.builds(A.ListComp, inner, names, inner, st.one_of(st.none(), inner)),
        st.builds(A.Lambda, st.lists(names, max_size=3, unique=True).map(tuple), inner),
        st.builds(A.Call, inner, st.lists(inner, max_size=3).map(tuple)),
        st.builds(A.Attr, inner, names),
        st.builds(A.Index, inner, inner),
        st.builds(A.IfExpr, inner, inner, inner),
        st.builds(A.BinOp, st.sampled_from(BINOPS), inner, inner),
        st.builds(A.UnaryOp, st.sampled_from(("-", "not")), inner),
    )


expressions = st.recursive(
    st.one_of(
        st.integers(0, 2**63 - 1).map(A.IntLit),
        strings,
        st.booleans().map(A.BoolLit),
        st.just(A.NullLit()),
        names.map(A.Var),
    ),
    _composites,
    max_leaves=12,
)


def _blocks(inner: st.SearchStrategy[A.Stmt]) -> st.SearchStrategy[A.Stmt]:
    body = st.lists(inner, max_size=4).map(lambda xs: A.Block(tuple(xs)))
    return st.one_of(
        st.builds(A.NodeBlock, strings, body),
        st.builds(A.ForBlock, names, expressions, body),
        st.builds(A.IfBlock, expressions, body, st.one_of(st.none(), body)),
    )


statements = st.recursive(
    st.one_of(
        st.builds(A.Field, names, expressions),
        st.builds(A.Spread, expressions),
        st.builds(A.Let, names, expressions),
    ),
    _blocks,
    max_leaves=10,
)

programs = st.builds(
    lambda imports, lets, body, name: A.Module(
        (*imports, *lets, A.ManifestBlock(name, A.Block(tuple(body))))
    ),
    st.lists(st.builds(A.Import, text, names), max_size=2),
    st.lists(st.builds(A.Let, names, expressions), max_size=3),
    st.lists(statements, max_size=5),
    strings,
)


# --- the messy printer -------------------------------------------------------------------


@st.composite
def messy(draw: st.DrawFn, module: A.Module) -> str:
    """`module` as source text with random (but legal) layout, parentheses and comments."""

    def ws() -> str:
        return draw(st.sampled_from((" ", "  ", "\n", " \n  ", "\n\n", "\t", "COMMENT")))

    def gap() -> str:
        space = ws()
        if space == "COMMENT":
            return " " + draw(comment_text) + "\n"
        return space

    def sep() -> str:
        return draw(st.sampled_from(("", ",", " ,"))) + gap()

    def quote(parts: tuple[str | A.Expr, ...]) -> str:
        out = ['"']
        for part in parts:
            if isinstance(part, str):
                for i, ch in enumerate(part):
                    if ch in '"\\':
                        out.append("\\" + ch)
                    elif ch == "$" and part[i + 1 : i + 2] == "{":
                        out.append("\\$")
                    elif ch == "\n":
                        out.append("\\n")
                    elif ch < " " or ch == "\x7f" or ch in "\u2028\u2029\x85":
                        out.append(f"\\u{{{ord(ch):x}}}")
                    else:
                        out.append(ch)
            else:
                out.append("${" + expr(part, in_string=True) + "}")
        return "".join(out) + '"'

    def paren(text: str, in_string: bool) -> str:
        if in_string:
            return f"({text})"
        return (
            "("
            + draw(st.sampled_from(("", " ", "\n")))
            + text
            + draw(st.sampled_from(("", " ", "\n")))
            + ")"
        )

    def expr(e: A.Expr, in_string: bool = False) -> str:
        g = (lambda: " ") if in_string else gap
        s = (lambda: ",") if in_string else sep
        p = lambda sub: paren(expr(sub, in_string), in_string)  # noqa: E731
        if isinstance(e, A.IntLit):
            return str(e.value)
        if isinstance(e, A.StrLit):
            return quote(e.parts)
        if isinstance(e, A.BoolLit):
            return "true" if e.value else "false"
        if isinstance(e, A.NullLit):
            return "null"
        if isinstance(e, A.Var):
            return e.name
        if isinstance(e, A.ListLit):
            return (
                "["
                + g()
                + "".join(
                    p(i) + ("," + g() if k < len(e.items) - 1 else s())
                    for k, i in enumerate(e.items)
                )
                + "]"
            )
        if isinstance(e, A.RecordLit):
            return "{" + g() + "".join(stmt(i) + s() for i in e.items) + "}"
        if isinstance(e, A.ListComp):
            cond = f" if {p(e.condition)}" if e.condition is not None else ""
            return f"[{p(e.element)} for {e.var} in {p(e.iterable)}{cond}]"
        if isinstance(e, A.Lambda):
            return f"fn({', '.join(e.params)}){g()}=>{g()}{p(e.body)}"
        if isinstance(e, A.Call):
            return p(e.func) + "(" + ", ".join(p(a) for a in e.args) + ")"
        if isinstance(e, A.Attr):
            return p(e.obj) + "." + e.name
        if isinstance(e, A.Index):
            return p(e.obj) + "[" + p(e.index) + "]"
        if isinstance(e, A.IfExpr):
            return f"if {p(e.cond)}{g()}then {p(e.then)}{g()}else {p(e.orelse)}"
        if isinstance(e, A.BinOp):
            return f"{p(e.left)}{g()}{e.op}{g()}{p(e.right)}"
        if isinstance(e, A.UnaryOp):
            return f"{e.op} {p(e.operand)}" if e.op == "not" else f"-{p(e.operand)}"
        raise TypeError(e)

    def block(b: A.Block) -> str:
        return "{" + gap() + "".join(stmt(i) + sep() for i in b.items) + "}"

    def stmt(item: A.Node) -> str:
        if isinstance(item, A.Field):
            return f"{item.name}{gap()}={gap()}{expr(item.value)}"
        if isinstance(item, A.Spread):
            return "..." + expr(item.value)
        if isinstance(item, A.Let):
            return f"let {item.name} ={gap()}{expr(item.value)}"
        if isinstance(item, A.NodeBlock):
            return f"node {quote(item.name.parts)}{gap()}{block(item.body)}"
        if isinstance(item, A.ForBlock):
            return f"for {item.var} in {expr(item.iterable)}{gap()}{block(item.body)}"
        if isinstance(item, A.IfBlock):
            out = f"if {expr(item.cond)} {block(item.body)}"
            if item.orelse is not None:
                out += f"{gap()}else{gap()}" + (
                    stmt(item.orelse) if isinstance(item.orelse, A.IfBlock) else block(item.orelse)
                )
            return out
        if isinstance(item, A.Import):
            return f"import {quote((item.path,))} as {item.alias}"
        if isinstance(item, A.ManifestBlock):
            return f"manifest {quote(item.name.parts)} {block(item.body)}"
        raise TypeError(item)

    return gap() + gap().join(stmt(item) for item in module.items) + gap()
