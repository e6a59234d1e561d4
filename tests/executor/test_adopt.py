"""`pveplan import`'s rules, pure: which existing VMs may become which nodes.

Why: import writes the store, and a wrong pair would make pveplan manage (resize, later
destroy) somebody else's VM. Every rule is a refusal with its cause and what to do, so each
is tested here on a listing like PVE's, with no host; `--discover` proposes pairs only on
a name plus one more sign, and refuses to guess between two VMs. What import records from
the pairs it accepts (`import_results`, `adopted_plan`) is checked on a real compiled plan.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pveplan.dsl import load_manifest
from pveplan.executor import (
    Adopted,
    Claim,
    Wanted,
    adopted_key,
    agent_problem,
    discover_claims,
    host_key_of,
    import_results,
    match_claims,
    parse_claim,
    parse_vmid_range,
    run_key,
)
from pveplan.planner import Plan, adopted_plan, verify_plan
from pveplan.planner._planning import build_plan_file
from pveplan.planner.siteconfig import load_site_config, resolve_manifest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "site-config"
WANTED = [
    Wanted(name="db", vmid=120),
    Wanted(name="web"),  # unpinned: PVE picked its vmid
    Wanted(name="edge", vmid=130, path=("node.root-pve.delegate",)),
]
NODES = {"db", "web", "edge", "root-pve", "cache"}  # cache: a container node


def vm(vmid: int, name: str, **extra: Any) -> dict[str, Any]:
    return {"vmid": vmid, "name": name, "type": "qemu", "status": "running", **extra}


LISTING = [
    vm(120, "db"),
    vm(121, "web", tags="pveplan;pveplan-lab"),
    vm(122, "web"),
    vm(123, "payroll"),
    vm(124, "web", template=1),
    vm(125, "web", type="lxc"),
    vm(126, "web", tags="pveplan;pveplan-other"),
    vm(130, "edge"),
]


def match(*claims: Claim, recorded: dict[str, int | None] | None = None) -> Any:
    return match_claims(
        WANTED, claims, LISTING, "lab", host="pve1", nodes=NODES, recorded=recorded or {}
    )


def test_a_vm_that_is_the_node_is_adopted() -> None:
    found = match(Claim(node="db", vmid=120), Claim(node="web", vmid=122))
    assert [(c.node, c.vmid, c.status) for c in found.adopt] == [
        ("db", 120, "running"),
        ("web", 122, "running"),
    ]
    assert found.refused == ()


@pytest.mark.parametrize(
    ("claims", "recorded", "expected"),
    [
        ((("nope", 123),), {}, "the manifest has no node 'nope'"),
        ((("cache", 123),), {}, "not a VM node"),
        ((("edge", 130),), {}, "inside nested host"),
        ((("db", 120),), {"db": 120}, "already recorded in the store (VM 120)"),
        ((("web", 122),), {"db": 122}, "already recorded in the store as node db"),
        ((("web", 120),), {}, "VMID 120 is node db's in the manifest"),
        ((("db", 123),), {}, "pins VMID 120 for node db"),
        ((("web", 999),), {}, "there is no VM 999 on pve1"),
        ((("web", 125),), {}, "lxc guest, not a VM"),
        ((("web", 124),), {}, "is a template"),
        ((("web", 123),), {}, "named 'payroll', not 'web'"),
        ((("web", 126),), {}, "carries tag pveplan-other"),
        ((("web", 121), ("web", 122)), {}, "named more than once"),
        ((("db", 120), ("web", 120)), {}, "named for more than one node"),
    ],
)
def test_each_rule_refuses_with_cause_and_fix(
    claims: tuple[tuple[str, int], ...], recorded: dict[str, int | None], expected: str
) -> None:
    found = match(*(Claim(node=n, vmid=v) for n, v in claims), recorded=recorded)
    assert found.adopt == () or len(claims) > 1
    reasons = [r.reason for r in found.refused]
    assert reasons and all(expected in r for r in reasons), reasons
    assert all(":" in r for r in reasons), "each reason says what to do after its cause"


def test_a_misnamed_vm_is_told_how_to_rename_it() -> None:
    (refused,) = match(Claim(node="web", vmid=123)).refused
    assert "`qm set 123 --name web`" in refused.reason


def test_discover_needs_a_name_and_one_more_sign_and_never_guesses() -> None:
    claims, refused = discover_claims(WANTED, LISTING, "lab")
    # db: by its pinned vmid; web: tagged 121 (122 has only the name); edge: nested, skipped
    assert [(c.node, c.vmid, c.found_by) for c in claims] == [
        ("db", 120, "name+vmid"),
        ("web", 121, "tag"),
    ]
    assert refused == ()
    claims, refused = discover_claims(WANTED, LISTING, "lab", vmid_range=(122, 129))
    assert [c.node for c in claims] == ["db"]
    (ambiguous,) = refused
    assert ambiguous.node == "web" and "121, 122, 124, 125, 126" in ambiguous.reason
    assert "name the one meant, as web=VMID" in ambiguous.reason
    # the candidates then meet the same rules as named pairs
    claims, _ = discover_claims(WANTED, LISTING, "other", recorded={"db": 120})
    assert [(c.node, c.vmid) for c in claims] == [("web", 126)]
    assert discover_claims(WANTED, [vm(140, "web")], "lab") == ((), ())


@pytest.mark.parametrize(
    ("text", "claim"),
    [
        ("db=120", ("db", 120)),
        (" db = 120 ", ("db", 120)),
        ("worker-01=99101", ("worker-01", 99101)),
    ],
)
def test_node_vmid_forms(text: str, claim: tuple[str, int]) -> None:
    parsed = parse_claim(text)
    assert (parsed.node, parsed.vmid, parsed.found_by) == (*claim, "given")


@pytest.mark.parametrize(
    "text",
    ["db", "db=", "=120", "db=abc", "db=99", "db=1e3", "db=-120", "db=１２０", "db=1000000000"],
)
def test_bad_node_vmid_forms_say_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match=r"NODE=VMID|from 100 to 999999999"):
        parse_claim(text)


@given(st.text(max_size=30))
def test_parsing_a_pair_or_a_range_never_fails_but_with_a_message(text: str) -> None:
    for parse in (parse_claim, parse_vmid_range):
        try:
            parse(text)
        except ValueError as exc:
            assert str(exc)
    try:
        claim = parse_claim(text)
    except ValueError:
        return
    assert parse_claim(f"{claim.node}={claim.vmid}") == claim


def test_vmid_ranges() -> None:
    assert parse_vmid_range("100-199") == (100, 199)
    assert parse_vmid_range("150-150") == (150, 150)
    for bad in ("100", "199-100", "50-99", "a-b", "100-"):
        with pytest.raises(ValueError, match="VMID range"):
            parse_vmid_range(bad)


def test_host_key_of_takes_the_ed25519_line_only() -> None:
    from pveplan.executor import generate_ed25519

    _, line = generate_ed25519("root@db")
    assert host_key_of(line + "\n") == " ".join(line.split()[:2])
    for bad in ("", "ssh-rsa AAAAB3NzaC1yc2E root@db", "ssh-ed25519 not-base64"):
        with pytest.raises(ValueError, match="no valid ed25519"):
            host_key_of(bad)


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        ("running", "No QEMU guest agent configured", "qm set 120 --agent enabled=1"),
        ("stopped", "VM 120 is not running", "start it (`qm start 120`)"),
        ("running", "QEMU guest agent is not running", "start qemu-guest-agent in the guest"),
        ("running", "Agent error: failed to open file '/x' (mode: 'r'): No such", "ssh-keygen -A"),
        ("running", "Permission check failed (/vms/120, VM.GuestAgent.FileRead)", "FileRead"),
    ],
)
def test_a_key_that_cannot_be_read_says_why_and_what_to_do(
    status: str, error: str, expected: str
) -> None:
    message = agent_problem(120, status, error)
    assert expected in message
    if "Permission" not in error:
        assert "let pveplan recreate it" in message


# --- what import records -----------------------------------------------------------------


@cache
def workers() -> Plan:
    site = load_site_config(EXAMPLES)
    loaded = load_manifest(str(EXAMPLES / "manifests" / "workers-20.pvp"))
    return build_plan_file(
        loaded, resolve_manifest(loaded, site, "sim"), site, "sim", planned_against=None
    ).plan


def adopted(node: str, vmid: int, *, running: bool = True, ip: str | None = "10.0.0.5") -> Adopted:
    outputs = {"vm_id": vmid, "name": node, "node": "sim", "uuid": "u", "host_key": "k"}
    return Adopted(
        node=node, vmid=vmid, address=f"node.{node}.create", outputs=outputs, running=running, ip=ip
    )


def test_import_records_only_what_it_saw_under_the_keys_apply_looks_up() -> None:
    plan = workers()
    first, second = adopted("worker-01", 99101), adopted("worker-02", 99102, running=False)
    records = import_results(plan, [first, second], {}, run_id=7, now=1.0)
    done = {r.address: (r, resource) for r, resource in records}
    assert set(done) == {"node.worker-01.create", "node.worker-01.start", "node.worker-01.wait_ip",
                         "node.worker-02.create"}  # fmt: skip
    create, resource = done["node.worker-01.create"]
    assert create.run_key == adopted_key(plan.step("node.worker-01.create"))
    assert resource == first.outputs and create.outputs == first.outputs
    # the start's and wait_ip's keys are the scheduler's own, from the create's outputs
    start = plan.step("node.worker-01.start")
    refs = {"vmid": 99101}
    assert done[start.address][0].run_key == run_key(
        start, refs, {"node.worker-01.create": first.outputs}
    )
    wait = plan.step("node.worker-01.wait_ip")
    assert done[wait.address][0].outputs == {"ip": "10.0.0.5"}
    assert all(r.status == "ok" and r.run_id == 7 for r, _ in records)
    assert all(resource is None for r, resource in records if not r.address.endswith(".create"))


def test_the_applied_state_is_the_recorded_steps_and_what_they_hash_over() -> None:
    plan = workers()
    state = adopted_plan(plan, ["node.worker-01.create", "node.worker-01.start"])
    kept = [s.address for s in state.steps]
    assert "node.worker-01.create" in kept and "node.worker-01.start" in kept
    assert not any(a.startswith("node.worker-02") for a in kept)
    assert not any(a.endswith(".wait_ssh") for a in kept)
    assert verify_plan(state) == [], "the store reads it back and checks its hashes"
    assert {s.address: s.hash for s in state.steps}.items() <= {
        s.address: s.hash for s in plan.steps
    }.items()


@given(
    st.dictionaries(st.text(min_size=1, max_size=6), st.integers(), max_size=3),
    st.sampled_from(["a" * 32, "b" * 32]),
)
def test_an_adopted_result_is_never_taken_for_a_run_s_and_follows_the_step_hash(
    refs: dict, hash_: str
) -> None:
    from pveplan.planner import Step

    step = Step(address="node.x.create", kind="pve.vm.create", kind_version=1, host="h",
                refs={"volume": "image.d.ensure#volid"}, hash=hash_)  # fmt: skip
    other = Step(address="node.x.create", kind="pve.vm.create", kind_version=1, host="h",
                 refs={"volume": "image.d.ensure#volid"}, hash="c" * 32)  # fmt: skip
    assert adopted_key(step) != run_key(step, refs, {"image.d.ensure": refs})
    assert adopted_key(step) != adopted_key(other), "a changed create is no longer adopted"
