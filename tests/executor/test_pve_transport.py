"""The pvesh transport maps requests onto `pvesh` argv and PVE's CLI answers back; the driver
follows tasks through whatever transport it has.

Why: the mapping is where pve-api.md's CLI pitfalls live (the task log before the UPID,
exit 0 for a failed task, errors on stderr with usage text after them, `nextid` as a
string). A channel and a transport stand-in replay PVE's answers, so no host is needed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import pytest
import trio
import trio.testing

from pveplan.executor.channels import ChannelError, CommandResult
from pveplan.executor.pve import (
    PveDriver,
    PveError,
    PveRequest,
    PveshTransport,
    pvesh_argv,
)
from pveplan.executor.pve import requests as build
from tests.contract.pve_contract import check_call

from .test_pve_requests import ALL, NODE, UPID

T = TypeVar("T")


def run(body: Callable[[], Awaitable[T]]) -> T:
    """`body` under trio with a clock that skips every sleep (task polling backs off)."""

    async def main() -> T:
        with trio.fail_after(60):
            return await body()

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


class FakeChannel:
    """Answers each command with the next canned (exit, stdout, stderr), recording argv."""

    name = "pve"

    def __init__(self, *answers: tuple[int, str, str] | ChannelError) -> None:
        self.answers = list(answers)
        self.argvs: list[list[str]] = []
        self.timeouts: list[float] = []

    async def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 60.0
    ) -> CommandResult:
        self.argvs.append(list(argv))
        self.timeouts.append(timeout)
        answer = self.answers.pop(0)
        if isinstance(answer, ChannelError):
            raise answer
        status, out, err = answer
        return CommandResult(
            argv=tuple(argv), exit_status=status, stdout=out.encode(), stderr=err.encode()
        )

    async def put_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        raise AssertionError("not used")

    async def get_file(self, path: str) -> bytes | None:
        raise AssertionError("not used")


# --- argv mapping --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "argv"),
    [
        (
            build.vm_config(NODE, 100),
            "pvesh get /nodes/pve/qemu/100/config --output-format json",
        ),
        (
            build.create_vm(NODE, 100, {"name": "web1", "agent": "enabled=1", "cores": 2}),
            "pvesh create /nodes/pve/qemu --agent enabled=1 --cores 2 --name web1 --vmid 100"
            " --output-format json",
        ),
        (
            build.set_vm_config(NODE, 100, {"memory": 2048, "onboot": False}),
            "pvesh set /nodes/pve/qemu/100/config --memory 2048 --onboot 0 --output-format json",
        ),
        (
            build.destroy_vm(NODE, 100, skiplock=True),
            "pvesh delete /nodes/pve/qemu/100 --destroy-unreferenced-disks 1 --purge 1"
            " --skiplock 1 --output-format json",
        ),
        (
            build.task_status(NODE, UPID),
            f"pvesh get /nodes/pve/tasks/{UPID}/status --output-format json",
        ),
        (
            build.create_token("root@pam", "pveplan", privsep=False),
            "pvesh create /access/users/root@pam/token/pveplan --privsep 0 --output-format json",
        ),
    ],
)
def test_each_method_maps_onto_its_pvesh_verb(request_: PveRequest, argv: str) -> None:
    assert pvesh_argv(request_) == argv.split(" ")


@pytest.mark.parametrize("request_", ALL)
def test_every_request_as_pvesh_passes_pves_cli_checks(request_: PveRequest) -> None:
    assert check_call(pvesh_argv(request_)) == []


# --- answers -------------------------------------------------------------------------------


def test_task_log_before_the_upid_is_skipped() -> None:
    log = "scsi0: successfully created disk 'local-lvm:vm-100-disk-0,size=32G'\n"
    channel = FakeChannel((0, f'{log}"{UPID}"\n', ""))
    data = run(lambda: PveshTransport(channel).call(build.vm_power(NODE, 100, "start"), timeout=5))
    assert data == UPID
    assert channel.timeouts == [5]


def test_a_refusal_is_pves_message_without_the_usage_text() -> None:
    stderr = "400 Parameter verification failed.\nvmid: invalid format\n\nUSAGE: pvesh create ...\n"
    channel = FakeChannel((255, "", stderr))
    with pytest.raises(PveError) as caught:
        run(lambda: PveshTransport(channel).call(build.create_vm(NODE, 100, {}), timeout=5))
    assert str(caught.value) == (
        "create /nodes/pve/qemu: 400 Parameter verification failed. vmid: invalid format"
    )
    assert caught.value.status == ""


def test_a_channel_failure_is_a_pve_error_naming_the_host() -> None:
    channel = FakeChannel(ChannelError("pve", "connection refused"))
    with pytest.raises(PveError, match="pve: connection refused"):
        run(lambda: PveshTransport(channel).call(build.version(), timeout=5))


def test_set_and_delete_may_print_no_json() -> None:
    channel = FakeChannel((0, "update VM 100: -cores 2\n", ""))
    request = build.set_vm_config(NODE, 100, {"cores": 2})
    assert run(lambda: PveshTransport(channel).call(request, timeout=5)) is None
    channel = FakeChannel((0, "no json here\n", ""))
    with pytest.raises(PveError, match="unexpected output"):
        run(lambda: PveshTransport(channel).call(build.version(), timeout=5))


def test_nextid_is_a_json_string() -> None:
    channel = FakeChannel((0, '"100"\n', ""))
    assert run(lambda: PveDriver(channel, NODE).next_id()) == 100


def test_claims_skip_ids_already_claimed() -> None:
    channel = FakeChannel((0, '"100"\n', ""), (0, '"100"\n', ""), (0, '"101"\n', ""))

    async def body() -> list[int]:
        driver = PveDriver(channel, NODE)
        return [await driver.claim_id(), await driver.claim_id()]

    assert run(body) == [100, 101]
    assert channel.argvs[-1][:5] == ["pvesh", "get", "/cluster/nextid", "--vmid", "101"]


# --- task following (any transport) -------------------------------------------------------


class FakeTransport:
    """Hands out the UPID for a task, then the task statuses in turn."""

    def __init__(self, *statuses: dict[str, Any]) -> None:
        self.statuses = list(statuses)
        self.calls: list[PveRequest] = []

    async def call(self, request: PveRequest, *, timeout: float) -> Any:
        self.calls.append(request)
        if request.returns_task:
            return UPID
        return self.statuses.pop(0)


RUNNING = {"status": "running", "type": "qmstart"}


@pytest.mark.parametrize("exit_status", ["OK", "WARNINGS: 2"])
def test_a_task_is_followed_until_it_ends_well(exit_status: str) -> None:
    transport = FakeTransport(RUNNING, RUNNING, {"status": "stopped", "exitstatus": exit_status})
    driver = PveDriver(FakeChannel(), NODE, transport=transport)
    assert run(lambda: driver.run(build.vm_power(NODE, 100, "start"))) == UPID
    assert [str(c) for c in transport.calls[1:]] == [f"GET /nodes/pve/tasks/{UPID}/status"] * 3


def test_a_failed_task_is_an_error_with_its_exit_status() -> None:
    failed = {"status": "stopped", "type": "qmstart", "exitstatus": "VM 100 already running"}
    driver = PveDriver(FakeChannel(), NODE, transport=FakeTransport(failed))
    with pytest.raises(PveError) as caught:
        run(lambda: driver.power(100, "start"))
    assert str(caught.value) == "task qmstart failed: VM 100 already running"
    assert caught.value.status == "VM 100 already running"


def test_a_task_that_never_ends_times_out() -> None:
    driver = PveDriver(FakeChannel(), NODE, transport=FakeTransport(*[RUNNING] * 10_000))
    with pytest.raises(trio.TooSlowError):
        run(lambda: driver.run(build.destroy_vm(NODE, 100), timeout=30))


def test_a_call_that_is_not_a_task_is_not_followed() -> None:
    transport = FakeTransport({"version": "9.1.9"})
    driver = PveDriver(FakeChannel(), NODE, transport=transport)
    assert run(driver.version) == {"version": "9.1.9"}
    assert len(transport.calls) == 1
