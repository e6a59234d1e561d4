"""The failures of simulated API calls, and how the CLI tools print them.

A handler raises `ApiError` (synchronous: pvesh exits 255), a task worker `TaskError`
(the task ends with that exit status; the call itself succeeds), the router `NoHandler`
(pvesh exits 1). Kept apart from the router so the parameter checks can raise them too.

`SimError` is the root of every simulator exception, so a caller (the CLI) catches "the
simulator failed" in one clause; raised itself, it says the simulator could not be started
or stopped.
"""

from __future__ import annotations


class SimError(Exception):
    """The simulator failed; raised itself, it could not be started or stopped (the
    message says why, with its log)."""


class ApiError(SimError):
    """A synchronous failure: what pveproxy would answer with a non-200 status."""

    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def param_error(errors: dict[str, str]) -> ApiError:
    """PVE's `raise_param_exc`: 400 with per-parameter messages."""
    return ApiError(400, "Parameter verification failed.", errors)


def fail(message: str) -> ApiError:
    """A plain `die` in an API handler: HTTP 500 with the bare message."""
    return ApiError(500, message)


class TaskError(SimError):
    """A failure inside a worker: the call still succeeds, the task's exitstatus has it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NoHandler(SimError):
    """No API method for this (command, path): pvesh's `No 'get' handler defined`."""

    def __init__(self, cmd: str, path: str) -> None:
        super().__init__(f"No '{cmd}' handler defined for '{path}'")
        self.message = str(self)


def render_error(err: ApiError) -> str:
    """An API error as PVE's CLI prints it on stderr."""
    text = err.message if err.message.endswith("\n") else err.message + "\n"
    if 400 <= err.status < 500:
        text = f"{err.status} {text}"
    lines = "".join(f"{key}: {msg}\n" for key, msg in sorted((err.errors or {}).items()))
    return text + lines


def conf_missing(node: str, vmid: int) -> str:
    return f"Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"
