"""Properties of the readable diff over random change sets: every changed step is printed
once or counted once under the step carrying its cause, never twice, never lost."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pveplan.planner._diff import Change, diff_plans, summarize
from pveplan.planner._render import render_changes
from tests._tiers import examples

from .conftest import EXAMPLES
from .test_diff_readable import (
    HEAD,
    PLAIN,
    changed,
    compile_plan,
    printed_steps,
    pve,
    section,
    vm,
    yaml_manifest,
)

# ---- random edits of a real manifest ------------------------------------------------------------

# name -> (build, vmid, parent): three levels, siblings, a flat VM, a childless pve node
POOL = {
    "outer": (pve, 99400, None),
    "mid": (pve, 99410, "outer"),
    "leaf": (vm, 99420, "mid"),
    "twin": (vm, 99430, "outer"),
    "side": (vm, 99440, None),
    "solo": (pve, 99450, None),
}

node_edit = st.fixed_dictionaries(
    {
        "present": st.booleans(),
        "disk": st.sampled_from([8, 10, 12]),  # 8 shrinks the default 10: kept
        "memory": st.sampled_from([2048, 4096]),
        "vmid": st.sampled_from([0, 1000]),  # a replace
        "preset": st.sampled_from(["vm-small", "vm-medium"]),
    }
)
version = st.fixed_dictionaries({name: node_edit for name in POOL}).filter(
    lambda v: v["side"]["present"] or v["outer"]["present"]  # a manifest needs a node
)


def nodes_of(picked: dict[str, dict[str, object]]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    present: set[str] = set()
    for name, (build, vmid, parent) in POOL.items():
        edit = picked[name]
        if not edit["present"] or (parent is not None and parent not in present):
            continue
        present.add(name)
        node = build(name, vmid + int(edit["vmid"]), parent)  # type: ignore[operator]
        node.update(disk=edit["disk"], memory=edit["memory"], preset=edit["preset"])
        out.append(node)
    return out


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(before=version, after=version)
def test_random_edits_print_each_changed_step_once(
    tmp_path_factory: pytest.TempPathFactory, before: dict, after: dict
) -> None:
    site = tmp_path_factory.mktemp("site") / "site-config"
    shutil.copytree(EXAMPLES, site)
    old = compile_plan(site, yaml_manifest(site, nodes_of(before)))
    new = compile_plan(site, yaml_manifest(site, nodes_of(after)))
    changes = diff_plans(new.plan, old.plan, new.header.sources)
    check_causes(changes)
    check_rendering(changes)


def check_causes(changes: list[Change]) -> None:
    """A dependent names a changed step that carries a cause of its own, at any level."""
    by_key = {c.key: c for c in changes}
    for change in changes:
        if change.cause is None:
            continue
        assert change.action == "update"
        assert all(r.subject is None for r in change.reasons), change
        root = by_key[change.cause]
        assert root.action != "unchanged" and root.cause is None, (change, root)


def check_rendering(changes: list[Change]) -> None:
    summary = summarize(changes)
    everything = Counter(changed(changes))
    text = render_changes(changes, summary, PLAIN)
    heads, summed = printed_steps(text)
    assert len(set(heads)) == len(heads), text  # no step line twice
    assert sum(everything[key] for key in heads) + summed == sum(everything.values()), text
    causes = {key for key in everything if key not in _dependents(changes)}
    assert set(heads) <= causes | _dangling(changes), text
    nodes = section(text, "Nodes:")
    assert len(set(nodes)) == len(nodes), text
    headers = [line for line in section(text, "Steps:") if line.endswith(" ›")]
    assert len(set(headers)) == len(headers), text
    listed, _ = printed_steps(render_changes(changes, summary, PLAIN, verbose=True))
    assert Counter(listed) == everything  # verbose: each one exactly once


def _dependents(changes: list[Change]) -> set[tuple[str, str]]:
    roots = {c.key for c in changes if c.action != "unchanged" and c.cause is None}
    return {(c.host, c.address) for c in changes if c.cause in roots and c.action != "unchanged"}


def _dangling(changes: list[Change]) -> set[tuple[str, str]]:
    """Dependents whose cause is not among the changes: printed as steps of their own."""
    roots = {c.key for c in changes if c.action != "unchanged" and c.cause is None}
    return {(c.host, c.address) for c in changes if c.cause is not None and c.cause not in roots}


# ---- arbitrary change lists (what a caller may hand the renderer) -----------------------------

PATHS = [(), ("node.h1.delegate",), ("node.h1.delegate", "node.h2.delegate"), ("node.h3.delegate",)]
ADDRESSES = [
    f"{kind}.{name}.{step}"
    for kind, name, step in (
        ("node", "a", "create"),
        ("node", "a", "start"),
        ("node", "b", "create"),
        ("node", "b", "config"),
        ("node", "c", "delegate"),
        ("image", "debian-12", "ensure"),
    )
]


@st.composite
def change_lists(draw: st.DrawFn) -> list[Change]:
    keys = draw(
        st.lists(
            st.tuples(st.sampled_from(PATHS), st.sampled_from(ADDRESSES)),
            unique=True,
            max_size=18,
        )
    )
    keys.sort(key=lambda key: key[0])  # plan order: a level's steps together, parents first
    out: list[Change] = []
    for path, address in keys:
        action = draw(st.sampled_from(["create", "update", "replace", "destroy", "unchanged"]))
        earlier = [c.key for c in out] + [(("node.zz.delegate",), "node.gone.create")]
        cause = draw(st.none() | st.sampled_from(earlier)) if action == "update" else None
        out.append(
            Change(
                path=path,
                host=path[-1].split(".")[1] if path else "sim",
                address=address,
                kind="subplan.delegate" if address.endswith("delegate") else "pve.vm.create",
                action=action,
                caused_by=cause[1] if cause else None,
                caused_by_path=cause[0] if cause else (),
            )
        )
    return out


@settings(max_examples=examples(300), deadline=None)
@given(changes=change_lists())
def test_any_change_list_prints_each_changed_step_once(changes: list[Change]) -> None:
    check_rendering(changes)


def test_the_property_sees_a_step_printed_twice() -> None:
    """The checker itself fails on a doubled step line (so the properties can fail)."""
    change = Change(host="sim", address="node.a.create", kind="pve.vm.create", action="update")
    text = render_changes([change], summarize([change]), PLAIN)
    line = next(line for line in text.splitlines() if HEAD.match(line))
    doubled = text.replace(line, f"{line}\n{line}")
    heads, _ = printed_steps(doubled)
    assert len(set(heads)) < len(heads)
