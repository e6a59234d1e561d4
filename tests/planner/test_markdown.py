"""Plan diffs as Markdown for pull-request comments: split into parts that each stand alone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pveplan.planner._diff import Change, Reason, Summary, diff_plans, summarize
from pveplan.planner._markdown import LINE_MAX, MIN_MAX_CHARS, render_markdown
from pveplan.planner._plan import Plan
from pveplan.planner._planfile import Header, PlanFile, read_plan_file
from pveplan.planner._render import summary_line
from tests._tiers import examples

from ..cli_runner import run_cli

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples" / "site-config"
HASH = "8cfe0123456789abcdef0123456789ab"
HEAD = re.compile(r"^(-/\+|\+|~|-) (\S+)  (\S+)$")
OPEN_FENCE = re.compile(r"^ {0,3}(`{3,})([^`]*)$")
CLOSE_FENCE = re.compile(r"^ {0,3}(`{3,})[ \t]*$")
SUMMARY = re.compile(r"^<details( open)?><summary>(.*)</summary>$")
BAD_CHARS = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
LEVELS = [
    ((), "sim"),
    (("node.a.delegate",), "a"),
    (("node.a.delegate", "node.b.delegate"), "b"),
    (("node.c.delegate",), "c"),
]


def plan_file(manifest: str = "n2-tiered", host: str = "sim", **header: str) -> PlanFile:
    plan = Plan(manifest=manifest, host=host, hash=HASH)
    workspace = header.pop("workspace", f"{manifest}@{host}")
    return PlanFile(
        hash=HASH, plan=plan, header=Header(tool="pveplan test", workspace=workspace, **header)
    )


def parse(part: str) -> list[tuple[str, list[str]]]:
    """The code blocks of one part with their level, checking that fences and <details>
    balance as CommonMark reads them: a block closes only at a fence at least as long."""
    blocks: list[tuple[str, list[str]]] = []
    fence = 0
    depth = 0
    level = ""
    block: list[str] = []
    for line in part.split("\n"):
        if fence:
            closing = CLOSE_FENCE.match(line)
            if closing and len(closing.group(1)) >= fence:
                blocks.append((level, block))
                fence = 0
            else:
                block.append(line)
        elif match := OPEN_FENCE.match(line):
            assert depth == 1 and match.group(2) == "diff", line
            fence, block = len(match.group(1)), []
        elif line.startswith("<details"):
            summary = SUMMARY.match(line)
            assert summary and depth == 0, line
            assert "<" not in summary.group(2).replace("<b>", "").replace("</b>", "")
            level = summary.group(2).split(" — ")[0].replace(" (continued)", "")
            depth += 1
        elif line == "</details>":
            assert depth == 1
            depth -= 1
        else:
            assert "<" not in line, line  # prose is escaped
    assert fence == 0 and depth == 0
    return blocks


def check(
    parts: list[str], changes: list[Change], max_chars: int, digest: str = HASH
) -> list[dict[tuple[str, str], list[str]]]:
    """The invariants every rendering keeps; each part's steps ((level, address) -> lines)."""
    assert parts
    summary = summarize(changes)
    per_part: list[dict[tuple[str, str], list[str]]] = []
    seen: set[tuple[str, str]] = set()
    for number, part in enumerate(parts, 1):
        assert len(part) <= max_chars
        assert not BAD_CHARS.search(part)
        lines = part.split("\n")
        assert lines[0].startswith("### pveplan plan: ")
        wanted = (
            f"part {number}/{len(parts)} of plan {digest}" if len(parts) > 1 else f"plan {digest}"
        )
        assert lines[2] == wanted
        assert f"**{summary_line(summary)}**" in lines
        assert (f"{summary.unchanged} step(s) unchanged (cached), not listed." in lines) == bool(
            summary.unchanged
        )
        steps: dict[tuple[str, str], list[str]] = {}
        for level, block in parse(part):
            assert block, "no empty sections"
            for line in block:
                head = HEAD.match(line)
                if head:
                    assert (level, head.group(2)) not in seen  # no step twice, in any part
                    seen.add((level, head.group(2)))
                    steps[level, head.group(2)] = [line]
                else:
                    assert line.startswith("    ") and steps, line
                    steps[list(steps)[-1]].append(line)
                assert len(line) <= LINE_MAX
        per_part.append(steps)
    shown = [address for steps in per_part for _, address in steps]
    changed = [c.address for c in changes if c.action != "unchanged"]
    assert sorted(shown) == sorted(changed)  # each changed step exactly once
    text = "".join(parts)
    for change in changes:
        if change.action == "unchanged":
            assert change.address not in text
    return per_part


