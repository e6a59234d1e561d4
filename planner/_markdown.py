"""A plan diff as GitHub-flavoured Markdown, for pull-request comments.

The content is `render_changes`'s, laid out for a review page: a heading, the summary,
then one collapsible `<details>` section per plan level (host or subplan) with its
changed steps in a ```diff block, so `+`/`-` lines are coloured. Cached steps are
counted, never listed.

A comment has a size limit (GitHub's is 65,536 characters), so the output is a list of
parts, each a self-contained document within `max_chars`: its own heading, part line and
summary, every fence and `<details>` closed in the part that opened it, and no step split
between parts. A level that does not fit continues in the next part as a new section
marked "(continued)". The first section of each part is open, since each part is read
as its own comment; later ones stay folded so the summaries read as a table of contents.

Manifest text reaches the reasons, so nothing in it may break the layout: control
characters are replaced, prose is HTML-escaped, each fence is longer than any backtick
run inside its block (CommonMark's rule), and lines and steps are cut to bounds that
make any single step fit in a part of `MIN_MAX_CHARS`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ._diff import Change, Summary
from ._nested_drift import placed_line
from ._planfile import PlanFile
from ._render import SYMBOLS, summary_line

MIN_MAX_CHARS = 2_000
LINE_MAX = 500  # a diff line (head, note, reason), cut with "…"
PROSE_MAX = 200  # a heading, workspace or section label, after escaping
MAX_STEP_LINES = 40  # head, note and reasons of one step
MAX_TICKS = 10  # longer backtick runs are shortened, so fences (and overhead) stay small
_MARK_ROOM = 60  # room kept for the "… N more line(s)" marker
DRIFT_SHOWN = 3  # drift lines in each part's preamble (bounded: a part's size must hold)

_BREAKS = re.compile(r"\r\n|[\t\n\r\v\f\x85\u2028\u2029]")
_CONTROLS = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]"
)
_TICKS = re.compile(r"`+")
_LONG_TICKS = re.compile(f"`{{{MAX_TICKS + 1},}}")


def render_markdown(
    plan_file: PlanFile,
    changes: Sequence[Change],
    summary: Summary,
    *,
    max_chars: int = 65_000,
) -> list[str]:
    """The plan diff as one or more self-contained Markdown documents, each <= max_chars."""
    if max_chars < MIN_MAX_CHARS:
        raise ValueError(
            f"max_chars must be at least {MIN_MAX_CHARS} (got {max_chars}): "
            "smaller parts could not hold a heading, a summary and one step"
        )
    levels = _levels(plan_file, changes)
    shown = sum(len(level.steps) for level in levels)
    widest = "9" * len(str(max(1, shown)))  # a part holds >= 1 step, so N <= shown
    room = max_chars - _size(_preamble(plan_file, summary, widest, widest))
    # Greedy, in plan order: a step joins the open section if the part still fits, else the
    # section closes and the level continues in a new section (in practice a new part).
    parts: list[list[_Section]] = [[]]
    used = 0
    for level in levels:
        step_room = room - _Section(level, continued=True, open=True).cost(0, MAX_TICKS)
        section: _Section | None = None
        for change in level.steps:
            lines = _fit(_step_lines(change), step_room)
            chars, run = _size(lines), _longest_run(lines)
            if section is not None and used + section.cost(chars, run) <= room:
                section.add(lines, chars, run)
                continue
            continued = section is not None
            if section is not None:
                used += section.cost()
            if parts[-1] and used + _Section(level, continued, True).cost(chars, run) > room:
                parts.append([])
                used = 0
            section = _Section(level, continued, open=not parts[-1])
            parts[-1].append(section)
            section.add(lines, chars, run)
        if section is not None:
            used += section.cost()
    total = len(parts)
    out = []
    for number, sections in enumerate(parts, 1):
        lines = _preamble(plan_file, summary, str(number), str(total))
        for section in sections:
            lines.extend(section.render())
        out.append("\n".join(lines).rstrip("\n") + "\n")
    return out


@dataclass
class _Level:
    label: str  # already escaped: "<b>sim › root-pve</b> · subplan at node.root-pve.delegate"
    counts: str  # "3 to add, 1 to change, 2 cached"
    steps: list[Change]


@dataclass
class _Section:
    level: _Level
    continued: bool
    open: bool
    lines: list[str] = field(default_factory=list)
    chars: int = 0
    run: int = 0

    def add(self, lines: list[str], chars: int, run: int) -> None:
        self.lines.extend(lines)
        self.chars += chars
        self.run = max(self.run, run)

    def cost(self, chars: int = 0, run: int = 0) -> int:
        """Characters the rendered section takes (with one more step of `chars`, `run`)."""
        frame = self._frame(max(3, self.run + 1, run + 1))
        return _size(frame) + self.chars + chars

    def render(self) -> list[str]:
        frame = self._frame(max(3, self.run + 1))
        return [*frame[:3], *self.lines, *frame[3:]]

    def _frame(self, ticks: int) -> list[str]:
        more = " (continued)" if self.continued else ""
        summary = f"{self.level.label}{more} — {self.level.counts}"
        opening = "<details open>" if self.open else "<details>"
        fence = "`" * ticks
        return [
            f"{opening}<summary>{summary}</summary>",
            "",
            fence + "diff",
            fence,
            "",
            "</details>",
            "",
        ]


def _levels(plan_file: PlanFile, changes: Sequence[Change]) -> list[_Level]:
    """Changes grouped by plan level, levels in plan order, hosts named along the path."""
    hosts: dict[tuple[str, ...], str] = {(): plan_file.plan.host}
    by_path: dict[tuple[str, ...], list[Change]] = {}
    for change in changes:
        hosts.setdefault(change.path, change.host)
        by_path.setdefault(change.path, []).append(change)
    out = []
    for path, level in by_path.items():
        steps = [c for c in level if c.action != "unchanged"]
        if not steps:
            continue
        chain = " › ".join(
            hosts[path[:i]] if path[:i] in hosts else _delegated_host(path[i - 1])
            for i in range(len(path) + 1)
        )
        label = f"<b>{_prose(chain)}</b>"
        if path:
            label += f" · subplan at {_prose(path[-1], 100)}"
        counted = [
            (sum(c.action == action for c in level), word)
            for action, word in (
                ("create", "to add"),
                ("update", "to change"),
                ("replace", "to replace"),
                ("destroy", "to destroy"),
                ("unchanged", "cached"),
            )
        ]
        counts = ", ".join(f"{n} {word}" for n, word in counted if n)
        out.append(_Level(label, counts, steps))
    return out


def _delegated_host(address: str) -> str:
    """`node.leaf-pve.delegate` -> `leaf-pve`, for a level no change names the host of."""
    parts = address.split(".")
    return parts[1] if len(parts) == 3 and parts[0] == "node" else address


def _preamble(plan_file: PlanFile, summary: Summary, number: str, total: str) -> list[str]:
    plan, header = plan_file.plan, plan_file.header
    digest = _prose(plan_file.hash, 80)
    against = header.planned_against
    applied = f"planned against {_prose(against, 80)}" if against else "nothing applied yet"
    lines = [
        _prose(f"### pveplan plan: {plan.manifest} on {plan.host}"),
        "",
        f"part {number}/{total} of plan {digest}" if total != "1" else f"plan {digest}",
        "",
        f"**{summary_line(summary)}**",
        "",
    ]
    if summary.unchanged:
        lines += [f"{summary.unchanged} step(s) unchanged (cached), not listed.", ""]
    if plan.drift:  # what the live probe found, in every part (it is short, and bounded)
        shown = [f"- {_prose(placed_line(d), 120)}" for d in plan.drift[:DRIFT_SHOWN]]
        more = len(plan.drift) - DRIFT_SHOWN
        shown += [f"- and {more} more (`pveplan plan --json` lists them all)"] if more > 0 else []
        lines += ["Drift (the live hosts moved since the last apply):", "", *shown, ""]
    signers = [_prose(s.key, 60) for s in header.signatures[:3]]
    if len(header.signatures) > 3:
        signers.append(f"{len(header.signatures) - 3} more")
    signed = f" · signed by {', '.join(signers)}" if signers else " · not signed"
    lines += [
        f"workspace {_prose(header.workspace, 80)} · {applied}{signed}",
        "",
    ]
    return lines


def _step_lines(change: Change) -> list[str]:
    """The head line (symbol first, so GitHub colours it), the note, then each reason."""
    lines = [_code(f"{SYMBOLS[change.action]} {change.address}  {change.kind}")]
    if change.note and change.action != "destroy":
        lines.append(_code("    " + change.note))
    for reason in change.reasons:  # a long text is cut before its source, which stays
        where = _code(f"  ({reason.source})") if reason.source else ""
        text = _cut(_code(reason.text), max(LINE_MAX // 2, LINE_MAX - 4 - len(where)))
        lines.append(_cut(f"    {text}{where}", LINE_MAX))
    return lines


def _fit(lines: list[str], room: int) -> list[str]:
    """A step's lines within `room` characters and `MAX_STEP_LINES`, the rest counted."""
    if len(lines) <= MAX_STEP_LINES and _size(lines) <= room:
        return lines
    kept, used = lines[:1], _size(lines[:1]) + _MARK_ROOM
    for line in lines[1 : MAX_STEP_LINES - 1]:
        if used + len(line) + 1 > room:
            break
        kept.append(line)
        used += len(line) + 1
    return [*kept, f"    … {len(lines) - len(kept)} more line(s) not shown"]


def _code(text: str) -> str:
    """One line for a diff block: no line breaks or control characters, bounded."""
    if len(text) > 2 * LINE_MAX:  # cut early: less work on giant texts
        text = text[: 2 * LINE_MAX] + "…"
    text = _CONTROLS.sub("?", _BREAKS.sub(" ", text))
    return _cut(_LONG_TICKS.sub("`" * MAX_TICKS, text), LINE_MAX)


def _prose(text: str, limit: int = PROSE_MAX) -> str:
    """Manifest-derived text outside code: one line, HTML-escaped, cut between entities."""
    text = html.escape(_CONTROLS.sub("?", _BREAKS.sub(" ", text)), quote=False)
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    amp = head.rfind("&", max(0, len(head) - 5))
    if amp != -1 and ";" not in head[amp:]:
        head = head[:amp]
    return head + "…"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _longest_run(lines: list[str]) -> int:
    return max((len(m.group()) for line in lines for m in _TICKS.finditer(line)), default=0)


def _size(lines: list[str]) -> int:
    return sum(len(line) + 1 for line in lines)
