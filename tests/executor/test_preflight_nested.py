"""Nested virtualization in preflight (iac-driver's `validate_nested_virt`): a tiered
manifest's PVE node runs VMs inside a VM, which KVM allows only with `nested` on.
The host is asked over SSH for KVM's module parameter; Intel's first, then AMD's."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from pveplan.executor import ChannelError
from pveplan.executor._channel import CommandResult
from pveplan.executor._preflight import NESTED_PARAMETERS, _nested_virt


class FakeChannel:
    name = "host"

    def __init__(self, files: dict[str, str] | None, fail: bool = False) -> None:
        self.files = files or {}
        self.fail = fail
        self.asked: list[list[str]] = []

    async def run(self, argv: list[str], timeout: float = 60) -> CommandResult:
        self.asked.append(argv)
        if self.fail:
            raise ChannelError("host", "connection refused")
        path = argv[-1]
        if path in self.files:
            return CommandResult(
                argv=tuple(argv), exit_status=0, stdout=self.files[path].encode(), stderr=b""
            )
        return CommandResult(argv=tuple(argv), exit_status=1, stdout=b"", stderr=b"No such file")


class FakeServices:
    def __init__(self, channel: FakeChannel) -> None:
        channel_ = channel

        class Hosts:
            async def channel(self, host: str) -> FakeChannel:
                return channel_

        self.hosts = Hosts()


def _check(channel: FakeChannel) -> Any:
    return trio.run(_nested_virt, FakeServices(channel), "father")


@pytest.mark.parametrize("value", ["Y\n", "1\n"])
@pytest.mark.parametrize("path", NESTED_PARAMETERS)
def test_nested_on_passes(path: str, value: str) -> None:
    check = _check(FakeChannel({path: value}))
    assert check.ok and path in check.detail


def test_nested_off_fails_and_says_how_to_enable_it() -> None:
    check = _check(FakeChannel({NESTED_PARAMETERS[0]: "N\n"}))
    assert not check.ok and "nested=1" in check.detail and "modprobe.d" in check.detail


def test_no_kvm_module_fails() -> None:
    channel = FakeChannel({})
    check = _check(channel)
    assert not check.ok and "KVM" in check.detail
    assert [argv[0] for argv in channel.asked] == ["cat", "cat"]  # no shell, fixed paths


def test_an_unreachable_host_fails_the_check_not_the_run() -> None:
    check = _check(FakeChannel({}, fail=True))
    assert not check.ok and "connection refused" in check.detail
