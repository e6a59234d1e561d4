"""The probe request of the remote executor protocol (protocol 2), without a host: its
frames round-trip in any chunking; the real executor end (`serve`) answers a probe; an
executor of protocol 1 refuses the hello, which the driver end turns into "too old" (never
a traceback); and the planner folds the answers into drift lines under their host and node
states that name the host that did not answer."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from pveplan.executor.channels import ChannelError
from pveplan.executor.remote import _protocol, _serve
from pveplan.executor.remote._client import ProbeUnsupported, RemoteError, probe_remote
from pveplan.executor.remote._protocol import (
    PROTOCOL_VERSION,
    FrameDecoder,
    FrameStream,
    Hello,
    ProbedFrame,
    ProbeFrame,
    encode_frame,
)
from pveplan.planner import (
    Drift,
    LevelProbe,
    NodeStatus,
    Plan,
    Step,
    Summary,
    below,
    drift_reruns,
    level_warning,
    nested_drift,
    node_statuses,
    render_changes,
    with_drift,
)
from pveplan.planner._version import __version__

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
drifts = st.builds(
    Drift,
    address=names,
    node=names,
    type=st.sampled_from(["vm", "pve", "ct"]),
    field=names,
    live=names,
    wanted=names,
    cause=names,
    fix=st.sampled_from(["in_place", "start", "recreate", "report"]),
    path=st.lists(names, max_size=3).map(tuple),
)
statuses = st.builds(
    NodeStatus,
    name=names,
    type=names,
    host=names,
    vmid=st.none() | st.integers(100, 999_999_999),
    live=names,
    state=st.sampled_from(["in_sync", "drift", "missing", "not_applied", "unreachable"]),
    detail=st.lists(names, max_size=2).map(tuple),
)
levels = st.builds(
    LevelProbe,
    path=st.lists(names, max_size=4).map(tuple),
    state=st.sampled_from(["probed", "not_applied", "unreachable", "too_old"]),
    reason=names,
    drift=st.lists(drifts, max_size=3).map(tuple),
    nodes=st.lists(statuses, max_size=3).map(tuple),
)
probe_frames = st.one_of(
    st.builds(ProbeFrame, plan=st.binary(max_size=64), hash=st.text(max_size=32)),
    st.builds(ProbedFrame, levels=st.lists(levels, max_size=4).map(tuple)),
)


@given(st.lists(probe_frames, max_size=4), st.integers(1, 97))
def test_probe_frames_round_trip_in_any_chunking(sent: list, chunk: int) -> None:
    data = b"".join(encode_frame(frame) for frame in sent)
    decoder = FrameDecoder()
    got = []
    for start in range(0, len(data), chunk):
        got.extend(decoder.feed(data[start : start + chunk]))
    assert got == sent and decoder.pending == 0


def test_the_probe_is_protocol_2() -> None:
    assert PROTOCOL_VERSION == 2


def test_a_drift_of_the_plans_own_level_keeps_its_bytes() -> None:
    """`Drift.path` is left off the wire when empty: no saved plan's hash moves."""
    item = Drift(
        address="a", node="db", field="memory", live="2", wanted="1", cause="c", fix="in_place"
    )
    assert b"path" not in msgspec.json.encode(item)


# --- the driver end against an executor end, over an in-memory stream --------------------


class _Stream:
    """One end of a memory stream, with what the driver end asks of an SSH stream."""

    exit_status: int | None = 0
    exit_signal: str | None = None

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def receive_some(self, max_bytes: int) -> bytes:
        return await self._stream.receive_some(max_bytes)

    async def send_all(self, data: bytes) -> None:
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ChannelError("pve1", f"lost: {exc}") from None  # as an SSH stream says

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def stderr_tail(self) -> str:
        return ""


class _Channel:
    def __init__(self, stream: _Stream) -> None:
        self._stream = stream

    async def start(self, argv: list[str]) -> _Stream:
        return self._stream


class _Store:
    store_id = "test-store"

    def resources(self, workspace: str) -> tuple:
        return ()


def _subplan() -> Plan:
    return with_drift(Plan(manifest="m", host="pve1", hash=""), ())


def _probe_against_serve() -> tuple[LevelProbe, ...]:
    """The real `probe_remote` against the real `serve`, joined by a memory stream (what
    `probe_remote` raised, raised again out of the nursery as itself)."""
    outcome: list[Any] = []

    async def main() -> None:
        outcome.append(await _session())

    trio.run(main)
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


