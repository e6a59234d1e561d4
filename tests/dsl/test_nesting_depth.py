"""How deep PVE hosts may nest, and the tree rules staying linear on long chains.

A plan carries each nested host's subplan inside its parent's step, so a chain of a few
hundred levels used to end in a RecursionError traceback while hashing. `validate` now
refuses a tree past `MAX_NESTING` levels at the first node past it, with what to do.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pveplan.dsl._validate import MAX_NESTING

from .conftest import errors_of, load_text


def chain(levels: int, *, cycle_at: int | None = None) -> str:
    """A YAML v2 manifest: a root PVE host and `levels` PVE hosts, each in the one before."""
    lines = ["schema_version: 2", "name: chain", "nodes:"]
    for i in range(levels + 1):
        lines += [f"  - name: n{i}", "    type: pve", "    image: pve-9", f"    vmid: {1000 + i}"]
        if i:
            lines.append(f"    parent: n{i - 1}")
        elif cycle_at is not None:
            lines.append(f"    parent: n{cycle_at}")
    return "\n".join(lines) + "\n"


def test_the_deepest_supported_chain_loads(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, "ok.yaml", chain(MAX_NESTING))
    assert len(loaded.manifest.nodes) == MAX_NESTING + 1


def test_a_deeper_chain_is_refused_once_at_the_first_node_past_the_limit(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, "deep.yaml", chain(MAX_NESTING + 200))
    deep = [e for e in errors if "levels deep" in e]
    assert len(deep) == 1
    assert f"'n{MAX_NESTING + 1}'" in deep[0]
    assert "flatten" in deep[0]


def test_a_long_cycle_is_a_cycle_not_a_depth(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, "cycle.yaml", chain(MAX_NESTING + 20, cycle_at=MAX_NESTING + 20))
    assert any("parent cycle" in e for e in errors)
    assert not any("levels deep" in e for e in errors)


@settings(max_examples=30, deadline=None)
@given(levels=st.integers(min_value=MAX_NESTING - 3, max_value=MAX_NESTING + 3))
def test_refused_exactly_when_past_the_limit(tmp_path_factory, levels: int) -> None:
    tmp = tmp_path_factory.mktemp("nest")
    text = chain(levels)
    if levels <= MAX_NESTING:
        load_text(tmp, "m.yaml", text)
    else:
        assert any("levels deep" in e for e in errors_of(tmp, "m.yaml", text))
