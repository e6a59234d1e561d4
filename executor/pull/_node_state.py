"""homestak's state markers: whether the node's last convergence completed, or how it failed.

Exactly one of `complete.json` and `failure.json` describes the latest outcome: writing
one removes the other, so a stale success never hides a later failure (or the reverse).
They hold the truth about the node even when its report could not be delivered.
"""

from __future__ import annotations

import contextlib
import time
from typing import Literal

import msgspec

from ._layout import COMPLETE_FILE, FAILURE_FILE, STATE_DIR, node_path, write_private


class Complete(msgspec.Struct, frozen=True, kw_only=True):
    spec_hash: str
    instance: str
    changed: list[str]
    drift: list[str]
    at: float


class Failure(msgspec.Struct, frozen=True, kw_only=True):
    phase: Literal["spec", "config"]
    error: str
    at: float


def _replace(name: str, other: str, data: bytes) -> None:
    write_private(node_path(f"{STATE_DIR}/{name}"), data, 0o644)
    with contextlib.suppress(FileNotFoundError):
        node_path(f"{STATE_DIR}/{other}").unlink()


def mark_complete(spec_hash: str, instance: str, changed: list[str], drift: list[str]) -> None:
    """complete.json for a converged run (failure.json removed)."""
    marker = Complete(
        spec_hash=spec_hash, instance=instance, changed=changed, drift=drift, at=time.time()
    )
    _replace(COMPLETE_FILE, FAILURE_FILE, msgspec.json.encode(marker) + b"\n")


def mark_failure(phase: Literal["spec", "config"], error: str) -> None:
    """failure.json for a failed phase (a stale complete.json removed)."""
    marker = Failure(phase=phase, error=error, at=time.time())
    _replace(FAILURE_FILE, COMPLETE_FILE, msgspec.json.encode(marker) + b"\n")
