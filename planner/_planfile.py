"""Plan files: the reviewable, committable JSON form of a plan (docs/plan-format.md).

One JSON object: `format` ("pveplan-plan/2"), `hash` (the plan's hash), `plan` (the hashed
body: steps and subplans), `header` (not hashed: tool version, digests of the manifest and
site-config files, the store state planned against, where each step arg came from in the
manifest, and approvers' signatures) and `templates` (the parts of steps many steps share,
stored once: `_planwire`). Files of format /1 (every step in full) still load: both
formats decode to the same `PlanFile`, so hashes and signatures do not depend on which.

Pretty and canonical: sorted keys, two-space indents, one key per line but one line per
step, steps in plan order, `\\n` line ends, a final newline. Nothing in the file depends on
the machine, the directory, the user or the time, so the same inputs give the same bytes
anywhere (paths in the header are relative to the manifest's directory or the site
config's root).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import msgspec

from pveplan.dsl import Location

from ._errors import PlanError
from ._hashing import digest, verify_plan
from ._plan import Frozen, Plan
from ._planwire import (
    FORMAT_2,
    Template,
    WirePlan,
    Writer,
    _WireError,
    check_templates,
    decode_sources,
    encode_sources,
    join_plan,
    pretty,
)

FORMAT = FORMAT_2
FORMAT_1 = "pveplan-plan/1"


class PlanSignature(Frozen, kw_only=True):
    """One signer's approval (planner._signing): the key's fingerprint, the signature, and
    the digest of each bound header field as signed, so a field edited afterwards is named
    (the signature itself covers the values; `scope` only says which one moved)."""

    key: str
    signature: str
    scope: dict[str, str] = msgspec.field(default_factory=dict)


class Header(Frozen, kw_only=True):
    """What a reviewer (and `apply`) needs to know about a plan, outside its identity."""

    tool: str
    workspace: str
    manifest_files: dict[str, str] = msgspec.field(default_factory=dict)
    site_config_files: dict[str, str] = msgspec.field(default_factory=dict)
    manifest_digest: str = ""
    site_config_digest: str = ""
    planned_against: str | None = None
    sources: dict[str, dict[str, str]] = msgspec.field(default_factory=dict)
    signatures: tuple[PlanSignature, ...] = ()
    site_config: str | None = None
    """Where the site config was, relative to the plan file's folder (set by `plan -o`),
    so `apply FILE` finds it without --site-config; its digests above are what count."""


BOUND_HEADER_FIELDS = (
    "workspace",
    "planned_against",
    "manifest_digest",
    "manifest_files",
    "site_config_digest",
    "site_config_files",
)
"""Header fields `apply FILE` acts on: what it compares against (workspace, prior state)
and what it checks the inputs on disk against. Signatures cover them with the body."""

FREE_HEADER_FIELDS = ("tool", "sources", "site_config", "signatures")
"""Header fields that never decide what runs: who wrote the file, where arg values came
from (shown in diffs), where to look for the site config (its digests are bound), and
the signatures themselves. Every header field is in exactly one of the two tuples."""


def workspace_name(manifest: str, host: str) -> str:
    """A workspace is (manifest x host): the same manifest on two hosts never collides."""
    return f"{manifest}@{host}"


class PlanFile(Frozen, kw_only=True):
    """A plan file in memory, whichever format it was read from (`format`: /2 when new)."""

    format: Literal["pveplan-plan/1", "pveplan-plan/2"] = FORMAT
    hash: str
    plan: Plan
    header: Header


class _Format(msgspec.Struct):
    """Only the `format` of a file (a /1 file wrote none: it was the default)."""

    format: str = FORMAT_1


class _FileV1(Frozen, kw_only=True):
    """Format /1 as written: the plan model itself, every step in full."""

    format: Literal["pveplan-plan/1"] = FORMAT_1
    hash: str
    plan: Plan
    header: Header


class _WireHeader(Header, kw_only=True):
    """`Header` as /2 writes it: `sources` naming each file once (`_planwire`)."""

    sources: dict[str, str | dict[str, str]] = msgspec.field(default_factory=dict)  # type: ignore[assignment]
    source_files: dict[str, str] = msgspec.field(default_factory=dict)


class _FileV2(Frozen, kw_only=True):
    """Format /2 as written: lines and the templates they share."""

    format: Literal["pveplan-plan/2"]
    hash: str
    header: _WireHeader
    plan: WirePlan
    templates: dict[str, Template] = msgspec.field(default_factory=dict)


_encoder = msgspec.json.Encoder(order="sorted")
_format_decoder = msgspec.json.Decoder(_Format)
_decoders = {FORMAT_1: msgspec.json.Decoder(_FileV1), FORMAT_2: msgspec.json.Decoder(_FileV2)}


def encode_plan_file(plan_file: PlanFile) -> bytes:
    """The canonical, pretty bytes of a plan file, in format /2 (whatever it was read as)."""
    writer = Writer()
    body: list[bytes] = []
    writer.plan(plan_file.plan, 2, body)
    if writer.collided:  # two templates share 12 digits (rare): those get all 32
        writer = Writer(frozenset(writer.collided))
        body = []
        writer.plan(plan_file.plan, 2, body)
    files, sources = encode_sources(plan_file.header.sources)
    header = _WireHeader(
        **{f: getattr(plan_file.header, f) for f in Header.__struct_fields__ if f != "sources"},
        sources=sources,
        source_files=files,
    )
    return b"".join(
        [
            b'{\n  "format": ',
            _encoder.encode(FORMAT_2),
            b',\n  "hash": ',
            _encoder.encode(plan_file.hash),
            b',\n  "header": ',
            pretty(_encoder.encode(header), 2),
            b',\n  "plan": ',
            *body,
            b',\n  "templates": ',
            writer.table(),
            b"\n}\n",
        ]
    )


def _from_wire(wire: _FileV2, problems: list[str]) -> PlanFile:
    """The `PlanFile` a /2 file describes (_WireError when its structure is not sound),
    its hashes checked into `problems`."""
    check_templates(wire.templates)
    used: set[str] = set()
    plan = join_plan(wire.plan, wire.templates, used, problems)
    unused = sorted(wire.templates.keys() - used)
    if unused:
        raise _WireError(f"template(s) {', '.join(unused)} used by no step")
    fields = {f: getattr(wire.header, f) for f in Header.__struct_fields__ if f != "sources"}
    header = Header(**fields, sources=decode_sources(wire.header.source_files, wire.header.sources))
    return PlanFile(format=FORMAT_2, hash=wire.hash, plan=plan, header=header)


def decode_plan_file(data: bytes, name: str) -> PlanFile:
    """A plan file (/1 or /2) read back and verified: every hash must match what it covers."""
    problems: list[str] = []
    try:
        found = _format_decoder.decode(data).format
        if found not in _decoders:
            raise msgspec.DecodeError(f"unknown format {found!r}")
        wire = _decoders[found].decode(data)
        if isinstance(wire, _FileV1):
            plan_file = PlanFile(
                format=FORMAT_1, hash=wire.hash, plan=wire.plan, header=wire.header
            )
            problems = verify_plan(plan_file.plan)
        else:  # its step hashes are computed, not read: join_plan checks the rest
            plan_file = _from_wire(wire, problems)
    except msgspec.DecodeError as exc:
        raise PlanError.at(
            Location(file=name, line=1, col=1),
            f"not a pveplan plan file: {exc}",
            f"plan files are written by `pveplan plan -o FILE` (format {FORMAT}, or {FORMAT_1})",
        ) from None
    except _WireError as exc:
        raise PlanError.at(
            Location(file=name, line=1, col=1),
            f"plan file does not match its hashes (edited or damaged): {exc}",
            "re-plan to get a sound file",
        ) from None
    if plan_file.hash != plan_file.plan.hash:
        problems.append(f"file hash {plan_file.hash} is not the plan's hash {plan_file.plan.hash}")
    if problems:
        raise PlanError.at(
            Location(file=name, line=1, col=1),
            "plan file does not match its hashes (edited or damaged)",
            "; ".join(problems[:5])
            + ("; ..." if len(problems) > 5 else "")
            + " — re-plan to get a sound file",
        )
    own = workspace_name(plan_file.plan.manifest, plan_file.plan.host)
    if plan_file.header.workspace != own:
        raise PlanError.at(
            Location(file=name, line=1, col=1),
            f"header field `workspace` says {plan_file.header.workspace!r}, but the plan is "
            f"for manifest {plan_file.plan.manifest!r} on host {plan_file.plan.host!r}",
            f"a plan only ever applies to its own workspace ({own}): the file was edited; "
            "re-plan to get a sound file",
        )
    return plan_file


def read_plan_file(path: Path) -> PlanFile:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PlanError.at(None, f"cannot read plan file {path}: {exc.strerror or exc}") from None
    return decode_plan_file(data, str(path))


def decode_applied_plan(data: bytes, plan_hash: str) -> Plan:
    """The plan object the store holds as applied (`plan_hash`), decoded strictly and
    checked against its own hashes: a damaged store is an error, never a wrong diff."""
    try:
        plan = msgspec.json.decode(data, type=Plan)
    except msgspec.DecodeError as exc:
        raise PlanError.at(
            None, f"applied plan {plan_hash} in the store is unreadable: {exc}"
        ) from None
    if verify_plan(plan):
        raise PlanError.at(
            None,
            f"applied plan {plan_hash} in the store does not match its hashes",
            "run `pveplan store verify`",
        )
    return plan


def file_digests(files: dict[str, bytes]) -> tuple[dict[str, str], str]:
    """Per-file xxh3-128 digests (sorted by relative path) and one digest over them all."""
    per_file = {name: digest(files[name]) for name in sorted(files)}
    combined = digest(b"".join(f"{name}\0{value}\n".encode() for name, value in per_file.items()))
    return per_file, combined


def relative_to(path: str | Path, base: Path) -> str:
    """`path` relative to `base` in POSIX form (`../lib/x.pvp` is fine), for headers."""
    import os

    return Path(os.path.relpath(Path(path).resolve(), base.resolve())).as_posix()
