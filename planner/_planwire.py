"""The wire form of plan format `pveplan-plan/2`: each value shared by many steps stored once.

A /1 file spells out every step in full, one key per line: 4.5 KB per node, nearly all of it
the same args, refs and secret digests again and again. A /2 file splits each step in two:

- a **line** of its own (one JSON object per line, in plan order): `address`, the scalar
  args (strings, ints, booleans), `hash`, and `template`, the key of its shared part;
- a **template** in the file's `templates` table: `kind`, `kind_version`, `host` (only when
  not the plan's), the other args (lists, objects, nulls), `refs`, `deps`, `secrets`,
  `hints`, with refs and deps into the step's own node written relative to it
  (`.create#vm_id` for `node.web.create#vm_id` in a step of `node.web`).

A template's key is the first 12 hex digits of the xxh3-128 of its canonical JSON (all 32
when two templates share 12), so it names its content: a node's edit changes that node's
lines and adds or drops a table entry, and never renumbers anything else. Header `sources`
name their files once (`source_files`) and each address's positions on one line
(`cores=1:3:8 vmid=0:10:11`: file index, line, column).

Only the encoding differs: decoding gives the very `Plan` and `Header` a /1 file gives, so
every step hash, the plan hash and what a signature covers are the same in both formats.
Decoding is strict: an unknown or unused template, a key that does not name its content, a
relative ref without a node, all refuse the file, so no edit of a /2 file goes unnoticed
(the plan's hashes are then checked as for /1).
"""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec

from ._hashing import canonical, digest, plan_hash, step_hash
from ._plan import Drift, Frozen, Plan, PlanSettings, SecretUse, Step

FORMAT_2 = "pveplan-plan/2"
_KEY = 12
_SOURCE_ITEM = re.compile(r"([^\s=]+)=([^\s=]+):(\d+):(\d+)")
_UNSAFE = re.compile(r"[\s=]|^$")


class _WireError(ValueError):
    """A /2 file whose structure is not one the encoder writes (edited or damaged). Private:
    `decode_plan_file` turns it into the `PlanError` a user sees, naming the file."""


class Template(Frozen, kw_only=True):
    """The part of a step many steps share: everything but its address, scalar args, hash."""

    kind: str
    kind_version: int
    host: str | None = None
    args: dict[str, Any] = msgspec.field(default_factory=dict)
    refs: dict[str, str] = msgspec.field(default_factory=dict)
    deps: tuple[str, ...] = ()
    secrets: tuple[SecretUse, ...] = ()
    hints: dict[str, Any] = msgspec.field(default_factory=dict)


class Line(Frozen, kw_only=True):
    """One step of a /2 plan: its own values, and the key of its template. No `hash`: the
    reader computes each step's hash, and the plan's, which must equal the file's."""

    address: str
    args: dict[str, str | int | bool] = msgspec.field(default_factory=dict)
    template: str


class WirePlan(Frozen, kw_only=True):
    """`Plan` with lines instead of steps (the other fields as in /1)."""

    manifest: str
    host: str
    action: Literal["apply", "destroy"] = "apply"
    settings: PlanSettings = PlanSettings()
    steps: tuple[Line, ...] = ()
    subplans: dict[str, WirePlan] = msgspec.field(default_factory=dict)
    targets: tuple[str, ...] = ()
    drift: tuple[Drift, ...] = ()
    hash: str


_encoder = msgspec.json.Encoder(order="sorted")


# ---- encoding ---------------------------------------------------------------------------


