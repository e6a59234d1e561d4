"""The cluster state on disk, read and changed at a cost that does not grow with the VMs.

state.json used to be read whole by every simulated command and rewritten whole by every
change: O(VMs) per call, O(VMs²) for a cold apply (a 1,000-VM state is 2.5 MB: ~60 ms to
parse, ~90 ms to write, several times per API call). Now:

- `state.json` is a snapshot, `state.journal` the changes since: a first line naming the
  snapshot it extends (`{"base": [inode, size, mtime_ns]}`), then one JSON line per change
  (`{"core": {KEY: VALUE}, "drop": [KEY], "set": {"vms": {K: V}, ...}, "del": {"vms": [K]}}`).
  A change appends one line holding only what changed (one `write`, under the exclusive
  lock; a torn last line, from a killed writer, is ignored and cut off by the next one).
  When the journal outgrows the snapshot (and 1 MiB), it is folded in: snapshot rewritten
  (tmp + fsync + rename), journal restarted. A journal whose base is not the snapshot (one
  written by something else, by `write_json_atomic` say) is ignored, so state.json written
  whole by anyone is still the state.
- A process keeps what it has read (`_Cache`): each section's entries as encoded bytes;
  it reads only the journal lines added since, and the whole files only when the snapshot
  is another. The daemon, which answers the host tools in-process, so pays a journal line
  per change and nothing per VM.
- The large sections (`vms`, `tasks`) are handed out as `Shards`: a mapping that decodes an
  entry when it is first touched, so a snapshot costs nothing per entry, and a change is
  found by encoding only the entries that were touched (compared with their bytes).

`read_state()` and `locked_state()` keep their contracts: a consistent snapshot, and a
state to change in place, written back when the block succeeds (nothing when it raises).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

SHARDED = ("tasks", "vms")
"""The sections kept entry by entry: the ones that grow with the VMs."""
COMPACT_MIN = 1 << 20
"""Bytes of journal below which it is never folded into the snapshot."""

_ENCODER = msgspec.json.Encoder(order="sorted")
_decode = msgspec.json.decode
_MUTEX = threading.Lock()  # the daemon's threads share one cache per root


def encode(value: Any) -> bytes:
    """Canonical JSON (sorted keys, compact): equal values give equal bytes."""
    try:
        return _ENCODER.encode(value)
    except TypeError:  # a dict with non-string keys: as json would write it
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


class Shards(MutableMapping[str, Any]):
    """A section of the state whose entries are decoded when first used (see the module)."""

    __slots__ = ("_base", "_gone", "_live")

    def __init__(self, base: Mapping[str, bytes]) -> None:
        self._base = base  # never changed: the cache replaces its maps, it does not edit them
        self._live: dict[str, Any] = {}
        self._gone: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        try:
            return self._live[key]
        except KeyError:
            pass
        if key in self._gone:
            raise KeyError(key)
        value = self._live[key] = _decode(self._base[key])
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self._live[key] = value
        self._gone.discard(key)

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self._live.pop(key, None)
        if key in self._base:
            self._gone.add(key)

    def __contains__(self, key: object) -> bool:
        return key in self._live or (key in self._base and key not in self._gone)

    def _keys(self) -> Iterator[str]:
        yield from (key for key in self._base if key not in self._gone)
        yield from (key for key in self._live if key not in self._base)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._keys()))  # the order state.json's sorted keys gave

    def __len__(self) -> int:
        return sum(1 for _ in self._keys())

    def __repr__(self) -> str:
        return repr(dict(self.items()))

    def encoded(self, key: str) -> bytes | None:
        """The entry's bytes as the state holds them, while this snapshot has not taken it
        out (decoded, set or deleted): a key for what is derived from the entry alone."""
        if key in self._live or key in self._gone:
            return None
        return self._base.get(key)

    def changes(self) -> tuple[dict[str, bytes], list[str]]:
        """(entries set or changed, as bytes; keys deleted) since the snapshot was taken."""
        changed = {}
        for key, value in self._live.items():
            data = encode(value)
            if self._base.get(key) != data:
                changed[key] = data
        return changed, sorted(self._gone)


@dataclass
class _Cache:
    """What one process has read of a root: the state as bytes, and how far it has read."""

    snapshot: tuple[int, int, int] | None  # state.json's (inode, size, mtime_ns)
    core: dict[str, bytes] = field(default_factory=dict)
    shards: dict[str, dict[str, bytes]] = field(default_factory=dict)
    journal: int | None = None  # the journal's inode, once read
    offset: int = 0  # bytes of it applied (complete lines)
    valid: bool = True  # its base is this snapshot


_CACHES: dict[Path, _Cache] = {}


def _stamp(info: os.stat_result) -> tuple[int, int, int]:
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def _load_snapshot(path: Path, stamp: tuple[int, int, int]) -> _Cache:
    """The cache of a snapshot: its entries split out as bytes, not parsed (a process
    that reads the state once, a runcmd runner say, pays a scan, not a parse of every VM)."""
    try:
        doc = _RAW_MAP.decode(path.read_bytes())
        cache = _Cache(stamp)
        for key, value in doc.items():
            if key not in SHARDED:
                cache.core[key] = bytes(value)
        for section in SHARDED:
            raw = bytes(doc.get(section) or b"null")
            entries = _RAW_MAP.decode(raw) if raw != b"null" else {}
            cache.shards[section] = {key: bytes(value) for key, value in entries.items()}
    except msgspec.ValidationError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    return cache


def _apply(cache: _Cache, change: dict[str, Any], owned: set[str] | None = None) -> None:
    """One change (its values as encoded bytes) onto the cache: new maps for the sections
    it changes, so snapshots already handed out keep theirs; `owned` names the maps made
    new by this batch already (a replay of many lines copies each map once, not per line)."""
    owned = set() if owned is None else owned
    if change.get("core") or change.get("drop"):
        if "" not in owned:
            cache.core = dict(cache.core)
            owned.add("")
        cache.core.update(change.get("core") or {})
        for key in change.get("drop") or ():
            cache.core.pop(key, None)
    for section in SHARDED:
        sets = (change.get("set") or {}).get(section) or {}
        dels = (change.get("del") or {}).get(section) or ()
        if sets or dels:
            if section not in owned:
                cache.shards[section] = dict(cache.shards.get(section, {}))
                owned.add(section)
            entries = cache.shards[section]
            entries.update(sets)
            for key in dels:
                entries.pop(key, None)


class _Line(msgspec.Struct):
    """A journal line, its values left as bytes (`_apply` stores them as they are)."""

    base: list[int] | None = None
    core: dict[str, msgspec.Raw] = msgspec.field(default_factory=dict)
    drop: list[str] = msgspec.field(default_factory=list)
    set: dict[str, dict[str, msgspec.Raw]] = msgspec.field(default_factory=dict)
    dels: dict[str, list[str]] = msgspec.field(default_factory=dict, name="del")


_LINE = msgspec.json.Decoder(_Line)
_RAW_MAP = msgspec.json.Decoder(dict[str, msgspec.Raw])


def _as_bytes(line: _Line) -> dict[str, Any]:
    """A journal line in `_apply`'s form."""
    return {
        "core": {key: bytes(value) for key, value in line.core.items()},
        "drop": line.drop,
        "set": {s: {k: bytes(v) for k, v in entries.items()} for s, entries in line.set.items()},
        "del": line.dels,
    }


