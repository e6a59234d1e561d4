"""YAML documents as plain data plus a source map, built straight from parser events.

pyyaml's `compose` builds a Node object per value and recurses in C; on deep input
libyaml's composer overflows the C stack (a segfault, seen with 100,000 nested `[`),
and on a 10,000-node manifest it is six times slower than the event stream alone. So
this module walks events with an explicit stack: depth is bounded before anything
recurses, positions come from event marks, duplicate keys are errors (pyyaml silently
keeps the last), and aliases are charged for what they expand to (no billion laughs).

Scalars resolve as pyyaml's SafeLoader resolves them (YAML 1.1: `yes` is a bool), so
manifests mean here what they meant to homestak.
"""

from __future__ import annotations

from typing import Any

import yaml

from ._errors import DslError
from ._positions import Path, SourceMap

MAX_DEPTH = 64
MAX_EXPANDED_VALUES = 2_000_000

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_resolver = yaml.resolver.Resolver()
_constructor = yaml.constructor.SafeConstructor()
_STR_TAG = "tag:yaml.org,2002:str"
_INT_TAG = "tag:yaml.org,2002:int"
_MERGE_TAG = "tag:yaml.org,2002:merge"


def load_yaml(text: str, file: str, source_map: SourceMap | None = None) -> tuple[Any, SourceMap]:
    """Parse one YAML document into (data, source map); every failure is a `DslError`."""
    smap = source_map if source_map is not None else SourceMap()
    smap.texts[file] = text
    builder = _Builder(file, smap)
    try:
        for event in yaml.parse(text, Loader=_Loader):
            builder.feed(event)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        raise DslError.at(
            smap.location_of((file, line, col)), f"YAML syntax error: {problem}"
        ) from None
    except yaml.YAMLError as exc:  # unmarked reader errors
        raise DslError.at(smap.location_of((file, 1, 1)), f"YAML error: {exc}") from None
    return builder.result(), smap


class _Frame:
    """A container under construction: its value, path, and (for mappings) the pending key."""

    __slots__ = ("anchor", "is_map", "key", "key_pos", "merges", "path", "size", "value")

    def __init__(self, value: Any, path: Path, anchor: str | None) -> None:
        self.value = value
        self.path = path
        self.anchor = anchor
        self.is_map = isinstance(value, dict)
        self.key: Any = _NO_KEY
        self.key_pos: tuple[str, int, int] | None = None
        self.merges: list[dict[str, Any]] = []
        self.size = 1


_NO_KEY = object()


