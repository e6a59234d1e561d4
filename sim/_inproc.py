"""The daemon answering a PVE host's own tools in-process, with no process per command.

pveplan's driver runs `pvesh ...` (and `qm`, `pveum`, `pveversion`) over SSH once per API
call, so a cold apply makes about ten per VM. Run as the session's `/bin/sh -c COMMAND`,
each paid for a shell, a Python interpreter and the simulator's imports: ~0.15 s of CPU,
most of a simulated step. A launcher only calls `_pvecli.main(TOOL, ARGV, ROOT, NODE)`, and
the daemon has that module loaded already (the HTTPS API runs the same routes), so for a
command that is nothing but a host tool and its words the daemon makes that same call in a
worker thread, with the session's working directory and its output going to the channel.

It does so only when the result cannot differ from the spawned command's: the command is
plain words (quotes allowed; no variables, redirections, pipes, globs or other shell
syntax), its first word is a host tool run by root, and the machine's `bin/TOOL` is exactly
the launcher `_setup` writes for this interpreter and this simulator package (so a tree
left by another checkout, or a file a test put there, still runs as a process). Anything
else is spawned as before. `pct` always is (its `exec` runs guest tools, which read the
process environment). What is not the same: a command the client abandons runs to its end
(a thread cannot be killed; real PVE also finishes a task whose CLI was interrupted), and
its processes.jsonl record has no `pid` (there is no process group to kill).
"""

from __future__ import annotations

import ast
import contextvars
import shlex
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pveplan.sim._setup import host_launcher_text
from pveplan.sim._state import SimRoot, read_config

INPROC_TOOLS = frozenset({"pvesh", "qm", "pveum", "pveversion"})
WORKERS = 64
"""Host tools at work at once in-process: enough that a configured latency (a sleep) of
many parallel calls overlaps as their processes did; threads are made only when needed."""
_WORD_CHARS = frozenset("_@%+=:,./-")
_POOL: ThreadPoolExecutor | None = None


@dataclass(frozen=True)
class HostCall:
    """One host tool invocation to run in-process: what its launcher would call."""

    tool: str
    argv: tuple[str, ...]
    root: str
    node: str
    cwd: Path

    def run(self, out: Callable[[str], None], err: Callable[[str], None]) -> int:
        """Run it as the launcher would (in the calling thread); its exit status."""
        from pveplan.sim import _pvecli
        from pveplan.sim._runcmd import reap_runners
        from pveplan.sim._stdio import SINK

        SINK.set((out, err))
        try:
            return _pvecli.main(self.tool, list(self.argv), self.root, self.node, cwd=self.cwd)
        except SystemExit as exc:  # what the process would have exited with
            code = exc.code
            return code if isinstance(code, int) else (0 if code is None else 1)
        except Exception:  # a bug: the process would have printed it and exited 1
            err(traceback.format_exc())
            return 1
        finally:
            reap_runners()  # a `qm start` spawned a runcmd runner: this process is its parent


def plain_words(command: str) -> list[str] | None:
    """The words of `command` if it is plain words for `/bin/sh` (letters, digits, a few
    punctuation marks, single- or double-quoted text without `$`, backquote or backslash),
    else None: `sh -c` would give exactly these words, with nothing else to do."""
    quote = ""
    for char in command:
        if quote:
            if char == quote:
                quote = ""
            elif quote == '"' and char in "$`\\":
                return None
        elif char in "'\"":
            quote = char
        elif not (char in " \t" or char.isalnum() or char in _WORD_CHARS):
            return None
    if quote:
        return None
    words = shlex.split(command)
    return words or None


_LAUNCHERS: dict[Path, tuple[tuple[int, int, int], tuple[str, str] | None]] = {}


def _launcher_target(path: Path) -> tuple[str, str] | None:
    """(ROOT, NODE) of the host launcher at `path` if it is exactly one `_setup` writes
    for this interpreter; None otherwise (missing, edited, another interpreter or checkout)."""
    try:
        info = path.stat()
    except OSError:
        return None
    stamp = (info.st_mtime_ns, info.st_ino, info.st_size)
    cached = _LAUNCHERS.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    target = _parse_launcher(path)
    _LAUNCHERS[path] = (stamp, target)
    return target


def _parse_launcher(path: Path) -> tuple[str, str] | None:
    try:
        text = path.read_text()
        last = text.rstrip("\n").rsplit("\n", 1)[-1]
        call = ast.parse(last).body[0]
    except (OSError, UnicodeDecodeError, SyntaxError, IndexError):
        return None
    try:
        inner = call.value.args[0]  # type: ignore[attr-defined]  # sys.exit(main(...))
        tool, _, root, node = (getattr(arg, "value", None) for arg in inner.args)
    except (AttributeError, IndexError, ValueError):
        return None
    if not all(isinstance(value, str) for value in (tool, root, node)):
        return None
    if text != host_launcher_text(Path(root), node, tool) or tool != path.name:
        return None
    return root, node


def host_call(tree: Path, user: str, home: Path, command: str) -> HostCall | None:
    """What to run in-process for `command` run by `user` on the machine at `tree`, or None
    when it must be spawned as a process."""
    if user != "root":
        return None
    words = plain_words(command)
    if words is None or words[0] not in INPROC_TOOLS:
        return None
    target = _launcher_target(tree / "bin" / words[0])
    if target is None or not read_config(SimRoot(target[0])).get("inproc"):
        return None
    return HostCall(words[0], tuple(words[1:]), target[0], target[1], home)


def pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="host-tool")
    return _POOL


def in_context(fn: Callable[[], int]) -> Callable[[], int]:
    """`fn` to run in a worker thread inside a copy of this context (its own SINK)."""
    return lambda: contextvars.copy_context().run(fn)


def encode(text: str) -> bytes:
    """A tool's text as its process would have written it (UTF-8, `C.UTF-8`)."""
    return text.encode("utf-8", "surrogateescape")
