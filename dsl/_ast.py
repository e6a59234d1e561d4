"""The syntax tree of a `.pvp` file.

Nodes compare by content only: `span` (where the node was written) and `depth` (its
nesting, used to refuse inputs that would recurse too deep) are excluded from equality,
so `parse(fmt(x)) == parse(x)` means "same program", whatever the layout.

Parentheses leave no node: the formatter puts back exactly those precedence needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# (line, column, end_line, end_column), 1-based, as lark reports them.
Span = tuple[int, int, int, int]
NO_SPAN: Span = (0, 0, 0, 0)


@dataclass(slots=True)
class Node:
    span: Span = field(default=NO_SPAN, compare=False, repr=False, kw_only=True)
    depth: int = field(default=1, compare=False, repr=False, kw_only=True)


# --- expressions -------------------------------------------------------------------------


@dataclass(slots=True)
class IntLit(Node):
    value: int


@dataclass(slots=True)
class StrLit(Node):
    """A string; `parts` alternates literal text (str) and interpolated expressions."""

    parts: tuple[str | Expr, ...]


@dataclass(slots=True)
class BoolLit(Node):
    value: bool


@dataclass(slots=True)
class NullLit(Node):
    pass


@dataclass(slots=True)
class Var(Node):
    name: str


@dataclass(slots=True)
class ListLit(Node):
    items: tuple[Expr, ...]


@dataclass(slots=True)
class ListComp(Node):
    element: Expr
    var: str
    iterable: Expr
    condition: Expr | None


@dataclass(slots=True)
class RecordLit(Node):
    items: tuple[Field | Spread, ...]


@dataclass(slots=True)
class Lambda(Node):
    params: tuple[str, ...]
    body: Expr


@dataclass(slots=True)
class Call(Node):
    func: Expr
    args: tuple[Expr, ...]


@dataclass(slots=True)
class Attr(Node):
    obj: Expr
    name: str


@dataclass(slots=True)
class Index(Node):
    obj: Expr
    index: Expr


@dataclass(slots=True)
class IfExpr(Node):
    cond: Expr
    then: Expr
    orelse: Expr


@dataclass(slots=True)
class BinOp(Node):
    op: str
    left: Expr
    right: Expr


@dataclass(slots=True)
class UnaryOp(Node):
    op: str
    operand: Expr


Expr = (
    IntLit
    | StrLit
    | BoolLit
    | NullLit
    | Var
    | ListLit
    | ListComp
    | RecordLit
    | Lambda
    | Call
    | Attr
    | Index
    | IfExpr
    | BinOp
    | UnaryOp
)

# --- statements --------------------------------------------------------------------------


@dataclass(slots=True)
class Field(Node):
    """`name = value`: in a block it sets a field of the enclosing manifest or node."""

    name: str
    value: Expr


@dataclass(slots=True)
class Spread(Node):
    """`...record`: copies every field of a record (later items override it)."""

    value: Expr


@dataclass(slots=True)
class Let(Node):
    name: str
    value: Expr


@dataclass(slots=True)
class Import(Node):
    path: str
    alias: str


@dataclass(slots=True)
class Block(Node):
    """A `{ ... }` of statements; its span includes the braces."""

    items: tuple[Stmt, ...]


@dataclass(slots=True)
class NodeBlock(Node):
    name: StrLit
    body: Block


@dataclass(slots=True)
class ForBlock(Node):
    var: str
    iterable: Expr
    body: Block


@dataclass(slots=True)
class IfBlock(Node):
    cond: Expr
    body: Block
    orelse: Block | IfBlock | None


@dataclass(slots=True)
class ManifestBlock(Node):
    name: StrLit
    body: Block


Stmt = Field | Spread | Let | NodeBlock | ForBlock | IfBlock


@dataclass(slots=True)
class Module(Node):
    items: tuple[Import | Let | ManifestBlock, ...]


@dataclass(slots=True)
class Comment:
    """A `# ...` comment (kept only for the formatter)."""

    line: int
    col: int
    text: str
