"""The pveplan bundle: built deterministically and once, shipped once per host, installed by a
fixed program that refuses damaged archives, and runnable under `python3 -I -S`.

Everything is real: the archive is built from this environment, "remote" commands are
subprocesses whose HOME is a temporary directory, and `python3` is the interpreter under the
driver's venv (`sys._base_executable`), so the launcher cannot lean on the venv's packages.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path

import pytest
import trio

from pveplan.executor.channels import CommandResult, LocalChannel
from pveplan.executor.remote import _bundle
from pveplan.executor.remote._bundle import (
    INSTALL_CODE,
    REMOTE_REL,
    REMOTE_ROOT,
    Bundle,
    BundleError,
    build_bundle,
    ensure_bundle,
)
from pveplan.planner._version import __version__

PYTHON = sys._base_executable  # the interpreter under the venv: no pveplan deps of its own


class HomeChannel:
    """A Channel whose host is a temporary HOME: commands run with cwd=HOME and the PATH
    given, SFTP paths under /root/ map into HOME. Counts uploads; `tamper` damages them."""

    def __init__(self, home: Path, bin_dir: Path, *, tamper: bool = False) -> None:
        self.name = "nested-1"
        self.home = home
        self.puts: list[str] = []
        self.tamper = tamper
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(home), "LC_ALL": "C"}
        self._local = LocalChannel(self.name, env=env, cwd=home)

    def _map(self, path: str) -> str:
        assert path.startswith("/root/"), path
        return str(self.home / path.removeprefix("/root/"))

    async def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 60.0
    ) -> CommandResult:
        return await self._local.run(argv, input=input, timeout=timeout)

    async def put_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        self.puts.append(path)
        if self.tamper:
            data = data[:1000] + bytes([data[1000] ^ 0x01]) + data[1001:]
        await self._local.put_file(self._map(path), data, mode)

    async def get_file(self, path: str) -> bytes | None:
        return await self._local.get_file(self._map(path))


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return build_bundle(tmp_path_factory.mktemp("bundle-cache"))


def _bin_with(tmp_path: Path, script: str | None = None) -> Path:
    """A directory for PATH whose python3 is the real interpreter, or `script`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python3 = bin_dir / "python3"
    if script is None:
        python3.symlink_to(PYTHON)
    else:
        python3.write_text(script)
        python3.chmod(0o755)
    return bin_dir


def _channel(tmp_path: Path, script: str | None = None, **kwargs: bool) -> HomeChannel:
    home = tmp_path / "home"
    home.mkdir()
    return HomeChannel(home, _bin_with(tmp_path, script), **kwargs)


def _ensure(channel: HomeChannel, bundle: Bundle) -> str:
    return trio.run(ensure_bundle, channel, bundle)


def _bundles_dir(channel: HomeChannel) -> Path:
    return channel.home / REMOTE_REL


# --- building --------------------------------------------------------------------------------


def test_archive_layout(bundle: Bundle) -> None:
    assert bundle.path.name == f"{bundle.hash}.tar.gz"
    assert hashlib.sha256(bundle.path.read_bytes()).hexdigest() == bundle.hash
    assert bundle.size == bundle.path.stat().st_size
    assert (bundle.version, bundle.python) == (
        __version__,
        f"{sys.version_info[0]}.{sys.version_info[1]}",
    )
    with tarfile.open(bundle.path) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert {
        "bundle/run.py",
        "bundle/BUNDLE.json",
        "bundle/lib/pveplan/cli/__init__.py",
    } <= set(names)
    assert "bundle/lib/pveplan/executor/remote/_bundle.py" in names
    assert "bundle/lib/pveplan/sim/_pvecli.py" in names  # the simulator, a package of its own
    assert any(n.startswith("bundle/lib/msgspec/_core.") for n in names)  # compiled dep
    assert any(n.startswith("bundle/lib/cryptography/") for n in names)  # transitive dep
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert not any(n.startswith("bundle/lib/pytest") for n in names)  # extra == "test"
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in members)
    assert {m.mode for m in members if m.isdir()} == {0o755}
    assert {m.mode for m in members if m.isfile()} == {0o644}
    with bundle.path.open("rb") as handle:
        assert handle.read(10)[4:8] == b"\0\0\0\0"  # gzip header mtime


def test_two_builds_are_byte_identical(bundle: Bundle, tmp_path: Path) -> None:
    again = build_bundle(tmp_path)  # another cache dir: built from scratch
    assert again.hash == bundle.hash
    assert again.path.read_bytes() == bundle.path.read_bytes()


