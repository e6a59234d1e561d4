"""Run keys: a step re-runs exactly when its own hash, its inputs' values, or what the steps
it waits for produced, change (a re-created VM re-runs everything downstream of it)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pveplan.executor import run_key
from pveplan.planner import Step, canonical

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=20)
)
outputs = st.dictionaries(st.text(min_size=1, max_size=8), scalars, max_size=4)


def step(hash_: str = "a" * 32) -> Step:
    return Step(address="node.x.start", kind="pve.vm.start", kind_version=1, host="h",
                refs={"vmid": "node.x.create#vm_id"}, hash=hash_)  # fmt: skip


@given(outputs, outputs)
def test_same_inputs_same_key_and_upstream_outputs_matter(a: dict, b: dict) -> None:
    refs = {"vmid": 100}
    key = run_key(step(), refs, {"node.x.create": a})
    assert key == run_key(step(), dict(refs), {"node.x.create": dict(a)})
    same = canonical(a) == canonical(b)  # True and 1 are different outputs
    assert (key == run_key(step(), refs, {"node.x.create": b})) == same


@given(st.integers(100, 999999999), st.integers(100, 999999999))
def test_ref_values_and_step_hash_matter(x: int, y: int) -> None:
    up = {"node.x.create": {"vm_id": x}}
    assert (run_key(step(), {"vmid": x}, up) == run_key(step(), {"vmid": y}, up)) == (x == y)
    assert run_key(step("a" * 32), {"vmid": x}, up) != run_key(step("b" * 32), {"vmid": x}, up)