def _line(change: dict[str, Any]) -> bytes:
    """`_apply`'s form as one journal line (the encoded values embedded as they are)."""
    out: dict[str, Any] = {}
    if change.get("core"):
        out["core"] = {key: msgspec.Raw(data) for key, data in change["core"].items()}
    if change.get("drop"):
        out["drop"] = change["drop"]
    if change.get("set"):
        out["set"] = {
            section: {key: msgspec.Raw(data) for key, data in entries.items()}
            for section, entries in change["set"].items()
        }
    if change.get("del"):
        out["del"] = change["del"]
    return _ENCODER.encode(out) + b"\n"


def _read_journal(path: Path, cache: _Cache) -> bool:
    """Apply the journal's new complete lines; False if it is another file than the one
    read so far (then the caller reloads everything)."""
    try:
        handle = open(path, "rb")  # noqa: SIM115  (closed by the `with` below)
    except FileNotFoundError:
        return cache.journal is None
    with handle:
        info = os.fstat(handle.fileno())
        if cache.journal is not None and info.st_ino != cache.journal:
            return False
        cache.journal = info.st_ino
        if info.st_size <= cache.offset or not cache.valid:
            return True
        handle.seek(cache.offset)
        data = handle.read()
    end = data.rfind(b"\n") + 1
    owned: set[str] = set()
    for line in data[:end].splitlines():
        record = _LINE.decode(line)
        if cache.offset == 0:  # the header: which snapshot these changes extend
            cache.valid = tuple(record.base or ()) == cache.snapshot
            if not cache.valid:
                return True
        else:
            _apply(cache, _as_bytes(record), owned)
        cache.offset += len(line) + 1
    return True