def big_changes() -> list[Change]:
    """2,000 changed steps over four levels, interleaved, plus 300 cached ones."""
    actions = ("create", "update", "replace", "destroy")
    out = []
    for i in range(2300):
        path, host = LEVELS[(i // 7) % 4]
        if i % 23 in (0, 7, 15):
            out.append(
                Change(
                    path=path, host=host, address=f"cached{i:05d}.x", kind="k", action="unchanged"
                )
            )
            continue
        if i % 5 == 0:
            reasons = [Reason(text=f"why-{i:05d}-0 " + "x`y```z" * 500 + "`" * 40, source="m:1")]
        elif i % 7 == 1:
            reasons = [Reason(text=f"why-{i:05d}-{j} <b>&amp;\r\n") for j in range(60)]
        else:
            reasons = [Reason(text=f"why-{i:05d}-{j} ````", source=f"f.pvp:{j}") for j in range(2)]
        out.append(
            Change(
                path=path,
                host=host,
                address=f"s{i:05d}.create",
                kind="pve.vm.create",
                action=actions[i % 4],
                reasons=tuple(reasons),
                note=f"why-{i:05d}-note" if i % 11 == 0 else None,
            )
        )
    return out


@pytest.mark.parametrize("max_chars", [65_000, 5_000, MIN_MAX_CHARS])
def test_a_2000_step_plan_splits_into_sound_parts(max_chars: int) -> None:
    changes = big_changes()
    parts = render_markdown(plan_file(), changes, summarize(changes), max_chars=max_chars)
    per_part = check(parts, changes, max_chars)
    assert sum(len(steps) for steps in per_part) == 2000
    assert len(parts) > (1 if max_chars == 65_000 else 20)
    where = {address: n for n, steps in enumerate(per_part) for _, address in steps}
    for n, part in enumerate(parts):
        for i in re.findall(r"why-(\d{5})-", part):  # every reason sits with its step
            assert where[f"s{int(i):05d}.create"] == n
    for change in changes:
        if change.reasons:
            assert f"why-{change.address[1:6]}-0" in parts[where[change.address]]
    text = "".join(parts)
    assert "… " in text and "more line(s) not shown" in text  # giant steps were bounded
    assert "(continued)" in text
    assert text.count("<details open>") == len(parts)  # the first section of each part
    assert "\r" not in text and "&amp;amp;" not in text  # code is literal, not escaped


def test_sections_follow_levels_with_counts() -> None:
    changes = big_changes()[:60]
    (part,) = render_markdown(plan_file(), changes, summarize(changes))
    summaries = [m.group(2) for line in part.split("\n") if (m := SUMMARY.match(line))]
    assert summaries == [
        "<b>sim</b> — 4 to add, 5 to change, 4 to replace, 3 to destroy, 2 cached",
        "<b>sim › a</b> · subplan at node.a.delegate"
        " — 4 to add, 4 to change, 1 to replace, 3 to destroy, 2 cached",
        "<b>sim › a › b</b> · subplan at node.b.delegate"
        " — 4 to add, 2 to change, 3 to replace, 3 to destroy, 2 cached",
        "<b>sim › c</b> · subplan at node.c.delegate"
        " — 2 to add, 3 to change, 4 to replace, 3 to destroy, 2 cached",
    ]
    assert "~ s00001.create  pve.vm.create\n" in part
    assert "+ s00004.create  pve.vm.create\n" in part
    assert "-/+ s00002.create  pve.vm.create\n" in part
    assert "    why-00002-1 ````  (f.pvp:1)\n" in part
    long_reason = part.split("~ s00005.create  pve.vm.create\n")[1].split("\n")[0]
    assert len(long_reason) == LINE_MAX and long_reason.endswith("z…  (m:1)")  # source kept
    assert "    … 22 more line(s) not shown\n" in part  # 60 reasons, capped


def test_destroy_shows_no_note_and_update_symbol() -> None:
    changes = [
        Change(host="sim", address="a.x", kind="k", action="destroy", note="gone"),
        Change(host="sim", address="b.x", kind="k", action="update", note="pull: fetches"),
    ]
    (part,) = render_markdown(plan_file(), changes, summarize(changes))
    assert "- a.x  k\n~ b.x  k\n    pull: fetches\n```" in part
    assert "gone" not in part


@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    max_chars=st.integers(MIN_MAX_CHARS, 4_000) | st.integers(MIN_MAX_CHARS, 20_000),
    hosts=st.lists(st.text(max_size=30), min_size=4, max_size=4),
)
def test_any_small_diff_renders_within_limits(
    data: st.DataObject, max_chars: int, hosts: list[str]
) -> None:
    pieces = st.text(st.characters(codec="utf-8"), max_size=8) | st.sampled_from(
        ["`", "```", "`" * 12, "<details>", "&amp;", "\n", "\r", "\u2028", "\x1b[31m"]
    )
    nasty = st.lists(pieces, max_size=12).map("".join)
    long = st.tuples(nasty, st.integers(1, 60)).map(lambda pair: (pair[0] + "`") * pair[1])
    reason = st.builds(Reason, text=nasty | long, source=st.none() | nasty)
    items = data.draw(
        st.lists(
            st.tuples(
                st.integers(0, 3),
                st.sampled_from(["create", "update", "replace", "destroy", "unchanged"]),
                st.lists(reason, max_size=6),
                st.none() | nasty,
            ),
            max_size=40,
        )
    )
    changes = [
        Change(
            path=LEVELS[level][0],
            host=hosts[level],
            address=f"s{n:03d}.x",
            kind="kind",
            action=action,
            reasons=tuple(reasons),
            note=note,
        )
        for n, (level, action, reasons, note) in enumerate(items)
    ]
    pf = plan_file(data.draw(nasty), hosts[0], workspace=data.draw(nasty))
    parts = render_markdown(pf, changes, summarize(changes), max_chars=max_chars)
    check(parts, changes, max_chars)
    assert parts == render_markdown(pf, changes, summarize(changes), max_chars=max_chars)


def test_worst_case_inputs_fit_the_smallest_limit() -> None:
    """Every field at its longest and escaping at its widest still fits in MIN_MAX_CHARS."""
    huge = "&" * 5000
    pf = plan_file(huge, huge, workspace=huge, planned_against=huge)
    pf = PlanFile(hash=huge, plan=pf.plan, header=pf.header)
    changes = [
        Change(
            path=(huge, huge),
            host=huge,
            address=huge + str(n),
            kind=huge,
            action="replace",
            note=huge,
            reasons=tuple(Reason(text="`" * 3000, source=huge) for _ in range(100)),
        )
        for n in range(3)
    ]
    summary = Summary(add=10**9, change=10**9, replace=10**9, destroy=10**9, unchanged=10**9)
    parts = render_markdown(pf, changes, summary, max_chars=MIN_MAX_CHARS)
    assert len(parts) == 3
    for part in parts:
        assert len(part) <= MIN_MAX_CHARS
        parse(part)
        assert "more line(s) not shown" in part


def test_below_the_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match=f"at least {MIN_MAX_CHARS}"):
        render_markdown(plan_file(), [], Summary(), max_chars=MIN_MAX_CHARS - 1)


