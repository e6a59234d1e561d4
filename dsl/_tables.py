"""The `.pvp` parser's LALR tables, computed once and shipped beside the grammar.

Building lark's LALR parser from `grammar.lark` (grammar analysis, then the tables) took
about 0.2 s of CPU, most of a small `pveplan plan`; loading the same tables from
`grammar.tables` takes about 6 ms. The file is a cache with a key, never a second source
of truth: its first line names the sha256 of the grammar text and lark's version it was
computed from, and a file whose key does not match (the grammar was edited, lark was
upgraded) or that does not load is ignored, so the parser is built from the grammar as
before. `python -m pveplan.dsl._tables` rewrites it; a test checks the shipped one is
current and parses every example as the built parser does.

The rest of the file is a pickle of plain data (dicts, lists, strings, numbers) read with
an unpickler that refuses every class and function, so loading it runs no code; our
lexer class, which lark would store by reference, is left out and put back on load.
"""

from __future__ import annotations

import hashlib
import io
import pickle
from pathlib import Path
from typing import Any

TABLES = Path(__file__).parent / "grammar.tables"
GRAMMAR = Path(__file__).parent / "grammar.lark"
_MAGIC = b"pveplan-lark-tables "


def tables_key(grammar: str) -> bytes:
    """What the tables were computed from: the grammar text and lark's version."""
    import lark

    return hashlib.sha256(f"{lark.__version__}\n{grammar}".encode()).hexdigest().encode()


def serialize(parser: Any, grammar: str) -> bytes:
    """The file's bytes for a built `lark.Lark` parser of `grammar`."""
    from lark.grammar import Rule
    from lark.lexer import TerminalDef

    data, memo = parser.memo_serialize([TerminalDef, Rule])
    data = dict(data)
    data["options"] = {
        k: v for k, v in data["options"].items() if k not in ("lexer", "transformer")
    }
    data["parser"] = dict(data["parser"])
    conf = data["parser"]["lexer_conf"]
    data["parser"]["lexer_conf"] = {k: v for k, v in conf.items() if k != "lexer_type"}
    body = pickle.dumps({"data": data, "memo": memo}, protocol=5)
    return _MAGIC + tables_key(grammar) + b"\n" + body


class _PlainData(pickle.Unpickler):
    """Loads plain data only: any class or function reference is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"grammar.tables names {module}.{name}")


def load_tables(grammar: str, lexer: type, transformer: Any, path: Path = TABLES) -> Any | None:
    """A `lark.Lark` parser from the tables at `path` if they were computed from `grammar`
    with this lark; None when they are missing, stale or unreadable (build it instead)."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    head, _, body = raw.partition(b"\n")
    if head != _MAGIC + tables_key(grammar):
        return None
    try:
        saved = _PlainData(io.BytesIO(body)).load()
        data, memo = saved["data"], saved["memo"]
        data["options"]["lexer"] = lexer
        data["parser"]["lexer_conf"]["lexer_type"] = lexer
        import lark

        return lark.Lark._load_from_dict(data, memo, transformer=transformer)
    except Exception:  # a damaged cache is no error: the grammar is the truth
        return None


def main() -> None:
    """Rewrite `grammar.tables` from `grammar.lark` (after editing the grammar)."""
    from ._parser import build_parser

    grammar = GRAMMAR.read_text()
    parser, _ = build_parser(grammar)
    TABLES.write_bytes(serialize(parser, grammar))
    print(f"wrote {TABLES} ({TABLES.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
