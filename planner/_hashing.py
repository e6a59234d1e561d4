"""Canonical bytes and the hashes computed from them: the one place either is defined.

Canonical form: msgspec JSON with every mapping's keys and every struct's fields sorted,
no floats, no insignificant whitespace. A hash is xxh3-128 of canonical bytes, in hex.
Nothing here lists fields by hand (a new field is hashed without an edit): hashes are
taken of whole values, with only the `hash` field itself left out.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
import xxhash

from ._plan import Plan, PlanSettings, SecretUse, Step

_encoder = msgspec.json.Encoder(order="sorted")


def canonical(value: Any) -> bytes:
    """The canonical JSON bytes of `value` (a Struct, or plain JSON-like data).

    Callers guarantee there are no floats (typed models hold ints; free-form spec config
    is checked by `has_float` when compiled), so this stays one C call on the hot path.
    """
    return _encoder.encode(value)


def digest(data: bytes) -> str:
    """xxh3-128 of `data` as 32 lowercase hex digits."""
    return xxhash.xxh3_128_hexdigest(data)


def secret_digest(signing_key: str, value: str) -> str:
    """HMAC-SHA256 of a secret's value under the site's signing key, in hex."""
    return hmac.new(signing_key.encode(), value.encode(), hashlib.sha256).hexdigest()


def step_hash(
    *,
    kind: str,
    kind_version: int,
    host: str,
    args: Mapping[str, Any],
    secrets: Iterable[SecretUse],
    ref_hashes: Mapping[str, str],
    dep_hashes: Iterable[str],
) -> str:
    """The input address of a step: everything it depends on, and nothing else.

    `ref_hashes` maps each ref name to "<hash of the referenced step>#<output>", and
    `dep_hashes` are the hashes of the steps it waits for, so a change anywhere upstream
    changes this hash (the step's own address is not hashed: renaming nothing changes).
    """
    body = {
        "kind": kind,
        "kind_version": kind_version,
        "host": host,
        "args": dict(args),
        "secrets": sorted([s.name, s.digest] for s in secrets),
        "refs": dict(ref_hashes),
        "deps": sorted(dep_hashes),
    }
    return digest(canonical(body))


def plan_hash(
    manifest: str,
    host: str,
    action: str,
    settings: PlanSettings,
    steps: Iterable[tuple[str, str]],
    *,
    drift: Iterable[Any] = (),
    targets: Iterable[str] = (),
) -> str:
    """The Merkle root of a plan: its identity, settings, (address, step hash) pairs, the
    drift the probe found, and the `-target`s it was cut down to (each left out when
    empty: an offline, untargeted plan hashes as plans always did).

    Subplans need no separate term: each is hashed into the args of its delegate step.
    """
    body: dict[str, Any] = {
        "manifest": manifest,
        "host": host,
        "action": action,
        "settings": settings,
        "steps": list(steps),  # (address, hash) tuples encode as two-item arrays
    }
    drift = list(drift)
    if drift:
        body["drift"] = drift
    targets = sorted(targets)
    if targets:
        body["targets"] = targets
    return digest(canonical(body))


def verify_plan(plan: Plan) -> list[str]:
    """Every hash in `plan` (and its subplans) that does not match its content.

    Used when a plan file is read back: a file edited by hand, or truncated, says so.
    """
    problems: list[str] = []
    _verify(plan, problems, "")
    return problems


def rehash(step: Step, hashes: Mapping[str, str]) -> str:
    """What `step`'s hash must be, given the hashes of the steps before it (`hashes`, by
    address; an unknown one counts as '?'), as the compiler computed it."""
    refs = {}
    for name, ref in step.refs.items():
        address, _, output = ref.partition("#")
        refs[name] = f"{hashes.get(address, '?')}#{output}"
    return step_hash(
        kind=step.kind,
        kind_version=step.kind_version,
        host=step.host,
        args=step.args,
        secrets=step.secrets,
        ref_hashes=refs,
        dep_hashes=[hashes.get(dep, "?") for dep in step.deps],
    )


def _verify(plan: Plan, problems: list[str], where: str) -> None:
    hashes: dict[str, str] = {}
    for step in plan.steps:
        expected = rehash(step, hashes)
        if expected != step.hash:
            problems.append(f"{where}{step.address}: hash {step.hash} does not match its content")
        hashes[step.address] = step.hash
    for address, subplan in plan.subplans.items():
        delegate = hashes.get(address)
        if delegate is None:
            problems.append(f"{where}{address}: subplan without a delegate step")
        elif plan.step(address).args.get("subplan") != subplan.hash:
            problems.append(f"{where}{address}: subplan hash does not match the delegate's args")
        _verify(subplan, problems, f"{where}{address} > ")
    expected_root = plan_hash(
        plan.manifest,
        plan.host,
        plan.action,
        plan.settings,
        [(s.address, s.hash) for s in plan.steps],
        drift=plan.drift,
        targets=plan.targets,
    )
    if expected_root != plan.hash:
        problems.append(f"{where or 'plan'}: hash {plan.hash} does not match its steps")


def has_float(value: Any) -> bool:
    """Whether plain data holds a float anywhere (floats have no canonical text form here)."""
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(has_float(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_float(item) for item in value)
    return False
