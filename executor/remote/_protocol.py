"""The remote executor protocol: length-prefixed msgspec frames over a byte stream.

DESIGN.md ("Remote executor protocol"): the driver says `hello`, the executor answers
`hello`; the driver sends one `plan` (the subplan's canonical bytes and its hash); the
executor streams `event`s (and a `heartbeat` every few seconds, so a silent link is noticed
in seconds, not after TCP gives up) and ends with one `result`. Either side may send
`error` instead and stop. Since protocol 2 the driver may send a `probe` instead of the
plan (the same subplan, to read, never run): the executor lists its own PVE host once,
compares it with its own store, asks the levels below it the same, and answers `probed`
(heartbeats meanwhile). An executor of protocol 1 refuses a protocol 2 hello, which the
driver reports as "executor too old", never as a failure of the plan. Every frame is a 4-byte big-endian length and a msgpack-encoded
tagged Struct; a frame longer than MAX_FRAME or one that does not decode is a
`ProtocolError`, never a crash or a hang.

The codec knows nothing of the transport: `encode_frame` gives bytes, `FrameDecoder.feed`
takes whatever chunks arrive and returns the whole frames among them. `FrameStream` reads and
writes frames over any pair of byte streams: an SSH channel on the driver's end, stdin and
stdout on the executor's.
"""

from __future__ import annotations

import struct
from typing import Literal, Protocol

import msgspec
import trio

from pveplan.executor._context import SpecServerRef
from pveplan.executor._errors import ExecutorError
from pveplan.executor._model import Event, Outputs
from pveplan.planner import LevelProbe

PROTOCOL_VERSION = 2
"""1: plan runs only; 2: adds the `probe` request and its `probed` answer."""
MAX_FRAME = 64 * 1024 * 1024
HEARTBEAT_EVERY = 2.0
"""Seconds between an executor's heartbeats while it runs a plan."""
SILENCE_LIMIT = 8.0
"""Seconds without any frame after which the driver calls the executor gone."""
_LENGTH = struct.Struct(">I")
CHUNK = 65536


class ProtocolError(ExecutorError):
    """The other side spoke something this side cannot accept (the message says what)."""


class _Frame(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    pass


class Hello(_Frame, tag="hello"):
    """First frame each way: who speaks, which protocol, which pveplan, which store."""

    protocol: int
    pveplan: str
    role: Literal["driver", "executor"]
    store_id: str = ""
    bundle: str = ""
    """The hash of the bundle the executor runs from ("" when run from a checkout)."""


class RunOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How the driver wants the subplan run (not part of any hash: run-time choices).

    `authorized_keys` are the public keys of the driver and of every executor above this
    one: the VMs this level creates trust them too, so the driver can reach every node of
    the tree (through the chain of hosts) with its own key.
    """

    verb: Literal["apply", "destroy"] = "apply"
    parallelism: int | None = None
    refresh: bool = False
    probe_live: bool = True
    """Probe this level's VMs (one listing) and converge their drift before running."""
    authorized_keys: tuple[str, ...] = ()
    spec_server: SpecServerRef | None = None
    """The driver's spec server, for the pull nodes of this level (None: no pull nodes)."""


class PlanFrame(_Frame, tag="plan"):
    """The subplan to run: its canonical encoding and the hash the driver expects."""

    plan: bytes
    hash: str
    options: RunOptions = RunOptions()


class EventFrame(_Frame, tag="event"):
    event: Event


class Heartbeat(_Frame, tag="heartbeat"):
    at: float


class Failure(msgspec.Struct, frozen=True, kw_only=True):
    """One failed step of a remote run, with where it ran (`host`, the hosts above it)."""

    address: str
    host: str
    path: tuple[str, ...] = ()
    message: str


class ResultFrame(_Frame, tag="result"):
    """How the remote run ended: counts, the outputs the parent needs, what failed."""

    status: Literal["ok", "failed", "interrupted"]
    run_id: int
    ran: int = 0
    cached: int = 0
    failed: int = 0
    skipped: int = 0
    outputs: dict[str, Outputs] = msgspec.field(default_factory=dict)
    failures: tuple[Failure, ...] = ()
    rolled_back: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


class ProbeFrame(_Frame, tag="probe"):
    """Protocol 2: read this level's drift, and that of the levels below it; run nothing.
    The subplan goes as a plan does (canonical bytes, hash checked): it says which VMs
    this level has and which nested hosts are below it."""

    plan: bytes
    hash: str


class ProbedFrame(_Frame, tag="probed"):
    """The answer to a probe: this level first (an empty path), then each level below it
    (paths from this level down), as `planner.LevelProbe`s."""

    levels: tuple[LevelProbe, ...] = ()


class ErrorFrame(_Frame, tag="error"):
    """The sender cannot go on (bad plan, version mismatch, busy store): why."""

    message: str


Frame = (
    Hello | PlanFrame | EventFrame | Heartbeat | ResultFrame | ErrorFrame | ProbeFrame | ProbedFrame
)

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Frame)


