"""A diff people can read: one change per cause, dependents summed up under it, a per-node
summary above the steps, and no step printed twice (issue 16, item 5)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import yaml

from pveplan.cli._render import Style
from pveplan.dsl import load_manifest
from pveplan.planner._diff import Change, diff_plans, summarize
from pveplan.planner._plan import Plan
from pveplan.planner._planfile import PlanFile
from pveplan.planner._planning import build_plan_file
from pveplan.planner._render import render_changes
from pveplan.planner.siteconfig import load_site_config, resolve_manifest

from ..cli_runner import run_cli

PLAIN = Style(False)

FLEET = """\
manifest "fleet" {
  pattern = "flat"
  for i in range(1, 21) {
    let num = if i < 10 then "0${i}" else str(i)
    node "worker-${num}" {
      type = "vm"
      spec = "base"
      preset = "vm-small"
      image = "debian-12"
      vmid = 99100 + i
      disk = DISK
    }
  }
}
"""

HEAD = re.compile(r"(?P<indent> *)(?P<symbol>\+|~|-/\+|-) (?P<address>\S+)  (?P<kind>\S+)")
DEPENDENTS = re.compile(r"(?P<indent> *)and (?P<count>\d+) dependent steps?:?")


def compile_plan(site: Path, file: Path) -> PlanFile:
    config = load_site_config(site)
    loaded = load_manifest(str(file))
    resolved = resolve_manifest(loaded, config, "sim")
    return build_plan_file(loaded, resolved, config, "sim", planned_against=None)


def yaml_manifest(site: Path, nodes: list[dict[str, object]]) -> Path:
    path = site / "manifests" / "tree.yaml"
    doc = {"schema_version": 2, "name": "tree", "pattern": "tiered", "nodes": nodes}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def vm(name: str, vmid: int, parent: str | None = None, **fields: object) -> dict[str, object]:
    node: dict[str, object] = {
        "name": name,
        "type": "vm",
        "spec": "base",
        "preset": "vm-small",
        "image": "debian-12",
        "vmid": vmid,
        **fields,
    }
    if parent is not None:
        node["parent"] = parent
    return node


def pve(name: str, vmid: int, parent: str | None = None, **fields: object) -> dict[str, object]:
    return {**vm(name, vmid, parent, **fields), "type": "pve", "spec": "pve", "image": "pve-9"}


def section(text: str, title: str) -> list[str]:
    """The lines of the `Nodes:` or `Steps:` section (up to the next blank line)."""
    lines = text.splitlines()
    if title not in lines:
        return []
    rest = lines[lines.index(title) + 1 :]
    return rest[: rest.index("")] if "" in rest else rest


def printed_steps(text: str, top_host: str = "sim") -> tuple[list[tuple[str, str]], int]:
    """(level host, address) of each step line of the step list, heads and listed
    dependents alike, and the sum of the `and N dependent steps` counts."""
    hosts = {0: top_host}
    out: list[tuple[str, str]] = []
    summed = 0
    listing: tuple[int, str] | None = None  # indent and level of an open dependents list
    level = top_host  # of the last step head
    for line in section(text, "Steps:"):
        header = re.fullmatch(r"( +)(\S+) ›", line)
        if header:
            depth = len(header[1]) // 2
            hosts = {d: h for d, h in hosts.items() if d < depth} | {depth: header[2]}
            listing = None
            continue
        if deps := DEPENDENTS.fullmatch(line):
            summed += int(deps["count"])
            listing = (len(deps["indent"]) + 2, level) if line.endswith(":") else None
            continue
        head = HEAD.match(line)
        if head is None:
            continue  # a reason or a note
        start = len(head["indent"]) + len(head["symbol"]) - 3  # symbols are right-aligned to 3
        if listing is not None and start == listing[0]:
            on = re.search(r"  \(on (\S+)\)$", line)
            out.append((on[1] if on else listing[1], head["address"]))
            continue
        listing = None
        level = hosts[start // 2 - 1]
        out.append((level, head["address"]))
    return out, summed


def changed(changes: list[Change]) -> list[tuple[str, str]]:
    return [(c.host, c.address) for c in changes if c.action != "unchanged"]


# ---- one edit of one node in a 20-node manifest ----------------------------------------------


def test_one_disk_resize_in_twenty_nodes_reads_as_one_change(site: Path, tmp_path: Path) -> None:
    manifest = site / "manifests" / "fleet.pvp"
    manifest.write_text(FLEET.replace("DISK", "10"))
    args = ["-M", "fleet", "-H", "sim", "--site-config", str(site)]
    old = tmp_path / "old.json"
    assert run_cli(["plan", *args, "-o", str(old)])[0] == 0
    manifest.write_text(FLEET.replace("DISK", "if i == 7 then 12 else 10"))

    code, out, err = run_cli(["plan", *args, "--against", str(old)])

    assert code == 0, err
    step_lines = [line.strip() for line in out.splitlines() if HEAD.match(line)]
    assert step_lines == ["~ node.worker-07.create  pve.vm.create"], out
    assert section(out, "Nodes:") == ["    ~ vm worker-07 (disk)"]
    assert "        disk: 10 -> 12  (fleet.pvp:11:14)" in out.splitlines()
    assert [line.strip() for line in out.splitlines() if "dependent" in line] == [
        "and 4 dependent steps"
    ]
    assert "worker-07.start" not in out and "input node." not in out
    assert out.rstrip().endswith("Plan: 0 to add, 5 to change, 0 to replace, 0 to destroy.")


def test_the_json_diff_keeps_every_step_and_names_the_cause(site: Path, tmp_path: Path) -> None:
    manifest = site / "manifests" / "fleet.pvp"
    manifest.write_text(FLEET.replace("DISK", "10"))
    args = ["-M", "fleet", "-H", "sim", "--site-config", str(site)]
    old = tmp_path / "old.json"
    run_cli(["plan", *args, "-o", str(old)])
    manifest.write_text(FLEET.replace("DISK", "if i == 7 then 12 else 10"))

    code, out, _ = run_cli(["plan", *args, "--against", str(old), "--json"])

    report = json.loads(out)
    assert code == 0
    by_address = {c["address"]: c for c in report["changes"]}
    assert sorted(by_address) == sorted(
        f"node.worker-07.{s}" for s in ("create", "start", "wait_ip", "wait_ssh", "config")
    )
    assert "caused_by" not in by_address["node.worker-07.create"]
    for step in ("start", "wait_ip", "wait_ssh", "config"):
        assert by_address[f"node.worker-07.{step}"]["caused_by"] == "node.worker-07.create"
    assert report["nodes"] == [
        {"host": "sim", "name": "worker-07", "type": "vm", "action": "update", "fields": ["disk"]}
    ]


# ---- nested levels ----------------------------------------------------------------------------


def tree(leaf_disk: int = 10, outer_memory: int | None = None) -> list[dict[str, object]]:
    outer = pve("outer", 99100)
    if outer_memory is not None:
        outer["memory"] = outer_memory
    return [
        outer,
        pve("mid", 99110, "outer"),
        vm("leaf", 99120, "mid", disk=leaf_disk),
        vm("side", 99130),
    ]


def test_a_leaf_change_shows_only_at_its_level_delegates_summed(site: Path) -> None:
    old = compile_plan(site, yaml_manifest(site, tree()))
    manifest = yaml_manifest(site, tree(leaf_disk=14))
    new = compile_plan(site, manifest)
    changes = diff_plans(new.plan, old.plan, new.header.sources)
    line = next(n for n, t in enumerate(manifest.read_text().splitlines(), 1) if "disk: 14" in t)

    text = render_changes(changes, summarize(changes), PLAIN)

    assert section(text, "Nodes:") == ["    ~ vm outer › mid › leaf (disk)"]
    assert section(text, "Steps:") == [
        "  outer ›",
        "    mid ›",
        "        ~ node.leaf.create  pve.vm.create",
        f"            disk: 10 -> 14  (tree.yaml:{line}:9)",
        "            and 6 dependent steps",
    ]
    delegates = {c.address: c for c in changes if c.kind == "subplan.delegate"}
    assert delegates["node.outer.delegate"].cause == (
        ("node.outer.delegate", "node.mid.delegate"),
        "node.leaf.create",
    )
    assert text.endswith("Plan: 0 to add, 7 to change, 0 to replace, 0 to destroy.")


def test_verbose_lists_each_dependent_once_under_its_cause(site: Path) -> None:
    old = compile_plan(site, yaml_manifest(site, tree()))
    new = compile_plan(site, yaml_manifest(site, tree(leaf_disk=14)))
    changes = diff_plans(new.plan, old.plan, new.header.sources)

    text = render_changes(changes, summarize(changes), PLAIN, verbose=True)

    assert section(text, "Steps:")[4:] == [
        "            and 6 dependent steps:",
        "                ~ node.outer.delegate  subplan.delegate  (on sim)",
        "                ~ node.mid.delegate  subplan.delegate  (on outer)",
        "                ~ node.leaf.start  pve.vm.start",
        "                ~ node.leaf.wait_ip  pve.vm.wait_ip",
        "                ~ node.leaf.wait_ssh  ssh.wait",
        "                ~ node.leaf.config  config.push",
    ]
    assert sorted(printed_steps(text)[0]) == sorted(changed(changes))


def test_a_pve_host_change_and_a_nested_change_are_two_causes(site: Path) -> None:
    old = compile_plan(site, yaml_manifest(site, tree()))
    new = compile_plan(site, yaml_manifest(site, tree(leaf_disk=14, outer_memory=12288)))
    changes = diff_plans(new.plan, old.plan, new.header.sources)

    text = render_changes(changes, summarize(changes), PLAIN)

    assert section(text, "Nodes:") == [
        "    ~ pve outer (memory)",
        "    ~ vm outer › mid › leaf (disk)",
    ]
    heads = [line.strip() for line in section(text, "Steps:") if HEAD.match(line)]
    assert heads == ["~ node.outer.create  pve.vm.create", "~ node.leaf.create  pve.vm.create"]
    # outer's delegate re-runs because outer changed (same level), and says so
    delegate = next(c for c in changes if c.address == "node.outer.delegate")
    assert delegate.cause == ((), "node.outer.create")
    printed, summed = printed_steps(text)
    assert len(printed) + summed == len(changed(changes))


# ---- the node summary ---------------------------------------------------------------------------


def test_node_summary_shows_add_change_replace_and_destroy(site: Path) -> None:
    before = [pve("host", 99200), vm("db", 99210, "host"), vm("web", 99220), vm("old", 99230)]
    after = [
        pve("host", 99200),
        vm("db", 99210, "host", memory=4096, disk=20),
        vm("web", 99221),
        vm("new", 99240, "host"),
    ]
    old = compile_plan(site, yaml_manifest(site, before))
    new = compile_plan(site, yaml_manifest(site, after))
    changes = diff_plans(new.plan, old.plan, new.header.sources)

    text = render_changes(changes, summarize(changes), PLAIN)

    assert section(text, "Nodes:") == [
        "    ~ pve host (children)",
        "    ~ vm host › db (disk, memory)",
        "    + vm host › new",
        "  -/+ vm web (vmid)",
        "    - vm old",
    ]


def test_a_new_tree_lists_its_images_and_hosts(site: Path) -> None:
    new = compile_plan(site, yaml_manifest(site, tree()))
    changes = diff_plans(new.plan, None)

    text = render_changes(changes, summarize(changes), PLAIN)

    assert section(text, "Nodes:") == [
        "    + storage local",
        "    + image debian-12",
        "    + image pve-9",
        "    + pve outer",
        "    + storage outer › local",
        "    + image outer › pve-9",
        "    + pve outer › mid",
        "    + storage outer › mid › local",
        "    + image outer › mid › debian-12",
        "    + vm outer › mid › leaf",
        "    + vm side",
    ]


# ---- counts -----------------------------------------------------------------------------------


def test_counts_are_steps_of_every_level(site: Path) -> None:
    new = compile_plan(site, yaml_manifest(site, tree()))
    fresh = summarize(diff_plans(new.plan, None))
    assert fresh.add == len(new.plan.walk()) > len(new.plan.steps)
    nothing = Plan(manifest="tree", host="sim", hash="")
    assert summarize(diff_plans(nothing, new.plan)).destroy == len(new.plan.walk())


def test_repeated_lines_are_only_reasons(site: Path) -> None:
    """Two hosts may each get the same image and two nodes the same edit: those reasons may
    repeat, but no node, step, header or summary line does."""
    before = [vm(f"w{n}", 99300 + n) for n in range(4)]
    after = [vm(f"w{n}", 99300 + n, disk=16) for n in range(4)]
    old = compile_plan(site, yaml_manifest(site, before))
    new = compile_plan(site, yaml_manifest(site, after))
    changes = diff_plans(new.plan, old.plan)  # no sources: identical reason lines
    text = render_changes(changes, summarize(changes), PLAIN, verbose=True)
    repeated = [line for line, n in Counter(text.splitlines()).items() if n > 1 and line]
    assert repeated == ["        disk: 10 -> 16", "        and 4 dependent steps:"]
    assert Counter(printed_steps(text)[0]) == Counter(changed(changes))


def test_a_new_image_pin_names_the_image_and_the_nodes_it_reaches(site: Path) -> None:
    nodes = [vm("side", 99130), vm("other", 99140, image="debian-13")]
    old = compile_plan(site, yaml_manifest(site, nodes))
    config = site / "site.yaml"
    pin = "afd852e95699ef51b3cb7f20695cd112bc894bbdedf12304d008324a35885b61"
    config.write_text(config.read_text().replace(pin, "ab" * 32))
    new = compile_plan(site, yaml_manifest(site, nodes))
    changes = diff_plans(new.plan, old.plan, new.header.sources)

    text = render_changes(changes, summarize(changes), PLAIN)

    assert section(text, "Nodes:") == [
        "  -/+ image debian-12 (filename, sha256)",
        "    ~ vm side (via image debian-12)",
    ]
    heads = [line.strip() for line in section(text, "Steps:") if HEAD.match(line)]
    assert heads == ["-/+ image.debian-12.ensure  pve.image.ensure"]
    assert "        and 5 dependent steps" in text.splitlines()


def test_plan_verbose_lists_the_dependents(site: Path, tmp_path: Path) -> None:
    manifest = site / "manifests" / "fleet.pvp"
    manifest.write_text(FLEET.replace("DISK", "10"))
    args = ["-M", "fleet", "-H", "sim", "--site-config", str(site)]
    old = tmp_path / "old.json"
    run_cli(["plan", *args, "-o", str(old)])
    manifest.write_text(FLEET.replace("DISK", "if i == 7 then 12 else 10"))

    code, out, err = run_cli(["plan", *args, "--against", str(old), "--verbose"])

    assert code == 0, err
    assert section(out, "Steps:")[2:] == [
        "        and 4 dependent steps:",
        "            ~ node.worker-07.start  pve.vm.start",
        "            ~ node.worker-07.wait_ip  pve.vm.wait_ip",
        "            ~ node.worker-07.wait_ssh  ssh.wait",
        "            ~ node.worker-07.config  config.push",
    ]
