"""Typed step args: every kind has a Struct, the wire form round-trips, plans keep their bytes.

A step carries its args as a plain dict (what plan files hold and hashes cover); the
planner builds them as its kind's Struct and the executor reads them back as that Struct.
These tests hold the two forms together: Struct -> wire -> Struct is the identity, every
step of every example plan decodes and re-encodes to exactly the dict it carries, and a
dict that does not fit its kind is a clear `StepArgsError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pveplan.dsl import load_manifest
from pveplan.planner import (
    STEP_ARGS,
    GuestCreateArgs,
    Plan,
    SpecDocument,
    Step,
    StepArgs,
    StepArgsError,
    VmCreateArgs,
    args_of,
    build_node_plan,
    canonical,
)
from pveplan.planner._compile import KIND_VERSIONS
from pveplan.planner._destroy import DESTROY_KINDS, destroy_plan
from pveplan.planner._diff import diff_plans
from pveplan.planner._planning import build_plan_file
from pveplan.planner._stepargs import change_of, decode_args, to_wire
from pveplan.planner.siteconfig import load_site_config, resolve_manifest
from tests._tiers import examples

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "site-config"
MANIFESTS = sorted(
    p for pattern in ("*.pvp", "*.yaml") for p in (EXAMPLES / "manifests").glob(pattern)
)


def _example_plans() -> list[Plan]:
    site = load_site_config(EXAMPLES)
    plans = []
    for path in MANIFESTS:
        loaded = load_manifest(str(path))
        resolved = resolve_manifest(loaded, site, "sim")
        plan = build_plan_file(loaded, resolved, site, "sim", planned_against=None).plan
        plans.extend([plan, destroy_plan(plan)])
    return plans


PLANS = _example_plans()

NODE_DOCUMENT = SpecDocument(
    identity="edge",
    spec_name="base",
    spec_hash="ab" * 16,
    spec={
        "users": [{"name": "alice", "sudo": True, "ssh_keys": ["ssh_keys.alice"]}],
        "packages": ["htop"],
        "services": {"enable": ["nginx"], "disable": []},
        "timezone": "UTC",
        "posture_settings": {
            "ssh": {"port": 2222, "permit_root_login": "no"},
            "sudo": {"nopasswd": True},
            "fail2ban": {"enabled": True},
        },
        "run": {"trigger": "schedule", "interval": "1h"},
    },
    secrets={"ssh_keys.alice": "ssh-ed25519 AAAA alice"},
)
"""A spec document that asks for every node-local kind."""


def _all_steps() -> list[Step]:
    from pveplan.planner import HostTarget, pve_setup_plan, user_setup_plan

    steps = [step for plan in PLANS for _, step in plan.walk()]
    target = HostTarget(name="metal", address="192.0.2.9", ssh_host_key="ssh-ed25519 AAAA m")
    hosts = [  # the host scenarios' plans (pve-setup, user-setup)
        *pve_setup_plan(target, "ssh-ed25519 AAAA d", "0" * 64).steps,
        *user_setup_plan(target, lambda ref: "x", ("ops",)).steps,
    ]
    return steps + hosts + list(build_node_plan(NODE_DOCUMENT, bundle="cd" * 32).steps)


def test_every_kind_the_planner_emits_has_an_args_struct() -> None:
    emitted = {step.kind for step in _all_steps()}
    declared = set(KIND_VERSIONS) | set(DESTROY_KINDS.values())
    assert declared <= set(STEP_ARGS), declared - set(STEP_ARGS)
    assert emitted <= set(STEP_ARGS), emitted - set(STEP_ARGS)
    # The examples and the node document reach every kind but the containers' own.
    assert set(STEP_ARGS) - emitted <= {
        "pve.ct.create",
        "pve.ct.start",
        "pve.ct.wait_ip",
        "pve.ct.destroy",
    }


def test_every_example_step_decodes_and_encodes_back_to_its_own_args() -> None:
    """The typed form keeps the wire form exactly: the same keys, absent ones absent."""
    for step in _all_steps():
        typed = args_of(step)
        assert type(typed) is STEP_ARGS[step.kind]
        wire = to_wire(step.kind, typed)
        assert wire == step.args, step.address
        assert canonical(wire) == canonical(step.args), step.address


# --- Struct -> wire -> Struct ---------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)
"""Plain JSON data without floats: what a free-form part of a spec may hold."""


def _strategy(info: msgspec.inspect.Type) -> st.SearchStrategy[Any]:
    """Values of a type as msgspec describes it (enough for the args Structs)."""
    mi = msgspec.inspect
    match info:
        case mi.StructType():
            # A field that is not required is one that may be UNSET (left out on the wire).
            fields = {
                f.name: _strategy(f.type)
                if f.required
                else st.just(msgspec.UNSET) | _strategy(f.type)
                for f in info.fields
            }
            return st.fixed_dictionaries(fields).map(lambda kw: info.cls(**kw))
        case mi.UnionType():
            return st.one_of([_strategy(t) for t in info.types])
        case mi.LiteralType():
            return st.sampled_from(info.values)
        case mi.VarTupleType() | mi.ListType():
            return st.lists(_strategy(info.item_type), max_size=3).map(tuple)
        case mi.DictType():
            return st.dictionaries(st.text(max_size=6), _strategy(info.value_type), max_size=3)
        case mi.StrType():
            return st.text(max_size=12)
        case mi.IntType():
            return st.integers(min_value=-(2**63), max_value=2**63 - 1)
        case mi.BoolType():
            return st.booleans()
        case mi.NoneType():
            return st.none()
        case mi.AnyType():
            return _json
    raise AssertionError(f"no strategy for {info}")


_kinds_and_args = st.sampled_from(sorted(STEP_ARGS)).flatmap(
    lambda kind: st.tuples(st.just(kind), _strategy(msgspec.inspect.type_info(STEP_ARGS[kind])))
)


@settings(max_examples=examples(300), deadline=None)
@given(_kinds_and_args)
def test_args_round_trip_through_the_wire_form(kind_and_args: tuple[str, StepArgs]) -> None:
    kind, args = kind_and_args
    wire = to_wire(kind, args)
    assert msgspec.UNSET not in wire.values()  # an absent key is left out, never null
    # Through a plan file's bytes, as the executor reads it back.
    read_back = msgspec.json.decode(canonical(wire))
    assert decode_args(kind, read_back) == args
    assert to_wire(kind, decode_args(kind, read_back)) == read_back


# --- what does not fit ------------------------------------------------------------------


def _create_step(**changes: Any) -> Step:
    step = next(s for plan in PLANS for _, s in plan.walk() if s.kind == "pve.vm.create")
    return msgspec.structs.replace(step, args={**step.args, **changes})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"vmid": "99011"}, r"Expected `int \| null`, got `str` - at `\$.vmid`"),
        ({"disk": None}, r"Expected `int`, got `null` - at `\$.disk`"),
        ({"colour": "red"}, r"unknown field `colour`"),
        ({"cloud_init": {"user": "x"}}, r"missing required field `sudo` - at `\$.cloud_init`"),
    ],
)
def test_args_that_do_not_fit_the_kind_are_a_clear_error(
    changes: dict[str, Any], message: str
) -> None:
    step = _create_step(**changes)
    with pytest.raises(StepArgsError, match=message) as raised:
        args_of(step)
    assert str(raised.value).startswith(f"step {step.address} (pve.vm.create): ")
    assert "re-plan" in raised.value.detail


def test_a_missing_key_and_an_unknown_kind_are_clear_errors() -> None:
    step = _create_step()
    args = dict(step.args)
    del args["name"]
    with pytest.raises(StepArgsError, match="missing required field `name`"):
        args_of(msgspec.structs.replace(step, args=args))
    with pytest.raises(StepArgsError, match=r"unknown step kind 'pve\.vm\.teleport'"):
        args_of(msgspec.structs.replace(step, kind="pve.vm.teleport"))


def test_the_planner_cannot_give_a_kind_another_kinds_args() -> None:
    args = args_of(_create_step())
    with pytest.raises(TypeError, match=r"pve\.ct\.create takes"):
        to_wire("pve.ct.create", args)


# --- the rules of a field, one place for the diff and the VM kind ----------------------


def test_field_rules() -> None:
    assert change_of(VmCreateArgs, "disk", 32, 64) == "in_place"  # a disk grows in place
    assert change_of(VmCreateArgs, "disk", 64, 32) == "keep"  # and is never shrunk
    assert change_of(VmCreateArgs, "memory", 2048, 1024) == "in_place"
    for field in ("vmid", "image", "name", "storage", "type"):
        assert change_of(VmCreateArgs, field, 1, 2) == "replace"
    assert change_of(VmCreateArgs, "tags", [], ["x"]) == "in_place"  # no rule: in place
    assert change_of(GuestCreateArgs, "image", "a", "b") == "in_place"  # a ct has no image


def test_reconcile_is_the_executors_view_of_the_same_rules() -> None:
    args = args_of(_create_step(cores=4, memory=4096, disk=64))
    assert isinstance(args, VmCreateArgs)
    live = {"image": args.image, "cores": 2, "memory": 4096, "disk": 32}
    assert args.reconcile(live) == {"cores": "in_place", "disk": "in_place"}
    live = {"image": "another", "cores": 4, "memory": 4096, "disk": 128}
    assert args.reconcile(live) == {"image": "replace", "disk": "keep"}


def test_the_diff_follows_the_rules() -> None:
    # a VM with one disk (`disks`, when listed, carries the size the diff compares)
    step = next(
        s
        for plan in PLANS
        for _, s in plan.walk()
        if s.kind == "pve.vm.create" and "disks" not in s.args
    )

    def action_after(**changes: Any) -> str:
        changed = msgspec.structs.replace(step, args={**step.args, **changes}, hash="new")
        old = Plan(manifest="m", host="sim", steps=(step,), hash="old")
        new = Plan(manifest="m", host="sim", steps=(changed,), hash="new")
        return diff_plans(new, old)[0].action

    assert action_after(disk=step.args["disk"] + 8) == "update"
    assert action_after(disk=step.args["disk"] - 8) == "update"  # kept: no shrink
    assert action_after(memory=step.args["memory"] * 2) == "update"
    assert action_after(vmid=12345) == "replace"