def encode_frame(frame: Frame) -> bytes:
    """The bytes of one frame: its length, then its msgpack body."""
    try:
        body = _encoder.encode(frame)
    except (msgspec.EncodeError, OverflowError) as exc:
        raise ProtocolError(f"cannot encode a {type(frame).__name__} frame: {exc}") from None
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"a {type(frame).__name__} frame of {len(body)} bytes is too large")
    return _LENGTH.pack(len(body)) + body


class FrameDecoder:
    """Incremental decoder: feed it chunks as they arrive, get back the complete frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes received that do not yet make a whole frame (non-zero at EOF: truncated)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self._buffer)
            if length > MAX_FRAME:
                raise ProtocolError(
                    f"frame length {length} exceeds the limit of {MAX_FRAME} bytes "
                    "(not a pveplan executor stream?)"
                )
            end = _LENGTH.size + length
            if len(self._buffer) < end:
                break
            body = bytes(self._buffer[_LENGTH.size : end])
            del self._buffer[:end]
            try:
                frames.append(_decoder.decode(body))
            except msgspec.DecodeError as exc:
                raise ProtocolError(f"malformed frame: {exc}") from None
        return frames


def check_hello(frame: Frame, expect: Literal["driver", "executor"], version: str) -> Hello:
    """The peer's hello, or a ProtocolError saying what does not match."""
    if isinstance(frame, ErrorFrame):
        raise ProtocolError(frame.message)
    if not isinstance(frame, Hello):
        raise ProtocolError(f"expected hello, got {type(frame).__name__}")
    if frame.role != expect:
        raise ProtocolError(f"expected a {expect}'s hello, got a {frame.role}'s")
    if frame.protocol != PROTOCOL_VERSION:
        raise ProtocolError(
            f"protocol version mismatch: this side speaks {PROTOCOL_VERSION}, "
            f"the {frame.role} speaks {frame.protocol} (pveplan {frame.pveplan})"
        )
    if frame.pveplan != version:
        raise ProtocolError(
            f"pveplan version mismatch: this side runs {version}, the {frame.role} runs "
            f"{frame.pveplan}; the driver ships its own version to nested hosts"
        )
    return frame


class ByteReceiver(Protocol):
    async def receive_some(self, max_bytes: int) -> bytes: ...


class ByteSender(Protocol):
    async def send_all(self, data: bytes) -> None: ...


class FrameStream:
    """Frames over a pair of trio byte streams (send is serialised by a lock)."""

    def __init__(self, receive: ByteReceiver, send: ByteSender) -> None:
        self._receive = receive
        self._send = send
        self._decoder = FrameDecoder()
        self._ready: list[Frame] = []
        self._lock = trio.Lock()

    async def next(self) -> Frame | None:
        """The next frame, or None at the end of the stream (ProtocolError if truncated)."""
        while not self._ready:
            data = await self._receive.receive_some(CHUNK)
            if not data:
                if self._decoder.pending:
                    raise ProtocolError("the stream ended in the middle of a frame")
                return None
            self._ready.extend(self._decoder.feed(data))
        return self._ready.pop(0)

    async def send(self, frame: Frame) -> None:
        data = encode_frame(frame)
        async with self._lock:
            await self._send.send_all(data)