def _sync(root_path: Path, empty: dict[str, Any]) -> _Cache:
    """The cache of this root, brought up to date (called with the file lock held)."""
    state, journal = root_path / "state.json", root_path / "state.journal"
    try:
        stamp = _stamp(os.stat(state))
    except FileNotFoundError:
        cache = _Cache(None, core={k: encode(v) for k, v in empty.items() if k not in SHARDED})
        cache.shards = {section: {} for section in SHARDED}
        _CACHES.pop(root_path, None)
        return cache
    cache = _CACHES.get(root_path)
    if cache is None or cache.snapshot != stamp or not _read_journal(journal, cache):
        _CACHES.pop(root_path, None)
        cache = _load_snapshot(state, stamp)
        _read_journal(journal, cache)
        _CACHES[root_path] = cache
    return cache


def _snapshot_of(cache: _Cache) -> dict[str, Any]:
    state: dict[str, Any] = {key: _decode(data) for key, data in cache.core.items()}
    for section in SHARDED:
        state[section] = Shards(cache.shards.get(section, {}))
    return dict(sorted(state.items()))


def _changes(cache: _Cache, state: dict[str, Any]) -> dict[str, Any]:
    core = {}
    for key, value in state.items():
        if key not in SHARDED and cache.core.get(key) != (data := encode(value)):
            core[key] = data
    change: dict[str, Any] = {}
    if core:
        change["core"] = core
    if drop := sorted(key for key in cache.core if key not in state):
        change["drop"] = drop
    for section in SHARDED:
        base = cache.shards.get(section, {})
        entries = state.get(section)
        if isinstance(entries, Shards) and entries._base is base:
            changed, gone = entries.changes()
        else:  # replaced by a plain mapping (or removed): compare every entry
            new = {key: encode(value) for key, value in (entries or {}).items()}
            changed = {key: data for key, data in new.items() if base.get(key) != data}
            gone = sorted(key for key in base if key not in new)
        if changed:
            change.setdefault("set", {})[section] = changed
        if gone:
            change.setdefault("del", {})[section] = gone
    return change


def _write_atomic(path: Path, data: bytes, *, sync: bool) -> os.stat_result:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        if sync:
            handle.flush()
            os.fsync(handle.fileno())
        info = os.fstat(handle.fileno())
    os.replace(tmp, path)
    return info


def _fold(root_path: Path, cache: _Cache) -> None:
    """Write the whole state as the snapshot and start an empty journal based on it."""
    doc: dict[str, Any] = {key: msgspec.Raw(data) for key, data in cache.core.items()}
    for section in SHARDED:
        doc[section] = {k: msgspec.Raw(v) for k, v in cache.shards.get(section, {}).items()}
    info = _write_atomic(root_path / "state.json", _ENCODER.encode(doc), sync=True)
    cache.snapshot = _stamp(info)
    header = encode({"base": list(cache.snapshot)}) + b"\n"
    journal = _write_atomic(root_path / "state.journal", header, sync=False)
    cache.journal, cache.offset, cache.valid = journal.st_ino, len(header), True
    _CACHES[root_path] = cache


def _commit(root_path: Path, cache: _Cache, state: dict[str, Any]) -> None:
    change = _changes(cache, state)
    if not change:
        return  # nothing changed: nothing written, nobody woken
    line = _line(change)
    _apply(cache, change)
    if cache.snapshot is None or not cache.valid or cache.journal is None:
        _fold(root_path, cache)
        return
    journal = root_path / "state.journal"
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND)
    try:
        info = os.fstat(fd)
        if info.st_ino != cache.journal or info.st_size != cache.offset:  # a torn line
            os.ftruncate(fd, cache.offset)
        os.write(fd, line)
    finally:
        os.close(fd)
    cache.offset += len(line)
    if cache.offset > max(COMPACT_MIN, cache.snapshot[1]):
        _fold(root_path, cache)


@contextlib.contextmanager
def _flock(root_path: Path, mode: int) -> Iterator[None]:
    root_path.mkdir(parents=True, exist_ok=True)
    fd = os.open(root_path / "state.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def read(root_path: Path, empty: dict[str, Any]) -> dict[str, Any]:
    """A consistent snapshot of the state (`empty` if the root has none yet)."""
    with _flock(root_path, fcntl.LOCK_SH), _MUTEX:
        return _snapshot_of(_sync(root_path, empty))


@contextlib.contextmanager
def locked(root_path: Path, empty: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The state to change in place, under the exclusive lock; what changed is written
    when the block succeeds."""
    with _flock(root_path, fcntl.LOCK_EX):
        with _MUTEX:
            cache = _sync(root_path, empty)
            state = _snapshot_of(cache)
        yield state
        with _MUTEX:
            _commit(root_path, cache, state)
