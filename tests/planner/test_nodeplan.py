"""The node-local plan of a spec document: its steps, their hashes, what a change touches.

No machine here: the plan is pure data, built from the document the spec server serves.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pveplan.planner import (
    Plan,
    SpecError,
    build_node_plan,
    decode_spec_document,
    verify_plan,
)
from pveplan.planner._nodespec import systemd_interval

ALICE_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDWnMzPXwnJ8nXvJ8OTKUu4Ag1Yh7zL1S9s0wD0Sm6bM alice"
BUNDLE = "ab" * 32


def document(**spec: Any) -> dict[str, Any]:
    """A spec document as the server serves it (`spec_args` data, with secret values)."""
    body: dict[str, Any] = {
        "spec": "base",
        "hostname": None,
        "domain": None,
        "users": [{"name": "alice", "sudo": True, "ssh_keys": ["ssh_keys.alice"]}],
        "packages": ["htop", "curl"],
        "services": {"enable": ["nginx"], "disable": []},
        "timezone": "America/Denver",
        "posture": "prod",
        "posture_settings": {
            "ssh": {"permit_root_login": "no", "password_authentication": "no"},
            "sudo": {"nopasswd": True},
            "fail2ban": {"enabled": True},
        },
        "network": None,
        "pve": None,
        "config": {},
        "run": {"trigger": "schedule", "interval": "1h"},
    }
    body.update(spec)
    return {
        "identity": "edge",
        "spec_name": "base",
        "spec_hash": "a1b2c3d4" * 8,
        "spec": body,
        "secrets": {"ssh_keys.alice": ALICE_KEY},
    }


def plan_of(doc: dict[str, Any]) -> Plan:
    return build_node_plan(decode_spec_document(doc), bundle=BUNDLE)


def hashes(plan: Plan) -> dict[str, str]:
    return {step.address: step.hash for step in plan.steps}


def changed(a: Plan, b: Plan) -> set[str]:
    before, after = hashes(a), hashes(b)
    return {address for address in after if before.get(address) != after[address]}


def test_one_step_per_aspect_and_user() -> None:
    plan = plan_of(document())
    assert [s.address for s in plan.steps] == [
        "config.timezone",
        "config.packages",
        "config.fail2ban",
        "config.user.alice",
        "config.ssh_keys.alice",
        "config.sudo.alice",
        "config.services",
        "config.sshd",
        "config.converge_timer",
    ]
    assert {s.host for s in plan.steps} == {"local"}
    assert plan.settings.on_error == "continue"
    assert verify_plan(plan) == []
    keys = plan.step("config.ssh_keys.alice")
    assert keys.deps == ("config.user.alice",) and [u.name for u in keys.secrets] == [
        "ssh_keys.alice"
    ]
    assert ALICE_KEY not in repr(plan)  # secrets by name and digest only
    assert plan.step("config.services").deps == ("config.packages", "config.fail2ban")
    assert plan.step("config.fail2ban").deps == ("config.packages",)  # one apt at a time
    assert plan.step("config.converge_timer").args == {
        "interval": "1h",
        "boot": "5min",
        "bundle": BUNDLE,
    }


def test_an_empty_spec_is_an_empty_plan() -> None:
    doc = document(users=[], packages=[], services={}, timezone=None, posture_settings={})
    doc["spec"].pop("run")
    assert plan_of(doc).steps == ()


def test_no_sudo_no_drop_in_and_sudo_without_nopasswd() -> None:
    plan = plan_of(document(users=[{"name": "bob", "sudo": False, "ssh_keys": []}]))
    assert [s.address for s in plan.steps if ".bob" in s.address] == ["config.user.bob"]
    plan = plan_of(document(posture_settings={"sudo": {"nopasswd": False}}))
    assert plan.step("config.sudo.alice").args == {"user": "alice", "nopasswd": False}
    assert "config.sshd" not in hashes(plan) and "config.fail2ban" not in hashes(plan)


def test_a_changed_key_changes_only_its_step() -> None:
    doc = document()
    other = copy.deepcopy(doc)
    other["secrets"]["ssh_keys.alice"] = ALICE_KEY.replace("AAAAIDWn", "AAAAIXXX")
    assert changed(plan_of(doc), plan_of(other)) == {"config.ssh_keys.alice"}


def test_a_schedule_needs_a_bundle() -> None:
    with pytest.raises(SpecError, match="no installed pveplan bundle"):
        build_node_plan(decode_spec_document(document()), bundle=None)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("users", [{"name": "-oops", "sudo": False}], "not a valid user name"),
        ("users", [{"name": "a.b", "sudo": True}], "not a valid user name"),
        ("packages", ["-o=APT::Get::Foo"], "not a package name"),
        ("packages", ["htop curl"], "not a package name"),
        ("services", {"enable": ["--now"]}, "not a systemd unit name"),
        ("timezone", "-Europe", "not a time zone name"),
        ("run", {"trigger": "schedule", "interval": "5s"}, "shorter than 60s"),
        ("run", {"trigger": "schedule", "interval": "soon"}, "not like 30m"),
        ("posture_settings", {"ssh": {"port": 70000}}, "not a TCP port"),
        ("posture_settings", {"ssh": {"permit_root_login": "maybe"}}, "not valid"),
    ],
)
def test_values_that_become_arguments_are_checked(field: str, value: Any, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        plan_of(document(**{field: value}))


@pytest.mark.parametrize(
    ("homestak", "systemd"),
    [("1h", "1h"), ("30m", "30min"), ("90m", "1h 30min"), ("1h30m", "1h 30min"), ("2d", "2d")],
)
def test_intervals_in_systemd_syntax(homestak: str, systemd: str) -> None:
    assert systemd_interval(homestak) == systemd


_names = st.from_regex(r"[a-z][a-z0-9-]{1,12}", fullmatch=True)


@given(
    packages=st.lists(_names, min_size=1, max_size=6, unique=True),
    users=st.lists(_names, max_size=3, unique=True),
    index=st.integers(min_value=0),
    replacement=_names,
)
def test_hashes_are_deterministic_and_a_package_changes_its_step(
    packages: list[str], users: list[str], index: int, replacement: str
) -> None:
    specs = {"packages": packages, "users": [{"name": u, "sudo": True} for u in users]}
    first, again = plan_of(document(**specs)), plan_of(document(**specs))
    assert first == again and first.hash == again.hash
    edited = list(packages)
    edited[index % len(edited)] = replacement
    second = plan_of(document(**{**specs, "packages": edited}))
    if edited == packages:
        assert second.hash == first.hash
        return
    # The packages step changes, and with it only the steps that wait for it (Merkle):
    # fail2ban (apt runs one at a time) and the services (a unit may come from a package).
    assert changed(first, second) == {"config.packages", "config.fail2ban", "config.services"}
    plain = {**specs, "services": {}, "posture_settings": None}
    assert changed(
        plan_of(document(**plain)), plan_of(document(**{**plain, "packages": edited}))
    ) == {"config.packages"}
