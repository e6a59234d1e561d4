"""The spec server's log lines: one per request, one per report, never a secret.

What goes in is chosen, not dumped: time, peer, method, the path without its query,
status, duration, and the refusal reason the server wrote. Request headers, bodies and
query strings are never formatted here (a token travels in the first, documents in the
second, and a confused client might put a token in the third). Everything that came from the
network is escaped and cut short, so a client cannot forge or flood log lines.
"""

from __future__ import annotations

import time

from pveplan.executor.pull._report import NodeReport

MAX_FIELD = 200
"""Characters kept of any client-chosen text (a path, a drift line) in a log line."""
MAX_DRIFT_SHOWN = 20


def clean(text: str, limit: int = MAX_FIELD, *, spaces: bool = False) -> str:
    """`text` made safe for a one-line log: control, non-ASCII and (unless `spaces`) space
    characters escaped, since fields are space-separated; cut to `limit` characters."""
    out: list[str] = []
    for ch in text[: limit * 2]:
        code = ord(ch)
        if 0x21 <= code <= 0x7E or (spaces and code == 0x20):
            out.append(ch)
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    joined = "".join(out)
    return joined if len(joined) <= limit else joined[: limit - 3] + "..."


def timestamp(at: float | None = None) -> str:
    """UTC, to the second, ISO 8601 with a Z: `2026-11-22T10:00:00Z`."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if at is None else at))


def request_line(
    *,
    peer: str,
    method: str,
    path: str,
    status: int,
    elapsed: float,
    refused: str | None = None,
    note: str | None = None,
    at: float | None = None,
) -> str:
    """`2026-11-22T10:00:00Z 127.0.0.1 GET /spec/edge 200 12ms [refused: REASON]`."""
    line = (
        f"{timestamp(at)} {clean(peer)} {clean(method, 16)} {clean(path)} {status}"
        f" {round(elapsed * 1000)}ms"
    )
    if refused is not None:
        line += f" refused: {refused}"
    if note is not None:
        line += f" ({note})"
    return line


def report_line(report: NodeReport, *, at: float | None = None) -> str:
    """`... report edge instance=3f2a9c1e converged spec=ab12cd34ef56 changed=2 drift=1:
    TEXT; TEXT` (drift texts name what differs, never a value of a secret)."""
    line = (
        f"{timestamp(at)} report {clean(report.identity)}"
        f" instance={clean(report.instance[:12])} {report.status}"
        f" spec={clean(report.spec_hash[:12])} changed={len(report.changed)}"
        f" drift={len(report.drift)}"
    )
    if report.drift:
        shown = [clean(text, spaces=True) for text in report.drift[:MAX_DRIFT_SHOWN]]
        line += ": " + "; ".join(shown)
        if len(report.drift) > MAX_DRIFT_SHOWN:
            line += f"; and {len(report.drift) - MAX_DRIFT_SHOWN} more"
    if report.error is not None:
        line += f" error: {clean(report.error, 400, spaces=True)}"
    return line