class _Builder:
    """Turns a stream of pyyaml events into values, recording positions as it goes.

    `fast`: a plain scalar value of a mapping (most of a manifest) takes a short path
    that records the same positions and builds the same value as the general one
    (`_scalar`, `_construct`, `_attach`); tests compare the two on random documents.
    """

    def __init__(self, file: str, smap: SourceMap, *, fast: bool = True) -> None:
        self.fast = fast
        self.file = file
        self.smap = smap
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.expanded = 0
        self.documents = 0
        self.root: Any = None

    def result(self) -> Any:
        return self.root

    def _pos(self, event: yaml.Event) -> tuple[str, int, int]:
        mark = event.start_mark
        return (self.file, mark.line + 1, mark.column + 1)

    def _fail(self, event: yaml.Event, summary: str, detail: str = "") -> DslError:
        return DslError.at(self.smap.location_of(self._pos(event)), summary, detail)

    def _child_path(self) -> Path:
        if not self.stack:
            return ()
        top = self.stack[-1]
        if top.is_map:
            return (*top.path, top.key) if top.key is not _NO_KEY else top.path
        return (*top.path, len(top.value))

    def feed(self, event: yaml.Event) -> None:
        if isinstance(event, yaml.ScalarEvent):
            self._scalar(event)
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if len(self.stack) >= MAX_DEPTH:
                raise self._fail(event, f"YAML nested more than {MAX_DEPTH} levels deep")
            container: Any = {} if isinstance(event, yaml.MappingStartEvent) else []
            if self.stack and self.stack[-1].is_map and self.stack[-1].key is _NO_KEY:
                raise self._fail(event, "a mapping key must be a plain string, not a collection")
            path = self._child_path()
            self.smap.values[path] = self._pos(event)
            self.stack.append(_Frame(container, path, event.anchor))
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            frame = self.stack.pop()
            if frame.merges:
                for merged in frame.merges:
                    for key, value in merged.items():
                        frame.value.setdefault(key, value)
            self._attach(frame.value, frame.size, frame.anchor, event)
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in self.anchors:
                raise self._fail(event, f"unknown YAML alias *{event.anchor}")
            value, size = self.anchors[event.anchor]
            if self.stack and self.stack[-1].is_map and self.stack[-1].key is _NO_KEY:
                raise self._fail(event, "a mapping key must be a plain string, not an alias")
            self.smap.values.setdefault(self._child_path(), self._pos(event))
            self._attach(value, size, None, event)
        elif isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise self._fail(event, "a manifest file holds one YAML document, found a second")

    def _scalar(self, event: yaml.ScalarEvent) -> None:
        top = self.stack[-1] if self.stack else None
        if self.fast and top is not None and top.is_map and self._fast_scalar(top, event):
            return
        if top is not None and top.is_map and top.key is _NO_KEY:
            if event.tag is None and event.implicit[0] and event.value == "<<":
                top.key = _MERGE_TAG
            else:
                key = self._construct(event)
                if not isinstance(key, str):
                    raise self._fail(
                        event,
                        f"mapping key {event.value!r} is not a string",
                        "quote it if it is meant as text",
                    )
                if key in top.value:
                    raise self._fail(
                        event, f"duplicate key {key!r}", "each key may appear once per mapping"
                    )
                top.key = key
            top.key_pos = self._pos(event)
            return
        path = self._child_path()
        self.smap.values[path] = self._pos(event)
        self._attach(self._construct(event), 1, event.anchor, event)

    def _construct(self, event: yaml.ScalarEvent) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            tag = _resolve_plain(event.value) if event.implicit[0] else _STR_TAG
        if tag == _STR_TAG:
            return event.value
        constructor = _constructor.yaml_constructors.get(tag)
        if constructor is None:
            raise self._fail(event, f"unsupported YAML tag {tag}")
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        try:
            return constructor(_constructor, node)
        except (yaml.YAMLError, ValueError, TypeError) as exc:
            raise self._fail(
                event, f"invalid {tag.rsplit(':', 1)[-1]} value {event.value!r}: {exc}"
            ) from None

    def _fast_scalar(self, top: _Frame, event: yaml.ScalarEvent) -> bool:
        """The short path for a plain scalar in a mapping: a new text key, or a text or
        decimal value (no anchor) under a pending key. It records the positions and
        builds the values `_scalar` would; False leaves anything else to `_scalar`."""
        if event.tag is not None or not event.implicit[0] or event.anchor is not None:
            return False
        text = event.value
        key = top.key
        mark = event.start_mark
        if key is _NO_KEY:
            if text == "<<" or text in top.value or _resolve_plain(text) != _STR_TAG:
                return False  # a merge, a duplicate, a key that is not text
            top.key = text
            top.key_pos = (self.file, mark.line + 1, mark.column + 1)
            return True
        if key is _MERGE_TAG or self.expanded >= MAX_EXPANDED_VALUES:
            return False
        value = _plain_value(text)
        if value is _GENERAL:
            return False
        path = (*top.path, key)
        self.smap.values[path] = (self.file, mark.line + 1, mark.column + 1)
        self.expanded += 1
        top.size += 1
        top.key = _NO_KEY
        top.value[key] = value
        if top.key_pos is not None:
            self.smap.keys[path] = top.key_pos
        return True

    def _attach(self, value: Any, size: int, anchor: str | None, event: yaml.Event) -> None:
        self.expanded += size
        if self.expanded > MAX_EXPANDED_VALUES:
            raise self._fail(
                event, f"YAML aliases expand to more than {MAX_EXPANDED_VALUES:,} values"
            )
        if anchor is not None:
            self.anchors[anchor] = (value, size)
        if not self.stack:
            self.root = value
            return
        top = self.stack[-1]
        top.size += size
        if not top.is_map:
            top.value.append(value)
            return
        key = top.key
        top.key = _NO_KEY
        if key is _MERGE_TAG:
            merges = value if isinstance(value, list) else [value]
            if not all(isinstance(item, dict) for item in merges):
                raise self._fail(
                    event, "a YAML merge key (<<) needs a mapping or a list of mappings"
                )
            top.merges.extend(merges)
            return
        top.value[key] = value
        if top.key_pos is not None:
            self.smap.keys[(*top.path, key)] = top.key_pos


_plain_cache: dict[str, str] = {}
_GENERAL = object()


def _plain_value(text: str) -> Any:
    """The value of a plain (untagged, unquoted) scalar when it is text or a decimal
    integer, as SafeConstructor builds it; `_GENERAL` for anything else (the general
    path constructs it: booleans, null, floats, octal `0123`, `1_000`, timestamps...)."""
    tag = _resolve_plain(text)
    if tag == _STR_TAG:
        return text
    if tag == _INT_TAG and text.isascii() and text.isdigit() and (text[0] != "0" or text == "0"):
        return int(text)
    return _GENERAL


def _resolve_plain(value: str) -> str:
    """The implicit tag of a plain scalar, as SafeLoader resolves it (memoised: values repeat)."""
    tag = _plain_cache.get(value)
    if tag is None:
        tag = _resolver.resolve(yaml.ScalarNode, value, (True, False))
        if len(_plain_cache) < 65_536:
            _plain_cache[value] = tag
    return tag