class Writer:
    """Writes the plan part of a /2 file, collecting the templates its lines use.

    One pass, straight from the `Plan`'s Structs to bytes (msgspec encodes each line and
    template; no dict per step beyond the split args). Keys are 12 digits; if two
    templates share 12, `collided` is set and the caller writes again with `long` naming
    those keys, which then get all 32.
    """

    def __init__(self, long: frozenset[str] = frozenset()) -> None:
        self.long = long
        self.templates: dict[str, bytes] = {}  # key written -> canonical template
        self.keys: dict[bytes, str] = {}  # canonical template -> key written
        self.collided: set[str] = set()

    def key(self, data: bytes) -> str:
        key = self.keys.get(data)
        if key is None:
            full = digest(data)
            key = full if full[:_KEY] in self.long else full[:_KEY]
            if key in self.templates:
                self.collided.add(key)
            self.templates[key] = data
            self.keys[data] = key
        return key

    def table(self) -> bytes:
        """The `templates` object, pretty, keys sorted."""
        items = [_encoder.encode(k) + b":" + self.templates[k] for k in sorted(self.templates)]
        return pretty(b"{" + b",".join(items) + b"}", 2)

    def plan(self, plan: Plan, indent: int, out: list[bytes]) -> None:
        """A plan object, pretty, with each of its steps on one line of its own."""
        head = WirePlan(
            manifest=plan.manifest,
            host=plan.host,
            action=plan.action,
            settings=plan.settings,
            drift=plan.drift,
            hash=plan.hash,
        )
        text = pretty(_encoder.encode(head), indent)
        out.append(text[: text.rindex(b"\n")])  # still open: the closing brace comes last
        pad = b"\n" + b" " * (indent + 2)
        inner = b"\n" + b" " * (indent + 4)
        if plan.steps:
            out.append(b"," + pad + b'"steps": [')
            out.append(b",".join(inner + self.line(step, plan.host) for step in plan.steps))
            out.append(pad + b"]")
        if plan.subplans:
            out.append(b"," + pad + b'"subplans": {')
            for i, address in enumerate(sorted(plan.subplans)):
                out.append((b"," if i else b"") + inner + _encoder.encode(address) + b": ")
                self.plan(plan.subplans[address], indent + 4, out)
            out.append(pad + b"}")
        if plan.targets:
            out.append(
                b"," + pad + b'"targets": ' + pretty(_encoder.encode(plan.targets), indent + 2)
            )
        out.append(b"\n" + b" " * indent + b"}")

    def line(self, step: Step, plan_host: str) -> bytes:
        args = step.args
        own = {name: value for name, value in args.items() if type(value) in _SCALARS}
        shared = (
            {name: value for name, value in args.items() if name not in own}
            if len(own) != len(args)
            else {}
        )
        refs, deps = step.refs, step.deps
        if refs or deps:  # those into the step's own node, relative to it
            prefix = step.address[: step.address.rindex(".") + 1]
            cut = len(prefix) - 1
            refs = {k: v[cut:] if v.startswith(prefix) else v for k, v in refs.items()}
            deps = tuple(d[cut:] if d.startswith(prefix) else d for d in deps)
        template = Template(
            kind=step.kind,
            kind_version=step.kind_version,
            host=None if step.host == plan_host else step.host,
            args=shared,
            refs=refs,
            deps=deps,
            secrets=step.secrets,
            hints=step.hints,
        )
        key = self.key(_encode(template))
        return _format(_encode(Line(address=step.address, args=own, template=key)), indent=0)


_SCALARS = frozenset((str, int, bool))
_format = msgspec.json.format
_encode = _encoder.encode


def encode_sources(
    sources: dict[str, dict[str, str]],
) -> tuple[dict[str, str], dict[str, str | dict[str, str]]]:
    """Header `sources` on one line per address, each file by a short name: its base name
    when no other source file has it (`source_files` maps each such name to the path, when
    they differ). Names, not numbers, so a file added elsewhere renames nothing. An entry
    the one-line form cannot hold (a space or `=` in a name) stays a /1 object."""
    parsed: dict[str, list[tuple[str, str, str]] | None] = {}
    safe: dict[str, bool] = {}  # name or path -> fits the one-line form (few distinct)
    for address in sorted(sources):
        positions = sources[address]
        items: list[tuple[str, str, str]] | None = []
        for arg in sorted(positions):
            path, _, col = positions[arg].rpartition(":")
            path, _, line = path.rpartition(":")
            ok = safe.get(arg)
            if ok is None:
                ok = safe[arg] = _UNSAFE.search(arg) is None
            fits = safe.get(path)
            if fits is None:
                fits = safe[path] = _UNSAFE.search(path) is None
            if not (ok and fits and line.isdigit() and col.isdigit()):
                items = None
                break
            items.append((arg, path, f"{line}:{col}"))  # type: ignore[union-attr]
        parsed[address] = items
    paths = {path for items in parsed.values() for _, path, _ in items or ()}
    bases: dict[str, int] = {}
    for path in paths:
        base = path.rpartition("/")[2]
        bases[base] = bases.get(base, 0) + 1
    alias = {p: p.rpartition("/")[2] if bases[p.rpartition("/")[2]] == 1 else p for p in paths}
    out: dict[str, str | dict[str, str]] = {}
    for address, items in parsed.items():
        if items is None:
            out[address] = dict(sources[address])
        else:
            out[address] = " ".join(f"{arg}={alias[path]}:{at}" for arg, path, at in items)
    return {alias[p]: p for p in sorted(paths) if alias[p] != p}, out


