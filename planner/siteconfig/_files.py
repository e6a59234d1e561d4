"""Reading site-config YAML files into checked Structs, and directories of them lazily.

Every file goes through the manifest's own pipeline (`dsl.decode_source`,
`dsl.load_yaml`, `dsl.convert_checked`), so a typo in a preset is reported exactly like a
typo in a manifest: file:line:col, the source line, and "did you mean". A `DslError`
from here is raised as is; callers that collect problems catch it.

Directories (`presets/`, `specs/`, `postures/`) are listed once, when the site config is
loaded, and each file is read the first time its name is looked up. A big site config
therefore costs one `scandir` per directory, and a broken spec that no manifest uses
does not stop a manifest that does not use it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

from pveplan import dsl

from ._model import SPEC_CONFIG_KEYS, Spec

T = TypeVar("T")

SUFFIX = ".yaml"


def read_yaml(path: Path) -> tuple[Any, dsl.SourceMap]:
    """The plain data and source map of one YAML file; an empty file is an empty mapping."""
    file = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise dsl.DslError.at(None, f"cannot read {file}: {exc.strerror or exc}") from None
    data, smap = dsl.load_yaml(dsl.decode_source(raw, file), file)
    if data is None:  # only comments: homestak treats it as {}
        data = {}
        smap.values[()] = (file, 1, 1)
    return data, smap


def load_struct(model: type[T], path: Path, what: str) -> tuple[T, dsl.SourceMap]:
    """One file as a checked `model` instance, with its source map for later errors."""
    data, smap = read_yaml(path)
    if model is Spec:
        data = _split_spec_config(data)
    return dsl.convert_checked(model, data, smap, what=what), smap


def _split_spec_config(data: Any) -> Any:
    """Move a spec's open-ended `config` keys into `config.extra` (the schema allows them)."""
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        return data
    config = data["config"]
    known = {k: v for k, v in config.items() if k in SPEC_CONFIG_KEYS}
    extra = {k: v for k, v in config.items() if k not in SPEC_CONFIG_KEYS}
    if extra:
        known["extra"] = extra
    return {**data, "config": known}


def list_names(folder: Path | None) -> tuple[str, ...]:
    """The stems of `*.yaml` files in `folder` (sorted; hidden files skipped)."""
    if folder is None:
        return ()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return ()
    names = [
        e.name[: -len(SUFFIX)]
        for e in entries
        if e.name.endswith(SUFFIX)
        and not e.name.startswith(".")
        and len(e.name) > len(SUFFIX)
        and e.is_file()
    ]
    return tuple(sorted(names))


class Documents(Mapping[str, T], Generic[T]):
    """A directory of same-kind YAML files as a read-only mapping, each read on first use.

    `name in docs` and iteration over names never read a file; indexing reads (and
    caches) that one file, raising `KeyError` for a name with no file and `DslError` for a
    file that is not valid. Not thread-safe; a site config belongs to one command.
    """

    def __init__(self, model: type[T], folder: Path | None, what: str) -> None:
        self.model = model
        self.folder = folder
        self.what = what
        self._names = list_names(folder)
        self._known = frozenset(self._names)
        self._loaded: dict[str, tuple[T, dsl.SourceMap]] = {}

    def path(self, name: str) -> Path:
        """The file that defines `name` (whether or not it exists)."""
        assert self.folder is not None
        return self.folder / f"{name}{SUFFIX}"

    def entry(self, name: str) -> tuple[T, dsl.SourceMap]:
        """The document and its source map (positions for errors about its contents)."""
        if name not in self._known:
            raise KeyError(name)
        found = self._loaded.get(name)
        if found is None:
            found = self._loaded[name] = load_struct(self.model, self.path(name), self.what)
        return found

    def __getitem__(self, name: str) -> T:
        return self.entry(name)[0]

    def __contains__(self, name: object) -> bool:
        return name in self._known

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"Documents({self.what}s in {self.folder}: {', '.join(self._names) or '(none)'})"
