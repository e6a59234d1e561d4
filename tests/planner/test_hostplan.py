"""The host scenarios as plans (`planner._hostplan`): pure, content-addressed, in
iac-driver's order, with secrets only as digests."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pveplan.planner import (
    HostTarget,
    PlanError,
    SecretRef,
    canonical,
    pve_setup_plan,
    user_setup_plan,
    verify_plan,
)

TARGET = HostTarget(
    name="192.0.2.7", address="192.0.2.7", ssh_port=22, ssh_host_key="ssh-ed25519 AAAA h"
)
DRIVER = "ssh-ed25519 AAAA driver"
SHA = "ab" * 32
SECRETS = {
    "ssh_keys.ops": "ssh-ed25519 AAAA ops",
    "ssh_keys.dev": "ssh-ed25519 AAAA dev",
    "auth.signing_key": "k",
}


def reveal(ref: SecretRef) -> str:
    if ref.name not in SECRETS:
        raise PlanError.at(None, f"no {ref.name}")
    return SECRETS[ref.name]


def test_pve_setup_follows_iac_drivers_phases_and_pves_install_guide() -> None:
    plan = pve_setup_plan(TARGET, DRIVER, SHA)
    assert [s.address for s in plan.steps] == [
        "host.pve_keyring",
        "host.pve_repo",
        "host.pve_install",
        "host.bridge",
        "host.driver_key",
        "host.api_token",
        "host.node_file",
    ]
    keyring = plan.step("host.pve_keyring").args
    assert keyring["sha256"] == SHA and keyring["url"].startswith("https://")
    assert keyring["path"] == "/usr/share/keyrings/proxmox-archive-keyring.gpg"
    assert plan.step("host.pve_repo").deps == ("host.pve_keyring",)
    repo = plan.step("host.pve_repo").args
    assert f"Signed-By: {keyring['path']}" in repo["text"]
    assert repo["path"] == "/etc/apt/sources.list.d/pve-install-repo.sources"
    assert "download.proxmox.com/debian/pve" in repo["text"]
    assert "proxmox-ve" in plan.step("host.pve_install").args["packages"]
    assert plan.step("host.pve_install").deps == ("host.pve_repo",)
    # The bridge, token and node file act on the node PVE named itself.
    for address in ("host.bridge", "host.api_token", "host.node_file"):
        assert plan.step(address).refs["pve_node"] == "host.pve_install#pve_node"
    token = plan.step("host.api_token").args
    assert token == {"user": "pveplan@pve", "token": "pveplan", "privsep": 1}
    assert plan.step("host.driver_key").args["keys"] == [DRIVER]
    assert plan.manifest == "scenario.pve-setup" and plan.host == TARGET.name
    assert verify_plan(plan) == []


def test_another_keyring_sum_changes_the_keyring_and_everything_after_it() -> None:
    before = pve_setup_plan(TARGET, DRIVER, SHA)
    after = pve_setup_plan(TARGET, DRIVER, "cd" * 32)
    changed = {
        s.address for s, t in zip(before.steps, after.steps, strict=True) if s.hash != t.hash
    }
    assert changed == {s.address for s in before.steps} - {"host.driver_key"}


def test_a_keyring_sum_that_is_no_sha256_is_refused() -> None:
    with pytest.raises(PlanError, match="64 lowercase hex"):
        pve_setup_plan(TARGET, DRIVER, "not-a-sum")


def test_the_same_inputs_give_the_same_bytes() -> None:
    assert canonical(pve_setup_plan(TARGET, DRIVER, SHA)) == canonical(
        pve_setup_plan(TARGET, DRIVER, SHA)
    )


@given(st.sampled_from(["ssh_host_key", "ssh_port", "address"]))
def test_a_changed_host_detail_changes_the_node_file_step_only(field: str) -> None:
    value = {"ssh_host_key": "ssh-ed25519 BBBB other", "ssh_port": 2222, "address": "192.0.2.8"}
    before = pve_setup_plan(TARGET, DRIVER, SHA)
    after = pve_setup_plan(msgspec.structs.replace(TARGET, **{field: value[field]}), DRIVER, SHA)
    changed = {
        s.address for s, t in zip(before.steps, after.steps, strict=True) if s.hash != t.hash
    }
    assert changed == {"host.node_file"}
    assert before.hash != after.hash


def test_another_driver_key_changes_only_the_key_step_and_the_node_file_after_it() -> None:
    before = pve_setup_plan(TARGET, DRIVER, SHA)
    after = pve_setup_plan(TARGET, "ssh-ed25519 CCCC new", SHA)
    changed = {
        s.address for s, t in zip(before.steps, after.steps, strict=True) if s.hash != t.hash
    }
    assert changed == {"host.driver_key", "host.node_file"}


def test_user_setup_carries_the_keys_by_name_and_digest_never_their_values() -> None:
    plan = user_setup_plan(TARGET, reveal, ("ops", "dev"), user="homestak")
    assert [s.address for s in plan.steps] == ["host.user", "host.sudoers", "host.user_keys"]
    assert plan.step("host.user").args == {"name": "homestak", "sudo": True}
    sudoers = plan.step("host.sudoers").args
    assert sudoers["path"] == "/etc/sudoers.d/homestak" and sudoers["mode"] == 0o440
    assert "NOPASSWD:ALL" in sudoers["text"]
    keys = plan.step("host.user_keys")
    assert keys.args["secret_keys"] == ["ssh_keys.dev", "ssh_keys.ops"]
    assert [u.name for u in keys.secrets] == ["ssh_keys.dev", "ssh_keys.ops"]
    body = canonical(plan).decode()
    assert "AAAA ops" not in body and "AAAA dev" not in body


def test_a_changed_key_value_changes_the_key_step() -> None:
    before = user_setup_plan(TARGET, reveal, ("ops",))
    SECRETS["ssh_keys.ops"] = "ssh-ed25519 AAAA rotated"
    try:
        after = user_setup_plan(TARGET, reveal, ("ops",))
    finally:
        SECRETS["ssh_keys.ops"] = "ssh-ed25519 AAAA ops"
    assert before.step("host.user_keys").hash != after.step("host.user_keys").hash
    assert before.step("host.user").hash == after.step("host.user").hash


def test_user_setup_without_any_site_key_is_refused_saying_what_to_add() -> None:
    with pytest.raises(PlanError, match="no ssh_keys"):
        user_setup_plan(TARGET, reveal, ())
