"""Turn plain data into a model Struct, reporting every mismatch at its source position.

msgspec decides validity (its `convert` is the fast path and the final word), but stops
at the first error and knows nothing of files. When `convert` refuses, this module walks
the data against `msgspec.inspect` type info of the same model and reports each problem
with its file:line:col and a hint: the closest valid key for a typo, the allowed values
of an enum. Because both read one model, the checker cannot drift from the Structs.

Generic over any msgspec type, so site-config files (presets, specs, postures) are
checked by the same code as manifests.

`convert_salvaged` goes one step further for `validate`, which must report every mistake
in one pass: after the checker has named the bad values, it leaves them out and builds
the model from what remains, so checks that need a model (tree rules, site-config
references) can still run on the parts that are right.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Collection, Mapping
from typing import Any, Generic, NamedTuple, TypeVar

import msgspec
from msgspec import inspect as mi

from ._errors import Diagnostic, DslError, did_you_mean
from ._positions import Path, SourceMap

T = TypeVar("T")

_info_cache: dict[Any, mi.Type] = {}


def convert_checked(model: type[T], data: Any, smap: SourceMap, *, what: str = "manifest") -> T:
    """`data` as an instance of `model`, or a `DslError` naming every problem's position.

    `what` names the document in messages ("manifest", "preset", "spec").
    """
    try:
        return msgspec.convert(data, model)
    except msgspec.ValidationError as exc:
        found = _problems(model, data, smap, what)
        if found:
            raise DslError(sort_diagnostics([d for _, d in found], smap)) from None
        raise DslError([_msgspec_diagnostic(exc, smap)]) from None


class Salvaged(NamedTuple, Generic[T]):
    """What `convert_salvaged` could build, and every problem it found on the way.

    `value` holds only the parts of the data that passed the checker: fit for further
    checks, never for planning (a left-out field may have fallen back to its default).
    `kept` maps each list path that lost items to the original indices of the items it
    kept, so positions can be renumbered; `removed` holds the paths of optional values
    that were left out, so a later rule can stay silent about what it cannot see.
    """

    value: T | None
    diagnostics: list[Diagnostic]
    kept: dict[Path, tuple[int, ...]]
    removed: frozenset[Path]


def convert_salvaged(
    model: type[T],
    data: Any,
    smap: SourceMap,
    *,
    what: str = "manifest",
    fill: Mapping[str, Any] | None = None,
) -> Salvaged[T]:
    """`data` as a `model`, or every problem plus a `model` built from the valid parts.

    A bad optional value is left out; a bad required value (or list item) takes its
    enclosing struct (or item) with it. `fill` gives stand-ins for required top-level
    fields, so one bad field there does not lose the whole document. `value` is None
    when nothing could be built, for instance when msgspec refuses what the checker
    passed (a rule the checker does not model), or a list fell below its minimum length.
    """
    try:
        return Salvaged(msgspec.convert(data, model), [], {}, frozenset())
    except msgspec.ValidationError as exc:
        refused = exc
    found = _problems(model, data, smap, what)
    if not found:
        return Salvaged(None, [_msgspec_diagnostic(refused, smap)], {}, frozenset())
    # A missing required key is reported at its struct; at the root, `fill` answers it.
    pruner = _Pruner({path for path, _ in found if path}, fill or {})
    pruned = pruner.prune(_info(model), data, ())
    value: T | None = None
    if pruned is not _DROP:
        with contextlib.suppress(msgspec.ValidationError):  # a rule the checker does not model
            value = msgspec.convert(pruned, model)
    diagnostics = sort_diagnostics(_unique([d for _, d in found]), smap)
    return Salvaged(value, diagnostics, pruner.kept, frozenset(pruner.removed))


def check(model: Any, data: Any, smap: SourceMap, *, what: str = "manifest") -> list[Diagnostic]:
    """Every way `data` fails to match `model`, in document order."""
    return [diag for _, diag in _problems(model, data, smap, what)]


def _info(model: Any) -> mi.Type:
    info = _info_cache.get(model)
    if info is None:
        info = _info_cache[model] = mi.type_info(model)
    return info


def _problems(model: Any, data: Any, smap: SourceMap, what: str) -> list[tuple[Path, Diagnostic]]:
    checker = _Checker(smap, what, data)
    checker.check(_info(model), data, ())
    return checker.found


def _msgspec_diagnostic(exc: msgspec.ValidationError, smap: SourceMap) -> Diagnostic:
    """msgspec's own words, for what the checker does not model."""
    path = _parse_msgspec_path(str(exc))
    return Diagnostic(summary=str(exc).split(" - at ")[0], location=smap.locate(path))


