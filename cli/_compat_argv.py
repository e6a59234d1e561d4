"""iac-driver's newest command form, `manifest ACTION ...`, as pveplan's verbs.

iac-driver moved from top-level verbs to nouns: `run.sh manifest apply -M n2 -H srv1`.
pveplan keeps homestak's verbs (`create`, `destroy`, `test`, `validate`) and reads the
noun form by rewriting the words before parsing: `manifest apply` is `create`, the others
keep their names. The verb the user typed goes along as the hidden `--report-verb`, so a
report says `apply` where the user said `apply`.

`manifest` alone, or with an action it does not have, is a usage error (exit 1), as in
iac-driver; `manifest --help` lists the actions (exit 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

ACTIONS = {"apply": "create", "destroy": "destroy", "test": "test", "validate": "validate"}
"""iac-driver's `manifest` actions and the pveplan verb each one is."""

USAGE = """\
usage: pveplan manifest ACTION [options]   (iac-driver's form of pveplan's verbs)

actions:
  apply     create the manifest's nodes (pveplan create)
  destroy   destroy the manifest's nodes (pveplan destroy)
  test      create, verify and destroy (pveplan test)
  validate  check the manifest and what it names (pveplan validate)

`pveplan ACTION --help` shows an action's options (apply: `pveplan create --help`)."""


class Rewritten(NamedTuple):
    """The words to parse, or, when the form is wrong or asks for help, what to print
    (`text`, on stdout when `code` is 0, else stderr) and the exit code."""

    words: list[str] | None
    code: int = 0
    text: str = ""


def rewrite(words: Sequence[str]) -> Rewritten:
    """`words` with `manifest ACTION` made pveplan's verb (other words unchanged)."""
    words = list(words)
    at = _command_index(words)
    if at is None or words[at] != "manifest":
        return Rewritten(words)
    rest = words[at + 1 :]
    if not rest:
        return Rewritten(None, 1, f"pveplan: error: `manifest` needs an action\n{USAGE}")
    action = rest[0]
    if action in ("-h", "--help"):
        return Rewritten(None, 0, USAGE)
    if action not in ACTIONS:
        return Rewritten(
            None,
            1,
            f"pveplan: error: unknown manifest action {action!r}; the actions: "
            f"{', '.join(ACTIONS)}\n  hint: run `pveplan manifest --help`",
        )
    verb = ACTIONS[action]
    tail = ["--report-verb", action] if verb != "validate" else []
    return Rewritten([*words[:at], verb, *tail, *rest[1:]])


def _command_index(words: list[str]) -> int | None:
    """Where the command word is: the first word not an option (nor `--color`'s value)."""
    skip = False
    for i, word in enumerate(words):
        if skip:
            skip = False
            continue
        if word == "--color":
            skip = True
            continue
        if not word.startswith("-"):
            return i
    return None
