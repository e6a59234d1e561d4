"""The self-contained pveplan bundle that the driver ships to nested PVE hosts.

A nested host has no network to install pveplan from, and its remote executor must run
*exactly* the driver's code (the wire protocol between the two is not versioned across
releases). So the driver packs what it is running itself (pveplan's packages, taken from
where they are imported, and every file of each runtime dependency) into one deterministic
archive named by its sha256, copies it over SFTP once per host, and installs it with a fixed
Python program. The remote side then runs `python3 -I -S .pveplan/bundles/HASH/bundle/run.py`:
isolated, without site-packages, so nothing installed on the host can shadow the bundle.

Compiled extensions (msgspec, cryptography, cffi, ...) tie a bundle to the driver's Python
major.minor and platform; `ensure_bundle` checks the host's `python3` before shipping and
refuses with a message that says what to do when they differ.

Layout of the archive (every entry under one top directory):

    bundle/BUNDLE.json   version, python, platform, files with sha256 (for humans/debugging)
    bundle/lib/...       pveplan (its cli, planner, executor, dsl, store, sim) and the runtime dependencies
    bundle/run.py        the launcher: puts lib/ first on sys.path, runs pveplan.cli.main
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import os
import re
import sys
import sysconfig
import tarfile
import tempfile
import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

import msgspec
import trio

from pveplan.executor._errors import ExecutorError
from pveplan.executor.channels import Channel
from pveplan.planner import __version__

from ._scripts import INSTALL_CODE, PROBE_CODE, RUN_PY

FORMAT = 3
"""Bumped whenever the layout or the launcher changes, so cached archives are rebuilt."""

TOP = "bundle"
PACKAGES = (
    "pveplan",
    "pveplan.cli",
    "pveplan.planner",
    "pveplan.executor",
    "pveplan.dsl",
    "pveplan.store",
    "pveplan.sim",
)
"""pveplan's import packages; `pveplan` itself holds only its __init__ (the others are
folders of their own in a checkout, mapped into the namespace by the installer)."""
DISTRIBUTION = "pveplan"

NOT_SHIPPED = frozenset({"psycopg", "psycopg-binary"})
"""Distributions a remote executor never imports: it keeps its own local store, so the
PostgreSQL client (with the libpq and OpenSSL it carries, megabytes) stays home."""

REMOTE_ROOT = "/root/.pveplan/bundles"
"""Where bundles live on a host, as an SFTP path (absolute: the remote user is root)."""
REMOTE_REL = ".pveplan/bundles"
"""The same directory relative to root's HOME, where remote commands start."""

_COMPRESS_LEVEL = 6  # level 9 saves ~2 % here for twice the time
_HASH_RE = re.compile(r"[0-9a-f]{64}")


class BundleError(ExecutorError):
    """A bundle cannot be built, shipped or installed; `str()` is the message for the user."""


class Bundle(msgspec.Struct, frozen=True, kw_only=True):
    """A built archive in the local cache, and what it needs on the far side."""

    hash: str  # sha256 hex of the archive bytes (the archive is deterministic)
    path: Path  # the .tar.gz in the cache dir, named HASH.tar.gz
    python: str  # the driver's major.minor, e.g. "3.11"
    platform: str  # sysconfig.get_platform(), e.g. "linux-x86_64"
    version: str  # pveplan's version
    size: int


class _Cached(msgspec.Struct, frozen=True):
    """The fingerprint file's content: which archive those inputs produced."""

    hash: str
    size: int


_Input = tuple[str, Path]  # (name inside lib/, source file)


# --- what goes in ----------------------------------------------------------------------------


def _interpreter() -> tuple[str, str]:
    return f"{sys.version_info[0]}.{sys.version_info[1]}", sysconfig.get_platform()


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _wanted(spec: str, extras: frozenset[str]) -> tuple[str, frozenset[str], bool] | None:
    """(name, extras, sure) of a requirement string when it applies to this environment.

    With `packaging` the markers are evaluated exactly (`sure`: it must be installed);
    without it, anything not tied to an extra is taken if it happens to be installed.
    """
    try:
        from packaging.requirements import Requirement
    except ImportError:
        name, _, marker = spec.partition(";")
        if "extra" in marker:
            return None
        found = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", name)
        return (found.group(1), frozenset(), False) if found else None
    req = Requirement(spec)
    if req.marker is not None:
        wanted = extras or frozenset({""})
        if not any(req.marker.evaluate({"extra": extra}) for extra in wanted):
            return None
    return req.name, frozenset(req.extras), True


