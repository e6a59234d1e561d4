"""Hostile input never ends in a traceback: always `file:line:col: error: ...` and exit 1.

Each example is written to a file and given to the real `pveplan validate` entry point:
random text and bytes (invalid UTF-8 included), mutated valid manifests, deep nesting,
huge integers and very long lines, through both front ends.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests._tiers import examples

from .cli_runner import run_cli

ROOT = Path(__file__).parent
SEEDS = [
    *sorted((ROOT / "fixtures" / "homestak-site-config" / "manifests").glob("*.yaml")),
    ROOT / "dsl" / "cases" / "manifest.out.pvp",
]
SEED_TEXTS = [p.read_bytes() for p in SEEDS]
WORKDIR = Path(tempfile.mkdtemp(prefix="pveplan-fuzz-"))
LOCATED = re.compile(r"^\S[^\n]*:\d+:\d+: (error|warning): \S", re.MULTILINE)
FUZZ = settings(
    max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def check_validate(data: bytes, suffix: str) -> None:
    path = WORKDIR / f"input{suffix}"
    path.write_bytes(data)
    code, out, err = run_cli(["validate", "--no-site-config", str(path)])
    assert "Traceback" not in out + err
    assert code in (0, 1), (code, err)
    if code == 1:
        first = err.splitlines()[0]
        assert LOCATED.match(first), first
        assert first.startswith(str(path) + ":")
    else:
        assert "valid" in out


@FUZZ
@given(st.text(max_size=300), st.sampled_from([".pvp", ".yaml"]))
@example("manifest", ".pvp")
@example("{", ".yaml")
def test_random_text(text: str, suffix: str) -> None:
    check_validate(text.encode("utf-8", "surrogatepass"), suffix)


@FUZZ
@given(st.binary(max_size=300), st.sampled_from([".pvp", ".yaml"]))
@example(b"schema_version: 2\nname: \xc3\x28\n", ".yaml")
@example(b'manifest "\xff" {}', ".pvp")
def test_random_bytes_and_invalid_utf8(data: bytes, suffix: str) -> None:
    check_validate(data, suffix)


@st.composite
def mutations(draw: st.DrawFn) -> tuple[bytes, str]:
    index = draw(st.integers(0, len(SEEDS) - 1))
    data = bytearray(SEED_TEXTS[index])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "insert", "duplicate", "flip", "number"]))
        at = draw(st.integers(0, len(data)))
        if kind == "delete":
            del data[at : at + draw(st.integers(1, 20))]
        elif kind == "insert":
            data[at:at] = draw(
                st.sampled_from(
                    [b"{", b"}", b"[", b'"', b":", b"\n", b"  ", b"${", b"-", b"#", b"\t"]
                )
            )
        elif kind == "duplicate":
            data[at:at] = data[at : at + draw(st.integers(1, 40))]
        elif kind == "flip" and data:
            data[min(at, len(data) - 1)] = draw(st.integers(0, 255))
        else:
            data[at:at] = str(draw(st.integers(-(10**30), 10**30))).encode()
    return bytes(data), SEEDS[index].suffix


@FUZZ
@given(mutations())
def test_mutated_valid_manifests(case: tuple[bytes, str]) -> None:
    check_validate(*case)


@settings(max_examples=examples(40), deadline=None)
@given(
    st.sampled_from(["[", "{a: ", "- ", "(", "-", "not ", "{ a = ", "f("]),
    st.integers(50, 20_000),
    st.sampled_from([".pvp", ".yaml"]),
)
def test_deep_nesting(opener: str, depth: int, suffix: str) -> None:
    closer = {"[": "]", "{a: ": "}", "(": ")", "f(": ")", "{ a = ": "}"}.get(opener, "")
    if suffix == ".pvp":
        data = f'manifest "m" {{ x = {opener * depth}1{closer * depth} }}'
    else:
        data = "schema_version: 2\nname: m\nnodes: " + opener * depth + "1" + closer * depth
    check_validate(data.encode(), suffix)


@settings(max_examples=examples(40), deadline=None)
@given(
    st.integers(min_value=10**18, max_value=10**4000),
    st.booleans(),
    st.sampled_from([".pvp", ".yaml"]),
)
def test_huge_integers(value: int, negative: bool, suffix: str) -> None:
    number = f"-{value}" if negative else str(value)
    if suffix == ".pvp":
        data = f'manifest "m" {{ node "a" {{ type = "vm" image = "x" vmid = {number} disk = {number} * 2 }} }}'
    else:
        data = f"schema_version: 2\nname: m\nnodes:\n  - name: a\n    type: vm\n    image: x\n    vmid: {number}\n"
    check_validate(data.encode(), suffix)


@settings(max_examples=20, deadline=None)
@given(
    st.integers(10_000, 300_000),
    st.sampled_from(["a", "é", " ", "\t", "{", '"']),
    st.sampled_from([".pvp", ".yaml"]),
)
def test_very_long_lines(length: int, char: str, suffix: str) -> None:
    line = char * length
    if suffix == ".pvp":
        data = f'manifest "m" {{ description = "{line}" node "a" {{ type = "vm" image = "x" }} }} {line}'
    else:
        data = f"schema_version: 2\nname: m\ndescription: {line}\nnodes: [{{name: a, type: vm, image: x}}]\n{line}"
    check_validate(data.encode(), suffix)