async def _session(store: Any = None) -> tuple[LevelProbe, ...]:
    driver_end, executor_end = trio.testing.memory_stream_pair()

    @contextlib.asynccontextmanager
    async def services(plan: Plan, options: Any) -> AsyncIterator[Any]:
        yield SimpleNamespace(store=store or _Store(), workspace="m@pve1")

    async with trio.open_nursery() as nursery:

        async def executor() -> None:
            stream = FrameStream(executor_end, executor_end)
            await _serve.serve(stream, store or _Store(), services, version=__version__)
            with contextlib.suppress(trio.BrokenResourceError):
                await executor_end.aclose()

        nursery.start_soon(executor)
        try:
            return await probe_remote(
                _Channel(_Stream(driver_end)),
                ["run.py"],
                _subplan(),
                host="pve1",
                version=__version__,
            )
        except RemoteError as exc:
            return exc  # type: ignore[return-value]  # out of the nursery as itself


def test_an_executor_answers_a_probe_of_a_level_with_nothing_applied() -> None:
    assert _probe_against_serve() == (LevelProbe(path=(), state="not_applied"),)


def test_an_executor_of_protocol_1_is_reported_too_old(monkeypatch: pytest.MonkeyPatch) -> None:
    """An old executor checks the hello for equality and answers with an error frame: the
    driver says "too old", and nothing raises past it but ProbeUnsupported."""
    monkeypatch.setattr(_protocol, "PROTOCOL_VERSION", 1)  # what an old bundle's check sees
    monkeypatch.setattr(_serve, "PROTOCOL_VERSION", 1)
    with pytest.raises(ProbeUnsupported, match=r"refused this driver's hello.*version mismatch"):
        _probe_against_serve()


def test_an_executor_saying_an_older_protocol_is_too_old() -> None:
    async def main() -> None:
        driver_end, executor_end = trio.testing.memory_stream_pair()
        old = Hello(protocol=1, pveplan=__version__, role="executor")
        await executor_end.send_all(encode_frame(old))
        await probe_remote(
            _Channel(_Stream(driver_end)), ["run.py"], _subplan(), host="pve1", version=__version__
        )

    with pytest.raises(ProbeUnsupported, match="speaks protocol 1"):
        trio.run(main)


def test_an_executor_that_leaves_is_a_remote_error_not_too_old() -> None:
    async def main() -> None:
        driver_end, executor_end = trio.testing.memory_stream_pair()
        await executor_end.aclose()
        await probe_remote(
            _Channel(_Stream(driver_end)), ["run.py"], _subplan(), host="pve1", version=__version__
        )

    with pytest.raises(RemoteError) as caught:
        trio.run(main)
    assert not isinstance(caught.value, ProbeUnsupported)


# --- what the planner makes of the answers -----------------------------------------------


def _drift(node: str, field: str = "memory", **extra: Any) -> Drift:
    return Drift(
        address=f"node.{node}.create",
        node=node,
        field=field,
        live="4096",
        wanted="1024",
        cause="changed outside pveplan",
        fix="in_place",
        **extra,
    )


def test_nested_drift_is_placed_on_its_level_and_shown_under_its_host() -> None:
    answer = (
        LevelProbe(path=(), state="probed", drift=(_drift("db"),)),
        LevelProbe(path=("pve2",), state="probed", drift=(_drift("leaf"),)),
    )
    found = nested_drift(below("pve1", answer))
    assert [(d.node, d.path) for d in found] == [("db", ("pve1",)), ("leaf", ("pve1", "pve2"))]
    text = render_changes([], Summary(drift=3), _Plain(), drift=(_drift("top"), *found))
    assert text.splitlines()[1:6] == [
        "  ~ vm top  memory: 4096 (live) -> 1024 (manifest)  (changed outside pveplan)",
        "  pve1 ›",
        "    ~ vm db  memory: 4096 (live) -> 1024 (manifest)  (changed outside pveplan)",
        "    pve2 ›",
        "      ~ vm leaf  memory: 4096 (live) -> 1024 (manifest)  (changed outside pveplan)",
    ]
    plan = with_drift(Plan(manifest="m", host="sim", hash=""), (_drift("top"), *found))
    assert drift_reruns(plan) == {"node.top.create"}, "a nested level converges its own"


class _Plain:
    def __getattr__(self, name: str) -> Any:
        return lambda text: text


