"""The remote executor protocol: the frame codec, and a real `pveplan executor --stdio`
process refusing what it must refuse (version mismatch, tampered subplan, garbage)."""

from __future__ import annotations

import contextlib
import os
import struct
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pveplan.executor._model import Event
from pveplan.executor.remote._protocol import (
    MAX_FRAME,
    PROTOCOL_VERSION,
    ErrorFrame,
    EventFrame,
    FrameDecoder,
    Hello,
    PlanFrame,
    ProtocolError,
    ResultFrame,
    check_hello,
    encode_frame,
)
from pveplan.planner import canonical
from pveplan.planner._version import __version__

events = st.builds(
    Event,
    address=st.text(max_size=30),
    kind=st.sampled_from(["started", "finished", "cached", "failed", "skipped", "log"]),
    host=st.text(max_size=10),
    at=st.floats(allow_nan=False, allow_infinity=False),
    message=st.text(max_size=50),
    path=st.lists(st.text(max_size=8), max_size=3).map(tuple),
)
frames = st.one_of(
    st.builds(
        Hello,
        protocol=st.integers(0, 5),
        pveplan=st.text(max_size=8),
        role=st.sampled_from(["driver", "executor"]),
        store_id=st.text(max_size=8),
    ),
    st.builds(EventFrame, event=events),
    st.builds(ErrorFrame, message=st.text(max_size=40)),
    st.builds(
        ResultFrame,
        status=st.sampled_from(["ok", "failed", "interrupted"]),
        run_id=st.integers(0, 10**6),
        outputs=st.dictionaries(
            st.text(max_size=10),
            st.dictionaries(
                st.text(max_size=5),
                st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(), st.none()),
            ),
            max_size=3,
        ),
    ),
)


@given(st.lists(frames, max_size=6), st.integers(1, 64))
def test_frames_round_trip_in_any_chunking(sent: list, chunk: int) -> None:
    data = b"".join(encode_frame(f) for f in sent)
    decoder = FrameDecoder()
    got = []
    for start in range(0, len(data), chunk):
        got.extend(decoder.feed(data[start : start + chunk]))
    assert got == sent
    assert decoder.pending == 0


@given(st.binary(max_size=200))
def test_garbage_is_a_protocol_error_or_incomplete_never_a_crash(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        FrameDecoder().feed(data)


def test_oversized_length_is_refused_before_reading_it() -> None:
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        FrameDecoder().feed(struct.pack(">I", MAX_FRAME + 1))


def test_hello_checks_role_protocol_and_version() -> None:
    good = Hello(protocol=PROTOCOL_VERSION, pveplan="1.0", role="executor")
    assert check_hello(good, "executor", "1.0") is good
    with pytest.raises(ProtocolError, match="protocol version mismatch"):
        check_hello(Hello(protocol=99, pveplan="1.0", role="executor"), "executor", "1.0")
    with pytest.raises(ProtocolError, match="pveplan version mismatch"):
        check_hello(good, "executor", "2.0")
    with pytest.raises(ProtocolError, match="driver's hello"):
        check_hello(good, "driver", "1.0")
    with pytest.raises(ProtocolError, match="the reason"):
        check_hello(ErrorFrame(message="the reason"), "executor", "1.0")


# --- a real executor process ------------------------------------------------------------------


def _session(home: Path, *sent: bytes) -> tuple[int, list, str]:
    """Run `pveplan executor --stdio` with `sent` on stdin; (status, frames out, stderr)."""
    process = subprocess.run(
        [sys.executable, "-m", "pveplan.cli", "executor", "--stdio", "--home", str(home)],
        input=b"".join(sent),
        capture_output=True,
        timeout=60,
        env={**os.environ, "HOME": str(home)},
    )
    return process.returncode, FrameDecoder().feed(process.stdout), process.stderr.decode()


def _driver_hello(version: str = __version__, protocol: int = PROTOCOL_VERSION) -> bytes:
    return encode_frame(Hello(protocol=protocol, pveplan=version, role="driver"))


EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "site-config"


@pytest.fixture(scope="module")
def subplan() -> object:
    from pveplan.dsl import load_manifest
    from pveplan.planner._planning import build_plan_file
    from pveplan.planner.siteconfig import load_site_config, resolve_manifest

    site = load_site_config(EXAMPLES)
    loaded = load_manifest(str(EXAMPLES / "manifests" / "n2-tiered.yaml"))
    resolved = resolve_manifest(loaded, site, "sim")
    plan = build_plan_file(loaded, resolved, site, "sim", planned_against=None).plan
    return next(iter(plan.subplans.values()))


def test_executor_refuses_another_protocol_version(tmp_path: Path) -> None:
    status, out, _ = _session(tmp_path, _driver_hello(protocol=PROTOCOL_VERSION + 1))
    assert status != 0
    assert isinstance(out[-1], ErrorFrame)
    assert "protocol version mismatch" in out[-1].message


def test_executor_refuses_a_tampered_subplan(tmp_path: Path, subplan) -> None:
    body = bytearray(canonical(subplan))
    at = body.index(b'"memory":') + len(b'"memory":')
    body[at] = ord("9") if body[at] != ord("9") else ord("8")  # one byte, in transit
    frame = encode_frame(PlanFrame(plan=bytes(body), hash=subplan.hash))
    status, out, _ = _session(tmp_path, _driver_hello(), frame)
    assert status != 0
    assert isinstance(out[0], Hello) and out[0].role == "executor"
    assert isinstance(out[-1], ErrorFrame)
    assert "refusing the subplan" in out[-1].message
    assert not (tmp_path / ".pveplan" / "store" / "objects").exists() or not any(
        (tmp_path / ".pveplan" / "store" / "objects").rglob("*")
    )


def test_executor_refuses_a_plan_whose_hash_is_not_the_one_sent(tmp_path: Path, subplan) -> None:
    frame = encode_frame(PlanFrame(plan=canonical(subplan), hash="0" * 32))
    status, out, _ = _session(tmp_path, _driver_hello(), frame)
    assert status != 0
    assert "the driver sent" in out[-1].message


def test_executor_answers_garbage_with_an_error_not_a_traceback(tmp_path: Path) -> None:
    status, out, err = _session(tmp_path, struct.pack(">I", 5) + b"\xc1\xc1\xc1\xc1\xc1")
    assert status != 0
    assert isinstance(out[-1], ErrorFrame) and "malformed frame" in out[-1].message
    assert "Traceback" not in err


def test_plan_frames_carry_canonical_bytes(subplan) -> None:
    frame = PlanFrame(plan=canonical(subplan), hash=subplan.hash)
    (decoded,) = FrameDecoder().feed(encode_frame(frame))
    assert msgspec.json.decode(decoded.plan) == msgspec.json.decode(canonical(subplan))
