"""A real 2,000-node plan, three levels of nested PVE hosts, as PR comments.

Planned and rendered by the CLI as a user would (`plan -o`, then `show --format markdown
--against --parts-dir`), after a change touching every kind of diff: new nodes, resized
ones (update), moved vmids (replace) and removed ones (destroy). Every part must fit the
limit, balance its fences, and between them show every changed step exactly once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pveplan.planner._diff import diff_plans
from pveplan.planner._planfile import read_plan_file

from ..cli_runner import run_cli
from .test_cli_plan import site  # noqa: F401  (the fixture)
from .test_markdown import check

NODES = 2_000


def manifest(
    memory_of: dict[int, int], vmid_shift: set[int], removed: set[int], added: int = 0
) -> str:
    """10 PVE roots, 9 PVE hosts under each, the other 1,900 VMs spread under those 90
    (and `added` more VMs)."""
    parents: list[int | None] = [None] * 10 + [root for root in range(10) for _ in range(9)]
    parents += [10 + i % 90 for i in range(NODES + added - len(parents))]
    lines = ["schema_version: 2", "name: big", "pattern: tiered", "nodes:"]
    for i, parent in enumerate(parents):
        if i in removed:
            continue
        pve = i < 100
        lines += [
            f"  - name: n-{i}",
            f"    type: {'pve' if pve else 'vm'}",
            "    spec: base",
            "    preset: vm-small",
            f"    image: {'pve-9' if pve else 'debian-12'}",
            f"    vmid: {10_000 + i + (50_000 if i in vmid_shift else 0)}",
        ]
        if i in memory_of:
            lines.append(f"    memory: {memory_of[i]}")
        if parent is not None:
            lines.append(f"    parent: n-{parent}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("max_chars", [65_000, 20_000])
def test_a_2000_node_plan_renders_to_sound_parts(
    site: Path,  # noqa: F811
    tmp_path: Path,
    max_chars: int,
) -> None:
    path = site / "manifests" / "big.yaml"
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    path.write_text(manifest({}, set(), set()))
    base = ["plan", str(path), "-H", "sim", "--site-config", str(site)]
    assert run_cli([*base, "-o", str(before)])[0] == 0
    resized = {i: 4096 for i in range(100, NODES, 8)}
    path.write_text(manifest(resized, set(range(150, NODES, 200)), set(range(1990, NODES)), 10))
    assert run_cli([*base, "-o", str(after)])[0] == 0
    parts_dir = tmp_path / "comments"
    code, out, err = run_cli(
        [
            "show",
            "--format",
            "markdown",
            str(after),
            "--against",
            str(before),
            "--max-chars",
            str(max_chars),
            "--parts-dir",
            str(parts_dir),
        ]
    )
    assert code == 0, err
    files = sorted(parts_dir.glob("big-sim-part-*.md"))
    assert f"Wrote {len(files)} markdown part(s)" in out
    parts = [f.read_text() for f in files]
    new, old = read_plan_file(after), read_plan_file(before)
    changes = diff_plans(new.plan, old.plan, new.header.sources)
    per_part = check(parts, changes, max_chars, new.hash)
    actions = {c.action for c in changes}
    assert actions == {"create", "update", "replace", "destroy", "unchanged"}
    assert sum(len(steps) for steps in per_part) == sum(c.action != "unchanged" for c in changes)
    assert len(parts) >= 2