def test_a_level_not_probed_is_a_warning_that_says_what_to_do() -> None:
    lost = LevelProbe(path=("pve1",), state="unreachable", reason="connection refused")
    assert "nested host pve1 did not answer (connection refused)" in (level_warning(lost) or "")
    old = LevelProbe(path=("pve1", "pve2"), state="too_old", reason="speaks protocol 1")
    warning = level_warning(old) or ""
    assert warning.startswith("not probed (executor too old on pve1 › pve2: upgrade with")
    assert level_warning(LevelProbe(path=("pve1",), state="probed")) is None


def test_status_of_nested_nodes_from_their_levels() -> None:
    from tests.planner.test_drift import as_applied, tiered

    plan = tiered()  # root-pve on sim, edge on root-pve
    resources, vms = as_applied(plan)
    from pveplan.planner import LiveHost

    live = LiveHost(host="sim", vms=tuple(vms))
    edge = NodeStatus(name="edge", type="vm", host="root-pve", live="running", state="in_sync")
    probed = LevelProbe(path=("root-pve",), state="probed", nodes=(edge,))
    assert node_statuses(plan, live, resources, (), (probed,))[-1] == edge
    lost = LevelProbe(path=("root-pve",), state="unreachable", reason="connection refused")
    found = node_statuses(plan, live, resources, (), (lost,))[-1]
    assert found.state == "unreachable"
    assert found.detail == ("nested host root-pve did not answer: connection refused",)
    old = LevelProbe(path=("root-pve",), state="too_old", reason="speaks protocol 1")
    found = node_statuses(plan, live, resources, (), (old,))[-1]
    assert found.state == "not_probed" and "executor too old on root-pve" in found.detail[0]
    fresh = LevelProbe(path=("root-pve",), state="not_applied")
    assert node_statuses(plan, live, resources, (), (fresh,))[-1].state == "not_applied"


# --- probing the nested hosts of one level: concurrent, bounded, never raising ------------


class _Results:
    """What a level's store records: each nested host created, its address, its bundle."""

    def __init__(self, hosts: list[str]) -> None:
        self.hosts = hosts

    def resources(self, workspace: str) -> tuple:
        return ()

    def applied(self, workspace: str) -> Any:
        steps = {f"node.{h}.{s}": "h" for h in self.hosts for s in ("wait_ip", "bootstrap")}
        return SimpleNamespace(steps=steps)

    def results_for(self, addresses: Any) -> dict:
        out = {}
        for address in addresses:
            outputs = {"ip": "10.0.0.9"} if address.endswith("wait_ip") else {"launcher": "l"}
            out[address] = SimpleNamespace(
                status="ok", address=address, step_hash="h", run_id=1, outputs=outputs
            )
        return out


def test_sibling_hosts_are_probed_concurrently_within_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pveplan.executor.remote import _probe

    hosts = [f"pve{i}" for i in range(10)]
    step = {"kind": "subplan.delegate", "kind_version": 1, "host": "sim", "hash": "x"}
    plan = Plan(
        manifest="m",
        host="sim",
        steps=tuple(Step(address=f"node.{h}.delegate", **step) for h in hosts),
        subplans={f"node.{h}.delegate": Plan(manifest="m", host=h, hash=h) for h in hosts},
        hash="p",
    )
    resources = {f"node.{h}.create": {"vm_id": 1, "host_key": "k"} for h in hosts}
    running, most = 0, 0

    async def probe_remote(channel: Any, argv: Any, subplan: Plan, **_: Any) -> tuple:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await trio.sleep(0.05)
        running -= 1
        if subplan.host == "pve3":
            raise ChannelError("pve3", "connection refused")
        if subplan.host == "pve4":
            raise ProbeUnsupported("the executor on pve4 speaks protocol 1")
        return (LevelProbe(path=(), state="probed"),)

    async def channel(target: Any) -> Any:
        return SimpleNamespace(get_file=_none)

    async def _none(path: str) -> None:
        return None

    services = SimpleNamespace(
        store=_Results(hosts),
        workspace="m@sim",
        hosts=SimpleNamespace(vm_target=lambda *a: a),
        pool=SimpleNamespace(channel=channel),
        bundle=lambda: SimpleNamespace(hash="b" * 64),
    )
    monkeypatch.setattr(_probe, "probe_remote", probe_remote)
    found = trio.run(_probe.probe_nested, services, plan, resources)
    assert most == _probe.PROBE_PARALLEL, "siblings at once, no more than the bound"
    assert [lv.path for lv in found] == [(h,) for h in hosts], "in the plan's order"
    states = {lv.path[0]: lv.state for lv in found}
    assert states.pop("pve3") == "unreachable" and states.pop("pve4") == "too_old"
    assert set(states.values()) == {"probed"}
