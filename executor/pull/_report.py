"""What a pull-mode node tells the spec server after converging, and what the driver sees.

`NodeReport` crosses the wire as JSON (node → server, `POST /report/{identity}`);
`ReportStatus` is the server's answer to `GET /report/{identity}`, which the driver (or an
operator) polls to learn whether a node has fetched its spec yet and how its run went.
Neither holds secrets: drift texts name what differs, never a secret's value.
"""

from __future__ import annotations

from typing import Literal

import msgspec


class NodeReport(msgspec.Struct, frozen=True, kw_only=True):
    """One convergence run of one node instance against one spec.

    `instance` tells apart two VMs answering to one identity (a re-created VM, a clone);
    `spec_hash` says which spec the run converged to; `changed` and `drift` name what the
    run changed and what it found different from the spec; `error` is set when it failed.
    """

    identity: str
    instance: str
    spec_hash: str
    status: Literal["converged", "failed"]
    changed: list[str] = []
    drift: list[str] = []
    error: str | None = None
    duration: float = 0.0


class ReportStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Where a node instance is: `waiting` (has not fetched its spec), `fetched` (fetched
    it at `fetched_at`, no report yet), or `reported` (its latest `report`)."""

    identity: str
    instance: str | None
    phase: Literal["waiting", "fetched", "reported"]
    fetched_at: float | None = None
    report: NodeReport | None = None
