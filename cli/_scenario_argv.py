"""iac-driver's scenario forms, rewritten to `pveplan scenario NAME ...` before parsing.

iac-driver takes `--scenario NAME` (or `-S NAME`), `scenario run NAME`, the older
`scenario NAME`, and `--list-scenarios`; all of them mean the one `scenario` command here
(`_parser_scenario`). Kept apart from other argv rewrites (the `manifest X` form): each
looks only at its own words.
"""

from __future__ import annotations

from collections.abc import Sequence

SCENARIO_FLAGS = ("--scenario", "-S")
LIST_FLAG = "--list-scenarios"


def scenario_argv(words: Sequence[str]) -> list[str]:
    """`words` with any scenario form turned into `scenario [NAME|--list] REST...`;
    anything else unchanged."""
    out = list(words)
    for index, word in enumerate(out):
        name: str | None = None
        if word in SCENARIO_FLAGS and index + 1 < len(out):
            name, rest = out[index + 1], out[:index] + out[index + 2 :]
        elif word.startswith("--scenario="):
            name, rest = word.partition("=")[2], out[:index] + out[index + 1 :]
        elif word == LIST_FLAG:
            name, rest = "--list", out[:index] + out[index + 1 :]
        else:
            continue
        head, tail = _split_globals(rest)
        return [*head, "scenario", name, *tail]
    head, tail = _split_globals(out)
    if tail[:2] == ["scenario", "run"]:
        return [*head, "scenario", *tail[2:]]
    return out


def _split_globals(words: list[str]) -> tuple[list[str], list[str]]:
    """The options before any command (`--color X`), and the rest."""
    head: list[str] = []
    index = 0
    while index < len(words) and words[index].startswith("--color"):
        take = 1 if "=" in words[index] else 2
        head += words[index : index + take]
        index += take
    return head, words[index:]
