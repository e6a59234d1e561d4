"""The executor reads a step's args as its kind's Struct, decoded once by the scheduler.

Every kind the executor implements has its Struct in the planner's registry (and the other
way round), and a step whose args do not fit (an edited plan) fails with a message naming
the step and the field, before its kind runs, instead of a KeyError from inside a kind.
"""

from __future__ import annotations

from pathlib import Path

import trio

from pveplan.executor import execute
from pveplan.executor._context import Services
from pveplan.executor._kinds import _REGISTRY, kind_for
from pveplan.executor._scheduler import destroy_resources
from pveplan.planner import STEP_ARGS, Plan, PlanSettings, Step, WaitIpArgs
from pveplan.store import open_store


def test_every_executor_kind_has_the_planners_args_struct_and_back() -> None:
    kind_for("pve.vm.create")  # loads the built-in kinds
    builtin = {name for name, kind in _REGISTRY.items() if kind.args_type is None}
    assert builtin == set(STEP_ARGS)


def test_the_timeout_of_a_wait_is_its_own_arg() -> None:
    kind = kind_for("pve.vm.wait_ip")
    assert kind is not None
    assert kind.timeout(WaitIpArgs(timeout=7)) == 7.0
    start = kind_for("pve.vm.start")
    assert start is not None
    assert start.timeout(STEP_ARGS["pve.vm.start"]()) == 300.0  # its tier


def _services(store: object) -> Services:
    return Services(
        store=store,  # type: ignore[arg-type]
        workspace="t@h",
        hosts=None,  # type: ignore[arg-type]  (nothing runs far enough to reach a host)
        pool=None,  # type: ignore[arg-type]
        driver_key=(b"", ""),
        reveal=lambda name: "",
    )


def test_a_step_whose_args_do_not_fit_fails_with_a_clear_message(tmp_path: Path) -> None:
    bad = Step(
        address="node.x.wait_ip",
        kind="pve.vm.wait_ip",
        kind_version=1,
        host="h",
        args={"timeout": "soon"},
        hash="1" * 32,
    )
    after = Step(
        address="node.x.next",
        kind="pve.vm.start",
        kind_version=1,
        host="h",
        deps=(bad.address,),
        hash="2" * 32,
    )
    plan = Plan(
        manifest="t",
        host="h",
        settings=PlanSettings(on_error="continue"),
        steps=(bad, after),
        hash="0" * 32,
    )
    with open_store(tmp_path) as store:
        report = trio.run(execute, plan, _services(store), lambda event: None)
    failed, skipped = report.outcomes
    assert failed.status == "failed" and skipped.status == "skipped"
    assert failed.error == (
        "step node.x.wait_ip (pve.vm.wait_ip): its args do not fit the kind: "
        "Expected `int`, got `str` - at `$.timeout`"
    )


def test_destroying_a_resource_whose_args_do_not_fit_says_so(tmp_path: Path) -> None:
    create = Step(
        address="node.x.create",
        kind="pve.vm.create",
        kind_version=1,
        host="h",
        args={"name": "x"},
        hash="1" * 32,
    )
    with open_store(tmp_path) as store:
        destroyed, errors = trio.run(
            destroy_resources, _services(store), [(create, {"vm_id": 100})], lambda e: None
        )
    assert destroyed == []
    assert len(errors) == 1
    assert errors[0].startswith("step node.x.create (pve.vm.create): its args do not fit")


def test_a_live_resource_rebuilt_from_its_outputs_is_read_as_the_kinds_resource_args(
    tmp_path: Path,
) -> None:
    """`resource_step` gives a create step only what its destroy needs (name, vmid)."""
    from pveplan.executor._run import resource_step

    step = resource_step("h", "node.x.create", "pve.vm.create", {"name": "x", "vm_id": 100})
    with open_store(tmp_path) as store:
        _, errors = trio.run(destroy_resources, _services(store), [step], lambda e: None)
    # Decoded, then destroyed for real: here there is no host to reach, so that fails.
    assert len(errors) == 1 and "do not fit" not in errors[0]
    assert errors[0].startswith("node.x.create: destroy failed")
