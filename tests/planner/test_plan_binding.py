"""A signed plan applies only where it was approved (issue 17).

The attack this guards against: take a plan signed for one workspace, point its header at
another workspace (and that workspace's applied plan, which anyone can read), and let
`apply FILE` compare against, and destroy, what lives there. Every header field `apply`
acts on is covered by the signature; the rest must not change what apply does. These
checks all happen before a lock, a simulator or a host is touched, so no simulator is
needed: `prepare` is the function that decides what `apply FILE` will do.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pveplan.cli import Console
from pveplan.cli._app import build_parser
from pveplan.cli._apply import Prepared, prepare
from pveplan.planner._errors import PlanError
from pveplan.planner._hashing import canonical
from pveplan.planner._planfile import (
    BOUND_HEADER_FIELDS,
    FREE_HEADER_FIELDS,
    Header,
    PlanFile,
    encode_plan_file,
    read_plan_file,
)
from pveplan.store import open_store
from tests._tiers import examples

from ..cli_runner import run_cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "site-config"


class Lab:
    """A site config, a store in which `n2-tiered@sim` is applied, and a signed n1-push plan."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.site = root / "site-config"
        self.store = root / "store"
        shutil.copytree(EXAMPLES, self.site)
        self.key = root / "approver"
        assert run_cli(["keygen", str(self.key)])[0] == 0
        self.other = self._plan("n2-tiered", "other.json")
        with open_store(self.store) as store:  # as if n2-tiered had been applied
            plan = self.other.plan
            store.put_plan(
                plan.hash, store.put_object(canonical(plan)), self.other.header.workspace
            )
            store.set_applied(
                self.other.header.workspace, plan.hash, {s.address: s.hash for s in plan.steps}
            )
        self.signed_path = root / "n1.json"
        self._plan("n1-push", "n1.json", "--sign", str(self.key))
        self.signed = read_plan_file(self.signed_path)

    def _plan(self, manifest: str, out: str, *more: str) -> PlanFile:
        argv = ["plan", "-M", manifest, "-H", "sim", "--site-config", str(self.site)]
        code, _, err = run_cli([*argv, "-o", str(self.root / out), *more])
        assert code == 0, err
        return read_plan_file(self.root / out)

    def prepare(self, plan_file: PlanFile) -> Prepared:
        """What `apply FILE --require-signature KEY.pub` would act on, or its refusal."""
        path = self.root / "candidate.json"
        path.write_bytes(encode_plan_file(plan_file))
        args = build_parser().parse_args(
            ["apply", str(path), "--require-signature", f"{self.key}.pub", "--yes"]
        )
        console = Console(out=io.StringIO(), err=io.StringIO(), env={**os.environ}, cwd=self.root)
        return prepare(args, console)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    root = tmp_path_factory.mktemp("binding")
    saved = os.environ.get("PVEPLAN_STORE")
    os.environ["PVEPLAN_STORE"] = str(root / "store")
    try:
        yield Lab(root)
    finally:
        if saved is None:
            os.environ.pop("PVEPLAN_STORE", None)
        else:
            os.environ["PVEPLAN_STORE"] = saved


def _edit(plan_file: PlanFile, **fields: object) -> PlanFile:
    header = msgspec.structs.replace(plan_file.header, **fields)
    return msgspec.structs.replace(plan_file, header=header)


def _behaviour(prepared: Prepared) -> tuple[object, ...]:
    """What apply acts on: the plan, the workspace, what it compares against, the site."""
    old = prepared.old.hash if prepared.old is not None else None
    return (prepared.plan.hash, prepared.workspace, old, prepared.site.root.resolve())


def test_every_header_field_is_either_bound_or_free() -> None:
    fields = set(Header.__struct_fields__)
    assert set(BOUND_HEADER_FIELDS) | set(FREE_HEADER_FIELDS) == fields
    assert not set(BOUND_HEADER_FIELDS) & set(FREE_HEADER_FIELDS)


def test_the_untouched_signed_plan_is_accepted(lab: Lab) -> None:
    prepared = lab.prepare(lab.signed)
    assert prepared.workspace == "n1-push@sim" and prepared.old is None


def test_a_signed_plan_redirected_to_another_workspace_is_refused(lab: Lab) -> None:
    # The attack as reported: workspace and planned_against of another, applied workspace.
    redirected = _edit(
        lab.signed, workspace=lab.other.header.workspace, planned_against=lab.other.hash
    )
    with pytest.raises(PlanError) as refused:
        lab.prepare(redirected)
    assert "`workspace`" in str(refused.value)


def test_a_signed_plan_redirected_to_another_prior_state_is_refused(lab: Lab) -> None:
    moved = _edit(lab.signed, planned_against=lab.other.hash)
    with pytest.raises(PlanError) as refused:
        lab.prepare(moved)
    assert "`planned_against`" in str(refused.value)


def test_a_workspace_that_is_not_the_plans_own_is_refused_even_unsigned(lab: Lab) -> None:
    unsigned = _edit(lab.signed, signatures=(), workspace=lab.other.header.workspace)
    path = lab.root / "unsigned.json"
    path.write_bytes(encode_plan_file(unsigned))
    code, _, err = run_cli(["apply", str(path), "--site-config", str(lab.site), "--yes"])
    assert code == 1 and "`workspace`" in err and "Traceback" not in err


_values = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.sampled_from(["n2-tiered@sim", "n1-push@sim", "", "pveplan 0.0", "../site-config"]),
    st.dictionaries(st.text(max_size=12), st.text(max_size=40), max_size=3),
)


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(field=st.sampled_from(sorted(Header.__struct_fields__)), value=_values, data=st.data())
def test_no_header_edit_changes_what_apply_does_without_a_refusal(
    lab: Lab, field: str, value: object, data: st.DataObject
) -> None:
    if field == "planned_against" and data.draw(st.booleans()):
        value = lab.other.hash  # a real prior state, not just noise
    try:
        edited = _edit(lab.signed, **{field: value})
        edited = msgspec.json.decode(encode_plan_file(edited), type=PlanFile)  # as typed on disk
    except (msgspec.ValidationError, TypeError):
        return  # a value of the wrong type cannot even be written as a plan file
    if getattr(edited.header, field) == getattr(lab.signed.header, field):
        return
    try:
        prepared = lab.prepare(edited)
    except PlanError:
        return  # refused before anything ran: fine
    assert field in FREE_HEADER_FIELDS, f"edited bound field {field} was accepted"
    assert _behaviour(prepared) == _behaviour(lab.prepare(lab.signed))


def test_arguments_parse_as_apply_does() -> None:
    # prepare() above is given what the parser makes of a real command line.
    args = build_parser().parse_args(["apply", "x.json", "--require-signature", "k.pub"])
    assert isinstance(args, argparse.Namespace) and args.files == ["x.json"]
