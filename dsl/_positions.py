"""Source maps: where each value of a loaded document was written.

Front ends produce plain data (dicts, lists, scalars) plus a `SourceMap` from the path
of each value (`("nodes", 3, "preset")`) to its position. Positions are kept as cheap
`(file, line, col)` tuples and only turned into `Location`s (with the source line, for
carets) when an error needs one, so loading a 10,000-node manifest stays fast.
"""

from __future__ import annotations

import re

from ._errors import Location

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

Path = tuple[str | int, ...]
Pos = tuple[str, int, int]  # (file, 1-based line, 1-based column)


class SourceMap:
    """Positions of values (and of mapping keys) by path, plus the texts they point into.

    `values[path]` is where the value starts; `keys[path]` is where its key is written
    (for mapping entries). Lookups fall back to the nearest enclosing path, so an error
    about a missing field points at the mapping that lacks it.
    """

    __slots__ = ("_lines", "keys", "texts", "values")

    def __init__(self) -> None:
        self.values: dict[Path, Pos] = {}
        self.keys: dict[Path, Pos] = {}
        self.texts: dict[str, str] = {}
        self._lines: dict[str, list[str]] = {}

    def pos(self, path: Path, *, key: bool = False) -> Pos | None:
        """The position of `path` (its key if `key` and known), else of its nearest ancestor."""
        if key and path in self.keys:
            return self.keys[path]
        while True:
            found = self.values.get(path)
            if found is not None:
                return found
            if not path:
                return None
            path = path[:-1]

    def locate(self, path: Path, *, key: bool = False) -> Location | None:
        """Like `pos`, as a `Location` carrying the source line."""
        pos = self.pos(path, key=key)
        return None if pos is None else self.location_of(pos)

    def location_of(self, pos: Pos) -> Location:
        """A `Location` for a raw position, with its source line when the text is known."""
        file, line, col = pos
        source_line = ""
        lines = self._lines.get(file)
        if lines is None and file in self.texts:
            lines = self._lines[file] = self.texts[file].split(
                "\n"
            )  # once per file, not per lookup
        if lines is not None and 0 < line <= len(lines):
            source_line = lines[line - 1]
        return Location(file=file, line=line, col=col, source_line=source_line)


def decode_source(data: bytes, file: str) -> str:
    """Decode a manifest file as UTF-8, naming the line and column of the first bad byte.

    A leading BOM is dropped. NUL and other C0 control characters (except tab, CR and LF)
    are refused here, once, so neither front end has to think about them.
    """
    from ._errors import DslError

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        good = data[: exc.start].decode("utf-8", errors="replace")
        line = good.count("\n") + 1
        col = len(good) - (good.rfind("\n") + 1) + 1
        raise DslError.at(
            Location(file=file, line=line, col=col, source_line=good.rsplit("\n", 1)[-1]),
            f"file is not valid UTF-8 (byte 0x{data[exc.start]:02x})",
            "save the file as UTF-8",
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    bad = _CONTROL.search(text)
    if bad is None:
        return text
    index, char = bad.start(), bad.group()
    before = text[:index]
    line = before.count("\n") + 1
    col = index - (before.rfind("\n") + 1) + 1
    raise DslError.at(
        Location(file=file, line=line, col=col, source_line=text.split("\n")[line - 1]),
        f"control character U+{ord(char):04X} is not allowed in a manifest",
    )
