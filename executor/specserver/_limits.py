"""What one client, and all of them together, may make the spec server hold, and for how long.

The server answers whoever can route to the driver, so a client that opens connections and
then says nothing, or says it one byte at a time, must not hold a connection for longer than
a bounded time, nor more than its share of them. `Limits` is the set of these bounds (each a
site.yaml `spec_server:` setting, see docs/pull.md "Limits"); `Admission` counts open
connections per client address and in total and says why one is refused; `Notices` writes
the refusal and timeout lines, at a bounded rate, because a flood of refused connections
must not become a flood of log lines.

Nothing here reads the network or a request: the reasons logged name a peer address and a
count or a duration, never a header, a path or a token.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from ._log import clean, timestamp

NOTICE_BURST = 20
"""Refusal/timeout lines written per `NOTICE_WINDOW`; more are counted and summed up."""
NOTICE_WINDOW = 1.0


class Limits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The spec server's bounds; the defaults are safe for a lab of pull nodes.

    Timeouts are seconds, sizes bytes. Why these defaults:
    - `handshake_timeout` 10: a TLS handshake is one or two round trips; even a loaded VM on
      a nested host finishes it in well under a second. A client that opens TCP and never
      completes TLS holds a connection for at most this long.
    - `header_timeout` 10: pveplan's clients send a request head (under 1 KB) in one write,
      right after the handshake or within the idle window; this is what ends a client that
      sends its head a line at a time.
    - `body_timeout` 30: the whole body, once the head is in (so also every read of it).
      The largest legitimate body is a node report, a few KB; 30 s for `max_body` is 35 KB/s.
    - `idle_timeout` 30: between requests on a kept-alive connection. The driver polls a
      node's report at most 2 s apart, so its connection stays; a forgotten one goes.
    - `send_timeout` 30: one write to a client that does not read.
    - `max_connections` 256: far more than a lab's nodes use at once (one each), far below
      the usual limit of 1024 open files.
    - `max_connections_per_address` 32: the driver keeps one connection per pull node it
      waits for (up to --parallelism, 10 by default, per level), and in the simulator every
      level and every VM connects from 127.0.0.1; one client still gets 1/8 of the total.
      Raise it when many nodes reach the server through one NAT address.
    - `max_body` 1 MiB: a node report is a few KB; only `POST /report` has a body.
    """

    handshake_timeout: float = 10.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    idle_timeout: float = 30.0
    send_timeout: float = 30.0
    max_connections: int = 256
    max_connections_per_address: int = 32
    max_body: int = 1024 * 1024

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"spec server limit {name} must be a positive number: {value!r}")
        if self.max_connections_per_address > self.max_connections:
            raise ValueError(
                "spec server limit max_connections_per_address "
                f"({self.max_connections_per_address}) exceeds max_connections "
                f"({self.max_connections})"
            )


class Admission:
    """Open connections per client address and in total, counted from the accepted socket
    (before the TLS handshake, so a client that never completes it still counts).

    The caller pairs every `admit` that returned None with one `release` of the same address;
    nothing else frees a slot. Runs on the server's trio thread only: no lock.
    """

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._open: dict[str, int] = {}
        self.total = 0

    def open_from(self, address: str) -> int:
        return self._open.get(address, 0)

    def admit(self, address: str) -> str | None:
        """None (and the connection counted) if `address` may open one more; else why not."""
        cap = self._limits.max_connections
        if self.total >= cap:
            return f"too many connections in total ({self.total}/{cap})"
        count, per = self._open.get(address, 0), self._limits.max_connections_per_address
        if count >= per:
            return f"too many connections ({count}/{per})"
        self._open[address] = count + 1
        self.total += 1
        return None

    def release(self, address: str) -> None:
        count = self._open.get(address, 0) - 1
        if count < 0:
            raise RuntimeError(f"released a connection of {address} that was never admitted")
        if count:
            self._open[address] = count
        else:
            del self._open[address]
        self.total -= 1


class Notices:
    """Writes `refused ADDRESS: REASON` and `closed ADDRESS: REASON` lines, at most
    `NOTICE_BURST` per `NOTICE_WINDOW`; the ones over that are counted and summed up in one
    line when the next notice comes after the window (a quiet server owes no summary)."""

    def __init__(
        self, log: Callable[[str], None], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._log = log
        self._clock = clock
        self._window = float("-inf")
        self._written = 0
        self._dropped = 0

    def refused(self, address: str, reason: str) -> None:
        self._write(f"refused {clean(address)}: {reason}")

    def closed(self, address: str, reason: str) -> None:
        self._write(f"closed {clean(address)}: {reason}")

    def _write(self, text: str) -> None:
        now = self._clock()
        if now - self._window >= NOTICE_WINDOW:
            if self._dropped:
                self._log(
                    f"{timestamp()} {self._dropped} more refused or closed connections"
                    f" not logged one by one (over {NOTICE_BURST} per {NOTICE_WINDOW:g} s)"
                )
            self._window, self._written, self._dropped = now, 0, 0
        if self._written >= NOTICE_BURST:
            self._dropped += 1
            return
        self._written += 1
        self._log(f"{timestamp()} {text}")
