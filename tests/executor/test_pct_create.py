"""A container's root keys over SSH go in a file `pct create --ssh-public-keys FILE` reads,
never on the host's command line (where `ps` and audit logs show every argument); over
HTTPS they stay in the request's body, PVE's API form.

Why: `pvesh create /nodes/N/lxc --ssh-public-keys "ssh-ed25519 ..."` put every key on the
PVE host's command line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import trio

from pveplan.executor._channel import CommandResult
from pveplan.executor.pve import PveDriver, PveError, pct_create_argv, requests

KEYS = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9v root@driver\nssh-rsa AAAAB3Nza x@y"
PARAMS: dict[str, Any] = {
    "ostemplate": "local:vztmpl/debian-13-standard.tar.zst",
    "hostname": "box",
    "cores": 1,
    "unprivileged": True,
    "ssh-public-keys": KEYS,
}


class Host:
    """A channel that records what it was asked; `pct` exits with `status`."""

    name = "host"

    def __init__(self, status: int = 0) -> None:
        self.status = status
        self.files: dict[str, tuple[bytes, int]] = {}
        self.argvs: list[list[str]] = []

    async def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 60.0
    ) -> CommandResult:
        self.argvs.append(list(argv))
        if argv[0] == "rm":
            for path in argv[2:]:
                self.files.pop(path, None)
            return CommandResult(argv=tuple(argv), exit_status=0, stdout=b"", stderr=b"")
        failed = argv[0] == "pct" and self.status != 0
        stderr = b"unable to create CT 100 - CT 100 already exists\n" if failed else b""
        return CommandResult(argv=tuple(argv), exit_status=self.status, stdout=b"", stderr=stderr)

    async def put_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        self.files[path] = (data, mode)

    async def get_file(self, path: str) -> bytes | None:
        return self.files.get(path, (None, 0))[0]


def test_the_argv_names_the_keys_file_and_holds_no_key() -> None:
    argv = pct_create_argv(requests.create_ct("sim", 100, PARAMS), "/tmp/k.pub")
    assert argv[:4] == ["pct", "create", "100", PARAMS["ostemplate"]]
    assert argv[argv.index("--ssh-public-keys") + 1] == "/tmp/k.pub"
    assert "--hostname" in argv and "--unprivileged" in argv
    assert not any("AAAA" in word for word in argv)


def test_over_ssh_the_keys_go_through_a_private_file_removed_after() -> None:
    host = Host()
    seen: dict[str, tuple[bytes, int]] = {}

    async def main() -> None:
        original = host.put_file

        async def put(path: str, data: bytes, mode: int = 0o600) -> None:
            seen[path] = (data, mode)
            await original(path, data, mode)

        host.put_file = put  # type: ignore[method-assign]
        await PveDriver(host, "sim").create_ct(100, PARAMS)  # type: ignore[arg-type]

    trio.run(main)
    ((path, (data, mode)),) = seen.items()
    assert data.decode().strip() == KEYS and mode == 0o600
    assert [a[0] for a in host.argvs] == ["pct", "rm"]
    pct, rm = host.argvs
    assert pct[pct.index("--ssh-public-keys") + 1] == path and path in rm
    assert not any("AAAA" in word for argv in host.argvs for word in argv)
    assert host.files == {}  # removed


def test_a_failed_create_is_a_pve_error_and_still_removes_the_file() -> None:
    host = Host(status=255)
    with pytest.raises(PveError, match="already exists"):
        trio.run(PveDriver(host, "sim").create_ct, 100, PARAMS)  # type: ignore[arg-type]
    assert host.files == {} and host.argvs[-1][0] == "rm"


def test_over_https_the_keys_stay_in_the_requests_body() -> None:
    request = requests.create_ct("sim", 100, PARAMS)
    assert request.params["ssh-public-keys"] == KEYS  # the API form, sent as a form body
