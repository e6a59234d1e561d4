"""The warm executor: `run.py executor --stdio --warm` relays each session to one long-lived
executor per installed bundle, started by the first session, so later sessions pay no
Python start and no imports of pveplan. It must serve exactly as a cold executor does
(hello checks, plan refusals), end a session when its driver leaves, end the relay with a
clear message when it is killed, and leave once its bundle is gone.

Real processes: a bundle built from this environment, installed into a temporary HOME,
its launcher run by the bare interpreter under `-I -S`, as a nested host runs it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from pveplan.executor.remote._bundle import build_bundle, ensure_bundle
from pveplan.executor.remote._client import executor_argv
from pveplan.executor.remote._protocol import (
    PROTOCOL_VERSION,
    ErrorFrame,
    FrameDecoder,
    Hello,
    encode_frame,
)
from pveplan.planner._version import __version__

from .test_bundle import PYTHON, _channel


class Host:
    """An installed bundle in a temporary HOME, and how to run its launcher there."""

    def __init__(self, home: Path, launcher: str) -> None:
        self.home = home
        self.launcher = launcher
        self.install = home / Path(launcher).parent.parent

    def start(self, *words: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [PYTHON, "-I", "-S", self.launcher, *words],
            cwd=self.home,
            env={"PATH": "/usr/bin:/bin", "HOME": str(self.home)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def session(self, *sent: bytes) -> tuple[int, list, str]:
        """One warm session with `sent` on stdin: (relay status, frames out, relay stderr)."""
        relay = self.start("executor", "--stdio", "--warm")
        out, err = relay.communicate(b"".join(sent), timeout=120)
        return relay.returncode, FrameDecoder().feed(out), err.decode()

    def daemon(self) -> int | None:
        """The pid of the warm executor that listens (None if none does)."""
        try:
            pid = int((self.install / "executor.lock").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) and (self.install / "executor.sock").exists() else None

    def stop(self) -> None:
        pid = self.daemon()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def host(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Host]:
    bundle = build_bundle(tmp_path_factory.getbasetemp() / "warm-bundle-cache")
    channel = _channel(tmp_path)
    made = Host(channel.home, trio.run(ensure_bundle, channel, bundle))
    try:
        yield made
    finally:
        made.stop()


def _hello(protocol: int = PROTOCOL_VERSION) -> bytes:
    return encode_frame(Hello(protocol=protocol, pveplan=__version__, role="driver"))


def test_the_driver_asks_for_the_warm_executor_only_when_told() -> None:
    launcher = ".pveplan/bundles/H/bundle/run.py"
    assert executor_argv(launcher) == ["python3", "-I", "-S", launcher, "executor", "--stdio"]
    assert executor_argv(launcher, warm=True)[-3:] == ["executor", "--stdio", "--warm"]


def test_sessions_after_the_first_are_served_by_the_same_warm_executor(host: Host) -> None:
    status, out, err = host.session(_hello())
    assert status == 0, err
    first = host.daemon()
    assert first is not None
    assert isinstance(out[0], Hello) and out[0].role == "executor"
    # the driver left after hello: the session ends as a cold executor's does
    assert isinstance(out[-1], ErrorFrame) and "expected the plan" in out[-1].message

    status, again, err = host.session(_hello())
    assert status == 0, err
    assert host.daemon() == first
    assert again[0] == out[0]  # the same store, the same bundle
    mode = (host.install / "executor.sock").stat().st_mode & 0o777
    assert mode == 0o600


def test_the_warm_executor_keeps_the_protocol_version_check(host: Host) -> None:
    status, out, _ = host.session(_hello(protocol=PROTOCOL_VERSION + 1))
    assert status == 0
    assert isinstance(out[-1], ErrorFrame)
    assert "protocol version mismatch" in out[-1].message
    status, out, _ = host.session(_hello())  # and it still serves the next one
    assert isinstance(out[0], Hello)


def test_a_killed_warm_executor_ends_the_session_with_a_clear_message(host: Host) -> None:
    host.session(_hello())
    pid = host.daemon()
    assert pid is not None
    relay = host.start("executor", "--stdio", "--warm")
    assert relay.stdin is not None and relay.stdout is not None
    relay.stdin.write(_hello())
    relay.stdin.flush()
    decoder, frames = FrameDecoder(), []
    while not frames:
        frames = decoder.feed(os.read(relay.stdout.fileno(), 65536))
    assert isinstance(frames[0], Hello)
    os.kill(pid, signal.SIGKILL)
    assert relay.wait(timeout=30) == 1  # its stdin still open: the driver did not leave
    assert relay.stderr is not None
    err = relay.stderr.read().decode()
    relay.stdin.close()
    assert "the warm executor closed the session" in err
    assert "Traceback" not in err
    status, out, err = host.session(_hello())  # the next session starts a new one
    assert status == 0, err
    assert isinstance(out[0], Hello) and host.daemon() not in (None, pid)


def test_the_warm_executor_leaves_once_its_bundle_is_gone(host: Host) -> None:
    host.session(_hello())
    pid = host.daemon()
    assert pid is not None
    (host.install / "READY").unlink()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (host.install / "executor.sock").exists():
        time.sleep(0.1)
    assert not (host.install / "executor.sock").exists()
    deadline = time.monotonic() + 10  # the socket goes just before the process ends
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie no init has reaped yet does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