def _unique(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """Without repeats: one mistake, one message, however many paths lead to it."""
    seen: set[tuple[str, str, str]] = set()
    out = []
    for diag in diagnostics:
        key = (str(diag.location), diag.summary, diag.severity)
        if key not in seen:
            seen.add(key)
            out.append(diag)
    return out


def sort_diagnostics(diagnostics: list[Diagnostic], smap: SourceMap) -> list[Diagnostic]:
    """Document order: files in the order they were read, then line and column."""
    files = {name: i for i, name in enumerate(smap.texts)}

    def key(diag: Diagnostic) -> tuple[int, int, int]:
        loc = diag.location
        return (files.get(loc.file, len(files)), loc.line, loc.col) if loc else (-1, 0, 0)

    return sorted(diagnostics, key=key)


def describe_path(path: Path, what: str = "manifest", data: Any = None) -> str:
    """`nodes['edge'].preset` for ("nodes", 2, "preset"); the document name for the root.

    A list item that is a mapping with a string `name` is shown by that name, which a
    reader can find in the file; otherwise by its index.
    """
    out = ""
    current = data
    for part in path:
        if isinstance(part, int):
            item = current[part] if isinstance(current, list) and part < len(current) else None
            name = item.get("name") if isinstance(item, dict) else None
            out += f"[{name!r}]" if isinstance(name, str) else f"[{part}]"
        else:
            out += f".{part}" if out else part
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and isinstance(part, int) and part < len(current):
            current = current[part]
        else:
            current = None
    return out or what


def describe_value(value: Any) -> str:
    """A short phrase for a value of the wrong type: 'the string "abc"', 'a list'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"the integer {value}" if abs(value) < 10**30 else "a huge integer"
    if isinstance(value, float):
        return f"the number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {shown!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__} value"


class _Checker:
    def __init__(self, smap: SourceMap, what: str, root: Any) -> None:
        self.smap = smap
        self.what = what
        self.root = root
        self.found: list[tuple[Path, Diagnostic]] = []

    def name(self, path: Path) -> str:
        return describe_path(path, self.what, self.root)

    def report(self, path: Path, summary: str, detail: str = "", *, key: bool = False) -> None:
        location = self.smap.locate(path, key=key)
        self.found.append((path, Diagnostic(summary=summary, detail=detail, location=location)))

    def check(self, info: mi.Type, value: Any, path: Path) -> None:
        while isinstance(info, mi.Metadata):
            info = info.type
        name = self.name(path)
        if isinstance(info, mi.UnionType):
            if value is None and any(isinstance(t, mi.NoneType) for t in info.types):
                return
            others = [t for t in info.types if not isinstance(t, mi.NoneType)]
            if len(others) == 1:
                self.check(others[0], value, path)
            # Wider unions are not used by our models: msgspec's own message covers them.
            return
        if isinstance(info, mi.StructType):
            self._struct(info, value, path)
        elif isinstance(info, mi.LiteralType):
            if not any(type(value) is type(v) and value == v for v in info.values):
                allowed = ", ".join(repr(v) for v in info.values)
                detail = (
                    did_you_mean(value, [str(v) for v in info.values], "values")
                    if isinstance(value, str)
                    else f"allowed: {allowed}"
                )
                self.report(path, f"{name}: {describe_value(value)} is not allowed", detail)
        elif isinstance(info, mi.IntType):
            if isinstance(value, bool) or not isinstance(value, int):
                self.report(path, f"{name}: expected an integer, got {describe_value(value)}")
            elif info.ge is not None and value < info.ge:
                self.report(path, f"{name}: {value} is below the minimum {info.ge}")
            elif info.le is not None and value > info.le:
                self.report(path, f"{name}: {describe_value(value)} is above the maximum {info.le}")
        elif isinstance(info, mi.StrType):
            if not isinstance(value, str):
                self.report(path, f"{name}: expected a string, got {describe_value(value)}")
            elif info.pattern is not None and re.search(info.pattern, value) is None:
                short, hint = _pattern_hint(info.pattern)
                self.report(path, f"{name}: {value!r} {short}", hint)
        elif isinstance(info, mi.BoolType):
            if not isinstance(value, bool):
                self.report(path, f"{name}: expected true or false, got {describe_value(value)}")
        elif isinstance(info, (mi.VarTupleType, mi.ListType)):
            if not isinstance(value, (list, tuple)):
                self.report(path, f"{name}: expected a list, got {describe_value(value)}")
                return
            if info.min_length is not None and len(value) < info.min_length:
                self.report(
                    path, f"{name}: needs at least {info.min_length} item(s), has {len(value)}"
                )
            for index, item in enumerate(value):
                self.check(info.item_type, item, (*path, index))
        elif isinstance(info, mi.DictType):
            if not isinstance(value, dict):
                self.report(path, f"{name}: expected a mapping, got {describe_value(value)}")
                return
            for key, item in value.items():
                self.check(info.key_type, key, (*path, key))
                self.check(info.value_type, item, (*path, key))
        elif isinstance(info, mi.NoneType) and value is not None:
            self.report(path, f"{name}: expected null, got {describe_value(value)}")
        # Any other type (Any, ...) is left to msgspec, whose message `convert_checked` reports.

    def _struct(self, info: mi.StructType, value: Any, path: Path) -> None:
        name = self.name(path)
        if not isinstance(value, dict):
            self.report(path, f"{name}: expected a mapping, got {describe_value(value)}")
            return
        fields = {f.encode_name: f for f in info.fields}
        for key in value:
            if key not in fields:
                where = "at the top level" if not path else f"in {name}"
                self.report(
                    (*path, key),
                    f"unknown key {key!r} {where}",
                    did_you_mean(str(key), fields, "keys"),
                    key=True,
                )
        for field in info.fields:
            if field.encode_name in value:
                self.check(field.type, value[field.encode_name], (*path, field.encode_name))
            elif field.required:
                self.report(path, f"{name}: missing required key {field.encode_name!r}")


_DROP: Any = object()  # what `_Pruner.prune` returns for a value that must be left out


class _Pruner:
    """Copies data, leaving out each value the checker reported and whatever needs it."""

    def __init__(self, bad: Collection[Path], fill: Mapping[str, Any]) -> None:
        self.bad = bad
        self.fill = fill
        self.kept: dict[Path, tuple[int, ...]] = {}
        self.removed: list[Path] = []

    def prune(self, info: mi.Type, value: Any, path: Path) -> Any:
        if path in self.bad:
            return _DROP
        while isinstance(info, mi.Metadata):
            info = info.type
        if isinstance(info, mi.UnionType):
            others = [t for t in info.types if not isinstance(t, mi.NoneType)]
            if value is None or len(others) != 1:
                return value  # the checker looks no deeper, so neither do we
            return self.prune(others[0], value, path)
        if isinstance(info, mi.StructType) and isinstance(value, dict):
            return self._struct(info, value, path)
        if isinstance(info, (mi.VarTupleType, mi.ListType)) and isinstance(value, (list, tuple)):
            items = [self.prune(info.item_type, item, (*path, i)) for i, item in enumerate(value)]
            kept = tuple(i for i, item in enumerate(items) if item is not _DROP)
            if len(kept) != len(items):
                self.kept[path] = kept
            return [items[i] for i in kept]
        if isinstance(info, mi.DictType) and isinstance(value, dict):
            out = {}
            for key, item in value.items():
                pruned = self.prune(info.value_type, item, (*path, key))
                if pruned is not _DROP:
                    out[key] = pruned
            return out
        return value

    def _struct(self, info: mi.StructType, value: dict[str, Any], path: Path) -> Any:
        out = {}
        for field in info.fields:
            key = field.encode_name
            pruned = self.prune(field.type, value[key], (*path, key)) if key in value else _DROP
            if pruned is not _DROP:
                out[key] = pruned
            elif field.required and not path and key in self.fill:
                out[key] = self.fill[key]
            elif field.required:
                return _DROP  # a struct without a required field is no struct
            elif key in value:
                self.removed.append((*path, key))
        return out  # unknown keys are left behind: the checker reported them


_PATTERN_HINTS = {
    r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$": (
        "is not a valid DNS label",
        "use letters, digits and '-', 1 to 63 characters, not starting or ending with '-'",
    ),
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$": (
        "is not a valid name",
        "use letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64 characters",
    ),
}


def _pattern_hint(pattern: str) -> tuple[str, str]:
    return _PATTERN_HINTS.get(
        pattern, ("does not match the required pattern", f"pattern: {pattern}")
    )


_PATH_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[\"?([^\]\"]*)\"?\]")


def _parse_msgspec_path(message: str) -> Path:
    """`("nodes", 0, "vmid")` from msgspec's "... - at `$.nodes[0].vmid`"."""
    if " - at `$" not in message:
        return ()
    raw = message.split(" - at `$", 1)[1].rstrip("`")
    parts: list[str | int] = []
    for match in _PATH_PART.finditer(raw):
        attr, index, key = match.groups()
        parts.append(attr if attr is not None else int(index) if index is not None else key)
    return tuple(parts)