def _runtime_distributions() -> list[importlib.metadata.Distribution]:
    """Every distribution pveplan needs at run time, walking requirements recursively."""
    try:
        roots = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        raise BundleError(
            f"cannot build the pveplan bundle: the {DISTRIBUTION!r} distribution is not "
            "installed (install pveplan, e.g. `pip install -e .`, to run remote executors)"
        ) from None
    todo = [(spec, frozenset[str]()) for spec in roots]
    seen: dict[str, importlib.metadata.Distribution] = {}
    while todo:
        spec, extras = todo.pop()
        wanted = _wanted(spec, extras)
        if wanted is None:
            continue
        name, sub_extras, sure = wanted
        if _canonical(name) in seen or _canonical(name) in NOT_SHIPPED:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            if not sure:
                continue
            raise BundleError(
                f"cannot build the pveplan bundle: {name} (needed by {spec!r}) is not installed"
            ) from None
        seen[_canonical(name)] = dist
        todo.extend((child, sub_extras) for child in dist.requires or [])
    return [seen[key] for key in sorted(seen)]


def _skipped(parts: Iterable[str]) -> bool:
    parts = list(parts)
    return "__pycache__" in parts or parts[-1].endswith(".pyc")


def _package_files(package: str) -> Iterator[_Input]:
    """pveplan's own package files, from where the package is imported (an editable
    checkout or site-packages alike)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BundleError(f"cannot build the pveplan bundle: package {package!r} not found")
    root = Path(next(iter(spec.submodule_search_locations)))
    prefix = package.split(".")
    if package == "pveplan":  # only its own files: its subpackages may live elsewhere
        init = Path(spec.origin or root / "__init__.py")
        yield (PurePosixPath(*prefix, init.name).as_posix(), init)
        return
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        rel = Path(directory).relative_to(root)
        for file in files:
            if not file.endswith(".pyc"):
                yield (PurePosixPath(*prefix, *rel.parts, file).as_posix(), Path(directory, file))


def _distribution_files(dist: importlib.metadata.Distribution) -> Iterator[_Input]:
    """A distribution's installed files that live under its site-packages directory
    (console scripts under ../../bin are not needed: the launcher imports modules)."""
    for entry in dist.files or []:
        parts = PurePosixPath(entry).parts
        if not parts or entry.is_absolute() or ".." in parts or _skipped(parts):
            continue
        source = Path(dist.locate_file(entry))
        if source.is_file():  # RECORD may list files an installer did not keep
            yield (PurePosixPath(*parts).as_posix(), source)


def _inputs() -> list[_Input]:
    """Every file of lib/, sorted by name; a name owned twice keeps its first source."""
    chosen: dict[str, Path] = {}
    for package in PACKAGES:
        for name, source in _package_files(package):
            chosen.setdefault(name, source)
    for dist in _runtime_distributions():
        for name, source in _distribution_files(dist):
            chosen.setdefault(name, source)
    return sorted(chosen.items())


def _fingerprint(inputs: list[_Input], python: str, platform: str) -> str:
    """A cheap key for "same inputs": names, sources, sizes and mtimes, never contents."""
    sha = hashlib.sha256()
    header = [FORMAT, python, platform, __version__, hashlib.sha256(RUN_PY.encode()).hexdigest()]
    sha.update(json.dumps(header).encode())
    for name, source in inputs:
        stat = source.stat()
        sha.update(f"\n{name}\0{source}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return sha.hexdigest()


# --- the archive -----------------------------------------------------------------------------


def _entry(name: str, *, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    """A tar header that depends on nothing but the name and size."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    return info