def test_no_changes_is_one_short_part() -> None:
    changes = [Change(host="sim", address="a.x", kind="k", action="unchanged")] * 3
    parts = render_markdown(plan_file(planned_against="feed" * 8), changes, summarize(changes))
    assert parts == [
        "### pveplan plan: n2-tiered on sim\n\n"
        f"plan {HASH}\n\n"
        "**No changes.**\n\n"
        "3 step(s) unchanged (cached), not listed.\n\n"
        f"workspace n2-tiered@sim · planned against {'feed' * 8} · not signed\n"
    ]


def test_signers_are_named_and_many_of_them_stay_bounded() -> None:
    from pveplan.planner._planfile import PlanSignature

    signatures = tuple(PlanSignature(key=f"SHA256:{n:043d}", signature="x") for n in range(50))
    pf = plan_file(signatures=signatures)  # type: ignore[arg-type]
    changes = [Change(host="sim", address=f"s{n}", kind="k", action="create") for n in range(30)]
    parts = render_markdown(pf, changes, summarize(changes), max_chars=MIN_MAX_CHARS)
    for part in parts:
        assert len(part) <= MIN_MAX_CHARS
        assert f"signed by SHA256:{0:043d}, SHA256:{1:043d}, SHA256:{2:043d}, 47 more" in part


def test_a_real_nested_plan_has_one_section_per_level(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "n3.json"
    argv = ["plan", "-M", "n3-deep", "-H", "sim", "--site-config", str(site), "-o", str(out)]
    assert run_cli(argv)[0] == 0
    pf = read_plan_file(out)
    changes = diff_plans(pf.plan, None, pf.header.sources)
    (part,) = render_markdown(pf, changes, summarize(changes))
    summaries = [m.group(2) for line in part.split("\n") if (m := SUMMARY.match(line))]
    assert [s.split(" — ")[0] for s in summaries] == [
        "<b>sim</b>",
        "<b>sim › root-pve</b> · subplan at node.root-pve.delegate",
        "<b>sim › root-pve › leaf-pve</b> · subplan at node.leaf-pve.delegate",
    ]
    assert part.startswith(f"### pveplan plan: n3-deep on sim\n\nplan {pf.hash}\n")
    assert "workspace n3-deep@sim · nothing applied yet" in part
    assert "+ node.edge.create  pve.vm.create\n" in part
    blocks = parse(part)
    assert sum(len(b) for _, b in blocks) == len(changes)  # all new, no reasons
    small = render_markdown(pf, changes, summarize(changes), max_chars=MIN_MAX_CHARS)
    assert len(small) > 1
    check(small, changes, MIN_MAX_CHARS, pf.hash)
    again = diff_plans(pf.plan, pf.plan, pf.header.sources)  # applied: all cached
    (same,) = render_markdown(pf, again, summarize(again))
    assert "**No changes.**" in same and "<details" not in same
    assert f"{len(changes)} step(s) unchanged (cached), not listed." in same