# ---- decoding ---------------------------------------------------------------------------


def decode_sources(
    files: dict[str, str], sources: dict[str, str | dict[str, str]]
) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for address, entry in sources.items():
        if isinstance(entry, dict):
            out[address] = entry
            continue
        positions: dict[str, str] = {}
        for item in entry.split(" ") if entry else ():
            match = _SOURCE_ITEM.fullmatch(item)
            if match is None:
                raise _WireError(f"header sources of {address}: {item!r} is not name=file:line:col")
            positions[match[1]] = f"{files.get(match[2], match[2])}:{match[3]}:{match[4]}"
        out[address] = positions
    return out


def check_templates(templates: dict[str, Template]) -> None:
    """Each key must name its template's content (first 12 or all 32 hex digits)."""
    for key, template in templates.items():
        full = digest(canonical(template))
        if len(key) not in (_KEY, len(full)) or not full.startswith(key):
            raise _WireError(f"template {key} does not match its content")


def _absolute(prefix: str, address: str, where: str) -> str:
    if not address.startswith("."):
        return address
    if prefix == ".":
        raise _WireError(f"{where}: relative address {address!r} in a step without a node")
    return prefix + address[1:]


def join_plan(
    wire: WirePlan,
    templates: dict[str, Template],
    used: set[str],
    problems: list[str],
    where: str = "",
) -> Plan:
    """The `Plan` a /2 plan's lines and the file's templates describe, each step's hash
    computed as the compiler computes it. What `verify_plan` would find is added to
    `problems`: with step hashes computed, only the plan hashes and each subplan's link
    to its delegate step are left to check (so no step is hashed twice)."""
    steps = []
    hashes: dict[str, str] = {}
    for line in wire.steps:
        template = templates.get(line.template)
        if template is None:
            raise _WireError(f"{line.address}: unknown template {line.template!r}")
        used.add(line.template)
        if not line.args.keys().isdisjoint(template.args):
            raise _WireError(f"{line.address}: an arg both in its line and its template")
        prefix = line.address.rpartition(".")[0] + "."
        merged = {**line.args, **template.args}
        args = {name: merged[name] for name in sorted(merged)}
        refs = {k: _absolute(prefix, v, line.address) for k, v in template.refs.items()}
        deps = tuple(_absolute(prefix, d, line.address) for d in template.deps)
        host = wire.host if template.host is None else template.host
        ref_hashes = {}
        for name, ref in refs.items():
            address, _, output = ref.partition("#")
            ref_hashes[name] = f"{hashes.get(address, '?')}#{output}"
        hashes[line.address] = step_hash(
            kind=template.kind,
            kind_version=template.kind_version,
            host=host,
            args=args,
            secrets=template.secrets,
            ref_hashes=ref_hashes,
            dep_hashes=[hashes.get(dep, "?") for dep in deps],
        )
        steps.append(
            Step(
                address=line.address,
                kind=template.kind,
                kind_version=template.kind_version,
                host=host,
                args=args,
                refs=refs,
                secrets=template.secrets,
                deps=deps,
                hints=template.hints,
                hash=hashes[line.address],
            )
        )
    subplans = {}
    delegates = {s.address: s for s in steps} if wire.subplans else {}
    for address, sub in wire.subplans.items():
        if address not in delegates:
            problems.append(f"{where}{address}: subplan without a delegate step")
        elif delegates[address].args.get("subplan") != sub.hash:
            problems.append(f"{where}{address}: subplan hash does not match the delegate's args")
        subplans[address] = join_plan(sub, templates, used, problems, f"{where}{address} > ")
    root = plan_hash(
        wire.manifest,
        wire.host,
        wire.action,
        wire.settings,
        [(s.address, s.hash) for s in steps],
        drift=wire.drift,
        targets=wire.targets,
    )
    if root != wire.hash:
        problems.append(f"{where or 'plan'}: hash {wire.hash} does not match its steps")
    return Plan(
        manifest=wire.manifest,
        host=wire.host,
        action=wire.action,
        settings=wire.settings,
        steps=tuple(steps),
        subplans=subplans,
        targets=wire.targets,
        drift=wire.drift,
        hash=wire.hash,
    )


# ---- the pretty layout ------------------------------------------------------------------


def pretty(data: bytes, indent: int) -> bytes:
    """Two-space pretty JSON of `data`, its lines after the first indented by `indent`."""
    text = msgspec.json.format(data, indent=2)
    return text.replace(b"\n", b"\n" + b" " * indent) if indent else text