def test_second_build_uses_the_cache(
    bundle: Bundle, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cache = bundle.path.parent
    before = bundle.path.stat().st_mtime_ns

    def no_tar(*args: object) -> None:
        raise AssertionError("re-tarred although nothing changed")

    monkeypatch.setattr(_bundle, "_build", no_tar)
    again = build_bundle(cache)
    assert again == bundle
    assert bundle.path.stat().st_mtime_ns == before


# --- shipping and installing -----------------------------------------------------------------


def test_ships_once_then_reuses_and_the_launcher_runs_isolated(
    bundle: Bundle, tmp_path: Path
) -> None:
    channel = _channel(tmp_path)
    launcher = _ensure(channel, bundle)
    assert launcher == f"{REMOTE_REL}/{bundle.hash}/bundle/run.py"
    assert channel.puts == [f"{REMOTE_ROOT}/{bundle.hash}.tar.gz"]
    installed = _bundles_dir(channel)
    assert sorted(os.listdir(installed)) == [bundle.hash]  # tarball and tmp dirs gone
    assert (installed / bundle.hash / "READY").read_text().strip() == bundle.hash

    assert _ensure(channel, bundle) == launcher
    assert len(channel.puts) == 1  # reused, nothing shipped

    clean_env = {"PATH": "/usr/bin:/bin", "HOME": str(channel.home)}
    done = subprocess.run(
        [PYTHON, "-I", "-S", launcher, "--version"],  # as a host runs python3
        cwd=channel.home,
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"pveplan {__version__}"


def test_installed_dependencies_import_from_the_bundle(bundle: Bundle, tmp_path: Path) -> None:
    """`--version` imports little; the executor needs the compiled deps to load as well."""
    channel = _channel(tmp_path)
    launcher = _ensure(channel, bundle)
    lib = channel.home / Path(launcher).parent / "lib"
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import asyncssh, cryptography.hazmat.primitives.asymmetric.ed25519, msgspec, trio,"
        " trio_asyncio, yaml, lark, xxhash, pveplan.executor.channels, pveplan.cli._app as app;"
        "mods = [asyncssh, msgspec, trio_asyncio, yaml, xxhash, app];"
        "bad = [m.__name__ for m in mods if not m.__file__.startswith(sys.argv[1])];"
        "print(bad)"
    )
    done = subprocess.run(
        [PYTHON, "-I", "-S", "-c", code, str(lib)],
        cwd=channel.home,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_tampered_upload_is_refused_and_nothing_installed(bundle: Bundle, tmp_path: Path) -> None:
    channel = _channel(tmp_path, tamper=True)
    with pytest.raises(BundleError, match="corrupt") as caught:
        _ensure(channel, bundle)
    assert "nested-1" in str(caught.value)
    assert "exit 3" in str(caught.value)
    assert os.listdir(_bundles_dir(channel)) == []  # no bundle, no READY, no tmp, no tarball


def test_wrong_remote_python_is_refused_before_shipping(bundle: Bundle, tmp_path: Path) -> None:
    fake = (
        "#!/bin/sh\n"
        """echo '{"python": "3.99", "platform": "linux-x86_64", "version": "3.99.1"}'\n"""
    )
    channel = _channel(tmp_path, fake)
    with pytest.raises(BundleError) as caught:
        _ensure(channel, bundle)
    message = str(caught.value)
    assert "nested-1" in message and "3.99.1" in message and bundle.python in message
    assert bundle.platform in message
    assert channel.puts == []


def test_missing_remote_python_is_refused(bundle: Bundle, tmp_path: Path) -> None:
    channel = _channel(tmp_path, "#!/bin/sh\nexit 127\n")  # what a shell says for "not found"
    with pytest.raises(BundleError, match="python3 is not installed"):
        _ensure(channel, bundle)
    assert channel.puts == []


def _run_installer(home: Path, archive: bytes) -> subprocess.CompletedProcess[str]:
    digest = hashlib.sha256(archive).hexdigest()
    (home / REMOTE_REL).mkdir(parents=True)
    (home / REMOTE_REL / f"{digest}.tar.gz").write_bytes(archive)
    return subprocess.run(
        [PYTHON, "-I", "-S", "-c", INSTALL_CODE, digest],
        cwd=home,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("name", ["../evil", "/tmp/evil", "bundle/../../evil", "elsewhere/x"])
def test_installer_refuses_members_outside_the_bundle(tmp_path: Path, name: str) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    done = _run_installer(tmp_path, buffer.getvalue())
    assert done.returncode == 5, done.stderr
    assert "refusing archive member" in done.stderr
    assert not (tmp_path.parent / "evil").exists() and not Path("/tmp/evil").exists()
    assert not any(p.name == "READY" for p in tmp_path.rglob("*"))


def test_concurrent_identical_installs_both_succeed(bundle: Bundle, tmp_path: Path) -> None:
    """Two drivers shipping to one host: both installers succeed, one bundle remains."""
    home = tmp_path / "home"
    (home / REMOTE_REL).mkdir(parents=True)
    (home / REMOTE_REL / f"{bundle.hash}.tar.gz").write_bytes(bundle.path.read_bytes())
    argv = [PYTHON, "-I", "-S", "-c", INSTALL_CODE, bundle.hash]
    env = {"PATH": "/usr/bin:/bin"}
    procs = [
        subprocess.Popen(argv, cwd=home, env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    results = [(p.wait(timeout=30), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    assert [code for code, _ in results] == [0, 0, 0], results
    assert sorted(os.listdir(home / REMOTE_REL)) == [bundle.hash]
    assert (home / REMOTE_REL / bundle.hash / "READY").exists()
