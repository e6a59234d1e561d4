"""What every command channel shares: the `Channel` protocol, `CommandResult`, `ChannelError`.

Kept apart from the two implementations (`channels.LocalChannel`, `_sshchannel.SshChannel`)
so each can import it without importing the other; `channels` re-exports all of it, and
nothing outside the executor should import this module directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import msgspec

from ._errors import ExecutorError

CLOSE_GRACE = 2.0
"""Seconds a shielded cleanup (closing a channel or a connection) may take before we give up."""

ChannelErrorKind = Literal[
    "timeout",  # the command did not finish within its timeout
    "lost",  # the connection dropped while a command or file transfer was under way
    "host-key",  # the machine presented another host key than the pinned one: never retry
    "refused",  # nothing listens on the address
    "unreachable",  # no answer (connect timeout) or another network error
    "auth",  # the machine did not accept our key for that user
    "start",  # the command could not be started (local: no such program; ssh: no session)
    "file",  # put_file/get_file failed on the far side (permission, no such directory)
    "other",
]


class ChannelError(ExecutorError):
    """A command or file could not be carried to or from a machine.

    `str(error)` is one message for the user naming the machine and the cause (by default
    "HOST: CAUSE"); `host` is the machine's name, `cause` the short reason ("connection
    refused"), and `kind` the category for callers that react to the kind of failure
    (`wait_for_ssh` retries everything but "host-key").
    """

    def __init__(
        self,
        host: str,
        cause: str,
        *,
        message: str | None = None,
        kind: ChannelErrorKind = "other",
    ) -> None:
        self.host = host
        self.cause = cause
        self.kind: ChannelErrorKind = kind
        self.message = message if message is not None else f"{host}: {cause}"
        super().__init__(self.message)


class CommandResult(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a finished command returned. `exit_status` < 0 means killed by that signal."""

    argv: tuple[str, ...]
    exit_status: int
    stdout: bytes
    stderr: bytes


class Channel(Protocol):
    """Where a driver's commands run. Implementations must not interpret argv through a shell
    of their own choosing beyond what is documented (SSH: the remote login shell)."""

    name: str

    async def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 60.0
    ) -> CommandResult:
        """Run `argv`, feed it `input` then EOF; a timeout kills it and raises ChannelError."""
        ...

    async def put_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        """Write `path` atomically (tmp + rename): readers see the old file or the new one."""
        ...

    async def get_file(self, path: str) -> bytes | None:
        """The contents of `path`, or None when it does not exist."""
        ...


def checked_argv(argv: Sequence[str]) -> tuple[str, ...]:
    if isinstance(argv, str) or not argv:
        raise ValueError(f"argv must be a non-empty sequence of strings, not {argv!r}")
    return tuple(argv)
