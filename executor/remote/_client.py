"""The driver end of the protocol: run a subplan on a nested host's executor.

`run_remote` starts `python3 -I -S <bundle>/run.py executor --stdio` over an SSH channel,
says hello, ships the subplan, passes every event it receives to `forward`, and returns
the `result`. `probe_remote` asks the same executor for its level's drift instead (and
the levels below it), and tells an executor too old to know the request (`ProbeUnsupported`)
from one that failed. It never waits on silence: the executor sends a heartbeat every
HEARTBEAT_EVERY seconds while it runs, so a dead link or a killed executor is an error
within SILENCE_LIMIT seconds, whatever TCP thinks. Leaving (result, error or cancel)
closes the SSH channel, which ends the remote session.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import trio

from pveplan.executor._errors import ExecutorError
from pveplan.executor._model import Event
from pveplan.executor.channels import ChannelError

from ._protocol import (
    PROTOCOL_VERSION,
    SILENCE_LIMIT,
    ErrorFrame,
    EventFrame,
    FrameStream,
    Heartbeat,
    Hello,
    PlanFrame,
    ProbedFrame,
    ProbeFrame,
    ProtocolError,
    ResultFrame,
    RunOptions,
    check_hello,
)

if TYPE_CHECKING:
    from pveplan.executor.channels import SshChannel, SshStream
    from pveplan.planner import LevelProbe, Plan

HELLO_TIMEOUT = 60.0
"""Seconds a fresh executor may take to start (a cold Python on a slow nested host)."""


class RemoteError(ExecutorError):
    """The remote run could not be carried out or followed; the message names the host."""


class ProbeUnsupported(RemoteError):
    """The executor predates the probe request (it refused this protocol's hello, or
    speaks an older one): its level is not probed, and an apply upgrades it."""


def executor_argv(launcher: str, *, warm: bool = False) -> list[str]:
    """The command that starts a remote executor session from an installed bundle's
    launcher. `warm`: relay the session to that bundle's long-lived executor (`_attach`),
    started on first use; only for a bundle of this pveplan, whose launcher knows how (an
    older bundle's would refuse the flag)."""
    argv = ["python3", "-I", "-S", launcher, "executor", "--stdio"]
    return [*argv, "--warm"] if warm else argv


async def run_remote(
    channel: SshChannel,
    argv: Sequence[str],
    subplan: Plan,
    *,
    host: str,
    version: str,
    bundle: str,
    options: RunOptions,
    forward: Callable[[Event], None],
) -> ResultFrame:
    """Run `subplan` on `host` through `channel`; its result (RemoteError if none came)."""
    from pveplan.planner import canonical

    try:
        stream = await channel.start(argv)
    except ChannelError as exc:
        raise RemoteError(f"cannot start the executor on {host}: {exc}") from None
    frames = FrameStream(stream, stream)
    try:
        with trio.fail_after(HELLO_TIMEOUT):
            await frames.send(
                Hello(protocol=PROTOCOL_VERSION, pveplan=version, role="driver", bundle=bundle)
            )
            first = await frames.next()
            if first is None:
                raise RemoteError(await _ended(stream, host, "before it said hello"))
            hello = check_hello(first, "executor", version)
            if bundle and hello.bundle and hello.bundle != bundle:
                raise RemoteError(
                    f"the executor on {host} runs bundle {hello.bundle[:12]}, not the "
                    f"{bundle[:12]} this driver shipped"
                )
            await frames.send(
                PlanFrame(plan=canonical(subplan), hash=subplan.hash, options=options)
            )
        return await _follow(frames, stream, host, forward)
    except trio.TooSlowError:
        raise RemoteError(
            f"the executor on {host} did not answer within {HELLO_TIMEOUT:g}s"
        ) from None
    except ProtocolError as exc:
        raise RemoteError(f"executor on {host}: {exc}") from None
    except ChannelError as exc:
        raise RemoteError(
            f"lost the executor on {host}: {exc}; re-run to resume (its store keeps "
            "every step that finished)"
        ) from None
    finally:
        await stream.aclose()


async def probe_remote(
    channel: SshChannel, argv: Sequence[str], subplan: Plan, *, host: str, version: str
) -> tuple[LevelProbe, ...]:
    """The levels of `host`'s executor (its own first, paths from it down), as it probed
    them. ProbeUnsupported if it is too old to know a probe; RemoteError otherwise."""
    from pveplan.planner import canonical

    try:
        stream = await channel.start(argv)
    except ChannelError as exc:
        raise RemoteError(f"cannot start the executor on {host}: {exc}") from None
    frames = FrameStream(stream, stream)
    try:
        with trio.fail_after(HELLO_TIMEOUT):
            await frames.send(Hello(protocol=PROTOCOL_VERSION, pveplan=version, role="driver"))
            first = await frames.next()
            if first is None:
                raise RemoteError(await _ended(stream, host, "before it said hello"))
            refused = _refused_hello(first, version)
            if refused:
                raise ProbeUnsupported(f"the executor on {host} {refused}")
            check_hello(first, "executor", version)
            await frames.send(ProbeFrame(plan=canonical(subplan), hash=subplan.hash))
        while True:
            with trio.fail_after(SILENCE_LIMIT):
                frame = await frames.next()
            if frame is None:
                raise RemoteError(await _ended(stream, host, "before answering the probe"))
            if isinstance(frame, ProbedFrame):
                return frame.levels
            if isinstance(frame, ErrorFrame):
                raise RemoteError(f"executor on {host}: {frame.message}")
            if not isinstance(frame, Heartbeat):
                raise RemoteError(f"executor on {host} sent an unexpected {type(frame).__name__}")
    except trio.TooSlowError:
        raise RemoteError(f"the executor on {host} did not answer in time") from None
    except ProtocolError as exc:
        raise RemoteError(f"executor on {host}: {exc}") from None
    except ChannelError as exc:
        raise RemoteError(f"lost the executor on {host}: {exc}") from None
    finally:
        await stream.aclose()


def _refused_hello(first: object, version: str) -> str:
    """Why the executor's first frame says it cannot take a probe ("" if it can): an old
    executor answers a newer hello with an error (protocol 1 checks for equality), or says
    hello with an older protocol or another pveplan version."""
    if isinstance(first, ErrorFrame):
        return f"refused this driver's hello ({first.message})"
    if isinstance(first, Hello) and first.role == "executor":
        if first.protocol < PROTOCOL_VERSION:
            return f"speaks protocol {first.protocol} (pveplan {first.pveplan})"
        if first.pveplan != version:
            return f"runs pveplan {first.pveplan}, this driver {version}"
    return ""


async def _follow(
    frames: FrameStream, stream: SshStream, host: str, forward: Callable[[Event], None]
) -> ResultFrame:
    """Pass events on until the result; silence longer than SILENCE_LIMIT is an error."""
    while True:
        try:
            with trio.fail_after(SILENCE_LIMIT):
                frame = await frames.next()
        except trio.TooSlowError:
            raise RemoteError(
                f"no word from the executor on {host} for {SILENCE_LIMIT:g}s: the connection "
                "or the executor is gone; re-run to resume (its store keeps every step that "
                "finished)"
            ) from None
        if frame is None:
            raise RemoteError(await _ended(stream, host, "before reporting a result"))
        if isinstance(frame, EventFrame):
            forward(_nested(frame.event, host))
        elif isinstance(frame, ResultFrame):
            return frame
        elif isinstance(frame, ErrorFrame):
            raise RemoteError(f"executor on {host}: {frame.message}")
        elif not isinstance(frame, Heartbeat):
            raise RemoteError(f"executor on {host} sent an unexpected {type(frame).__name__}")


def _nested(event: Event, host: str) -> Event:
    """`event` as seen from one level up: `host` goes in front of its path."""
    import msgspec

    return msgspec.structs.replace(event, path=(host, *event.path))


async def _ended(stream: SshStream, host: str, when: str) -> str:
    """Why the executor's output ended early, from its exit status and stderr."""
    with trio.move_on_after(2.0):
        while stream.exit_status is None and stream.exit_signal is None:
            await trio.sleep(0.05)
    if stream.exit_signal:
        how = f"was killed (SIG{stream.exit_signal})"
    elif stream.exit_status is not None:
        how = f"exited with status {stream.exit_status}"
    else:
        how = "stopped (the connection closed)"
    tail = await stream.stderr_tail()
    detail = f": {tail.splitlines()[-1]}" if tail else ""
    return f"the executor on {host} {how} {when}{detail}; re-run to resume"