def _manifest(files: dict[str, bytes], python: str, platform: str) -> bytes:
    listing = [
        {"path": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        for name, data in sorted(files.items())
    ]
    document = {
        "format": FORMAT,
        "version": __version__,
        "python": python,
        "platform": platform,
        "files": listing,
    }
    return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()


def _contents(inputs: list[_Input], python: str, platform: str) -> dict[str, bytes]:
    """Every file of the archive by its name under TOP (read once, ~30 MB)."""
    files = {f"lib/{name}": source.read_bytes() for name, source in inputs}
    files["run.py"] = RUN_PY.encode()
    files["BUNDLE.json"] = _manifest(files, python, platform)
    return files


def _directories(names: Iterable[str]) -> set[str]:
    found = {""}
    for name in names:
        found.update(str(parent) for parent in PurePosixPath(name).parents if str(parent) != ".")
    return found


def _write_tar(out: io.BufferedIOBase, files: dict[str, bytes]) -> None:
    """A gzip'd tar of `files` under TOP: sorted, no timestamps, no owners, fixed modes."""
    entries = [(name, True) for name in _directories(files)] + [(name, False) for name in files]
    with (
        gzip.GzipFile(
            filename="", mode="wb", fileobj=out, mtime=0, compresslevel=_COMPRESS_LEVEL
        ) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, directory in sorted(entries):
            path = f"{TOP}/{name}" if name else TOP
            if directory:
                tar.addfile(_entry(path, directory=True))
            else:
                data = files[name]
                tar.addfile(_entry(path, size=len(data)), io.BytesIO(data))


def _write_atomic(path: Path, data: bytes) -> None:
    """Write `data` into a temporary file next to `path`, then rename it over `path`:
    concurrent builders and readers see no file or a whole one, never a torn one."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _file_hash(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def _lookup(cache_dir: Path, fingerprint: str) -> _Cached | None:
    """The archive these inputs built before, when it is still there at its size."""
    try:
        cached = msgspec.json.decode(
            (cache_dir / f"{fingerprint}.fp.json").read_bytes(), type=_Cached
        )
        if (cache_dir / f"{cached.hash}.tar.gz").stat().st_size == cached.size:
            return cached
    except (OSError, msgspec.DecodeError):
        pass
    return None


def _build(cache_dir: Path, inputs: list[_Input], python: str, platform: str) -> _Cached:
    files = _contents(inputs, python, platform)
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".tar.gz", dir=cache_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            _write_tar(handle, files)
            handle.flush()
            os.fsync(handle.fileno())
        digest = _file_hash(tmp)
        size = tmp.stat().st_size
        os.chmod(tmp, 0o644)
        os.replace(tmp, cache_dir / f"{digest}.tar.gz")
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return _Cached(hash=digest, size=size)


def build_bundle(cache_dir: Path) -> Bundle:
    """The bundle of the pveplan that is running, built into `cache_dir` unless the same
    inputs (by fingerprint: paths, sizes, mtimes) already built one there."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    python, platform = _interpreter()
    inputs = _inputs()
    fingerprint = _fingerprint(inputs, python, platform)
    cached = _lookup(cache_dir, fingerprint)
    if cached is None:
        cached = _build(cache_dir, inputs, python, platform)
        _write_atomic(cache_dir / f"{fingerprint}.fp.json", msgspec.json.encode(cached))
    return Bundle(
        hash=cached.hash,
        path=cache_dir / f"{cached.hash}.tar.gz",
        python=python,
        platform=platform,
        version=__version__,
        size=cached.size,
    )


# --- the remote side -------------------------------------------------------------------------


def _python_missing(host: str, bundle: Bundle) -> BundleError:
    return BundleError(
        f"{host}: python3 is not installed, but pveplan's remote executor needs it "
        f"(Python {bundle.python} on {bundle.platform}); install it there "
        "(`apt-get install python3`) and retry"
    )


def _mismatch(host: str, remote: dict[str, str], bundle: Bundle) -> BundleError:
    return BundleError(
        f"{host}: its python3 is {remote.get('version') or remote.get('python')} on "
        f"{remote.get('platform')}, but this pveplan bundle needs Python {bundle.python} on "
        f"{bundle.platform} (its compiled dependencies are tied to the driver's interpreter); "
        f"run pveplan from a Python {remote.get('python')} environment to match the host, "
        f"or give the host a python3 {bundle.python}"
    )


async def _probe(channel: Channel, bundle: Bundle, timeout: float) -> None:
    """Refuse before shipping when the host's python3 cannot load this bundle."""
    host = channel.name
    result = await channel.run(["python3", "-I", "-S", "-c", PROBE_CODE], timeout=timeout)
    if result.exit_status == 127:
        raise _python_missing(host, bundle)
    try:
        remote = json.loads(result.stdout)
        if not isinstance(remote, dict):
            raise ValueError(remote)
    except ValueError:
        output = (result.stderr or result.stdout).decode(errors="replace").strip()
        raise BundleError(
            f"{host}: cannot check its python3 (exit {result.exit_status}): {output[-2000:]}"
        ) from None
    if remote.get("python") != bundle.python or remote.get("platform") != bundle.platform:
        raise _mismatch(host, remote, bundle)


def _read_archive(bundle: Bundle) -> bytes:
    data = bundle.path.read_bytes()
    if hashlib.sha256(data).hexdigest() != bundle.hash:
        raise BundleError(
            f"the cached bundle {bundle.path} is damaged (its sha256 is not {bundle.hash}); "
            f"delete {bundle.path.parent} and retry"
        )
    return data


async def _install(channel: Channel, bundle: Bundle, timeout: float) -> None:
    data = await trio.to_thread.run_sync(_read_archive, bundle)
    await channel.put_file(f"{REMOTE_ROOT}/{bundle.hash}.tar.gz", data, 0o600)
    argv = ["python3", "-I", "-S", "-c", INSTALL_CODE, bundle.hash]
    result = await channel.run(argv, timeout=timeout)
    if result.exit_status != 0:
        detail = result.stderr.decode(errors="replace").strip()[-2000:]
        raise BundleError(
            f"{channel.name}: installing the pveplan bundle {bundle.hash[:12]} failed "
            f"(exit {result.exit_status}): {detail or 'no message'}"
        )


_INSTALLED: weakref.WeakKeyDictionary[object, set[str]] = weakref.WeakKeyDictionary()
"""Bundle hashes known to be installed, per live SSH connection (`connection_token`): a
warm executor keeps its next hop's connection, so its sessions skip the READY check."""


async def _token(channel: Channel) -> object | None:
    token = getattr(channel, "connection_token", None)
    return await token() if token is not None else None


async def bundle_installed(channel: Channel, bundle_hash: str) -> bool:
    """Whether the bundle is installed on the channel's host (READY there), remembered for
    as long as the channel's connection lives."""
    token = await _token(channel)
    if token is not None and bundle_hash in _INSTALLED.get(token, ()):
        return True
    if await channel.get_file(f"{REMOTE_ROOT}/{bundle_hash}/READY") is None:
        return False
    if token is not None:
        _INSTALLED.setdefault(token, set()).add(bundle_hash)
    return True


async def forget_bundle(channel: Channel, bundle_hash: str) -> None:
    """Check again next time: an executor of that bundle could not be started there."""
    token = await _token(channel)
    if token is not None:
        _INSTALLED.get(token, set()).discard(bundle_hash)


async def ensure_bundle(channel: Channel, bundle: Bundle, *, timeout: float = 300.0) -> str:
    """Make `bundle` present on the channel's host, shipping it only when it is not yet
    installed there; returns the launcher's path relative to HOME
    (`.pveplan/bundles/HASH/bundle/run.py`), to run as `python3 -I -S PATH ...`.

    Raises BundleError when the host cannot run it (no python3, another Python or platform)
    or the install fails; the channel's own ChannelError when it cannot reach the host.
    """
    if not _HASH_RE.fullmatch(bundle.hash):
        raise ValueError(f"not a bundle hash: {bundle.hash!r}")
    launcher = f"{REMOTE_REL}/{bundle.hash}/{TOP}/run.py"
    try:
        with trio.fail_after(timeout):
            if await bundle_installed(channel, bundle.hash):
                return launcher
            await _probe(channel, bundle, timeout)
            await _install(channel, bundle, timeout)
            token = await _token(channel)
            if token is not None:
                _INSTALLED.setdefault(token, set()).add(bundle.hash)
    except trio.TooSlowError:
        raise BundleError(
            f"{channel.name}: shipping the pveplan bundle ({bundle.size / 1e6:.1f} MB) "
            f"took longer than {timeout:g}s"
        ) from None
    return launcher


KEPT_ARCHIVE = "bundle.tar.gz"
"""The verified archive, kept inside an installed bundle's directory (next to READY)."""


@functools.cache
def running_bundle() -> Bundle | None:
    """The installed bundle this process runs from (a nested host's executor), or None.
    Found once per process (its BUNDLE.json lists every file: a warm executor asks for it
    every session); the warm executor leaves when the install goes away.

    Inside an install the code lives in `HASH/bundle/lib/pveplan/executor/remote/`; the archive it
    came from is kept as `HASH/bundle.tar.gz`, so the host can ship exactly the same bytes
    one level further down without building anything (its Python may lack the metadata).
    """
    here = Path(__file__).resolve()
    if len(here.parents) < 6:  # a checkout near the root: certainly not an install
        return None
    top, install = here.parents[4], here.parents[5]
    archive = install / KEPT_ARCHIVE
    if top.name != TOP or not _HASH_RE.fullmatch(install.name) or not archive.is_file():
        return None
    if not (install / "READY").is_file():
        return None
    try:
        about = json.loads((top / "BUNDLE.json").read_text())
    except (OSError, ValueError):
        return None
    return Bundle(
        hash=install.name,
        path=archive,
        python=str(about.get("python", "")),
        platform=str(about.get("platform", "")),
        version=str(about.get("version", "")),
        size=archive.stat().st_size,
    )


def current_bundle(cache_dir: Path) -> Bundle:
    """The bundle to ship to nested hosts: the one we run from, else one built now."""
    return running_bundle() or build_bundle(cache_dir)
