"""Where a store lives and how its directory is laid out.

`store_path` is pure: the CLI (the only code that reads the environment) passes
`os.environ` in, and tests pass a dict. The layout is fixed so that `verify`, `gc`, a
backup script and a human with `ls` all agree on what each file is:

    <root>/store.sqlite              the database (WAL: also -wal and -shm next to it)
    <root>/objects/<h[:2]>/<h>       content-addressed blobs, read-only, named by hash
    <root>/tmp/                      blobs being written; anything here is garbage after a crash
    <root>/locks/store.lock          shared by every open store, exclusive for gc
    <root>/locks/<xxh3(ws)>.lock     one per workspace, holding its holder's JSON
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import xxhash

HASH_RE = re.compile(r"[0-9a-f]{32}")
"""An object hash: xxh3-128, 32 lowercase hex digits."""


def store_path(env: Mapping[str, str]) -> Path:
    """The store directory: `$PVEPLAN_STORE`, else the XDG state directory.

    `$XDG_STATE_HOME` counts only when absolute (the XDG spec says a relative value is
    invalid and must be ignored); the fallback is `$HOME/.local/state/pveplan`, and only
    when `env` has no HOME does this ask the operating system for the home directory.
    """
    explicit = env.get("PVEPLAN_STORE")
    if explicit:
        return Path(explicit)
    return xdg_dir(env.get("XDG_STATE_HOME"), env.get("HOME"), ".local/state")


def xdg_dir(base: str | None, home: str | None, fallback: str) -> Path:
    """`<base>/pveplan` when the XDG variable's value `base` is absolute (the XDG spec
    ignores a relative one), else `<home>/<fallback>/pveplan`; only with no `home` is the
    system asked for it."""
    if base and os.path.isabs(base):
        return Path(base) / "pveplan"
    return (Path(home) if home else Path.home()) / fallback / "pveplan"


def object_hash(data: bytes) -> str:
    """The name of a blob: xxh3-128 of its bytes, as 32 lowercase hex digits."""
    return xxhash.xxh3_128_hexdigest(data)


def is_object_hash(value: object) -> bool:
    return isinstance(value, str) and HASH_RE.fullmatch(value) is not None


@dataclass(frozen=True)
class Layout:
    """The paths of one store; computing them touches nothing on disk."""

    root: Path

    @property
    def database(self) -> Path:
        return self.root / "store.sqlite"

    @property
    def objects(self) -> Path:
        return self.root / "objects"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    @property
    def store_lock(self) -> Path:
        return self.locks / "store.lock"

    def object_path(self, digest: str) -> Path:
        """Where the blob `digest` lives. Callers must have checked `is_object_hash`."""
        return self.objects / digest[:2] / digest

    def workspace_lock(self, workspace: str) -> Path:
        """The lock file of a workspace: hashed, since a workspace name is any string."""
        return self.locks / f"{xxhash.xxh3_128_hexdigest(workspace.encode())}.lock"

    def object_files(self) -> list[Path]:
        """Every file under objects/, in a stable order, whatever its name."""
        if not self.objects.is_dir():
            return []
        return sorted(p for p in self.objects.rglob("*") if not p.is_dir())

    def tmp_files(self) -> list[Path]:
        if not self.tmp.is_dir():
            return []
        return sorted(self.tmp.iterdir())
