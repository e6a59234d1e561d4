"""Plan format /2: shared values stored once, and nothing else different.

A /2 file must describe exactly the plan a /1 file did: the same plan hash, the same step
hashes, the same header, so a signature made on a /1 file still verifies once the file is
written as /2. Old /1 files still load (a real one, saved by `pveplan plan -o --sign` before
/2 existed, is in tests/fixtures/planfile-v1/). The reader is strict: an edit of any field
of a /2 file that apply uses is refused, by its hashes or by the signature.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import msgspec
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pveplan.dsl import Manifest, load_manifest
from pveplan.planner._errors import PlanError
from pveplan.planner._planfile import (
    BOUND_HEADER_FIELDS,
    FORMAT,
    FORMAT_1,
    decode_plan_file,
    encode_plan_file,
)
from pveplan.planner._planning import build_plan_file
from pveplan.planner._signing import parse_public_keys, require_signature
from pveplan.planner.siteconfig import load_site_config, resolve_manifest
from tests._tiers import examples

from ..cli_runner import run_cli
from ..manifest_strategies import manifests
from .test_cli_plan import plan_args, site  # noqa: F401  (the fixture)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "planfile-v1"
V1 = FIXTURES / "n2-tiered.json"
# The plan hash the /1 file was saved with (n2-tiered on sim, examples/site-config).
V1_HASH = "b9b764d832893beb6a174641b413aadc"
KEYS = parse_public_keys((FIXTURES / "approver.pub").read_text(), "approver.pub")
ROOT = Path(__file__).resolve().parents[2]
SITE = load_site_config(ROOT / "examples" / "site-config")


def v1() -> Any:
    return decode_plan_file(V1.read_bytes(), str(V1))


def test_a_saved_v1_file_still_loads_with_its_hashes() -> None:
    plan_file = v1()
    assert plan_file.format == FORMAT_1
    assert plan_file.hash == plan_file.plan.hash == V1_HASH
    assert require_signature(plan_file, KEYS, str(V1))  # signed when saved as /1


def test_v1_written_as_v2_is_the_same_plan_hashes_and_signature() -> None:
    """Every step hash, every subplan's and the plan's hash are the same in both formats,
    and so is the header: the /1 signature still verifies on the /2 file."""
    old = v1()
    data = encode_plan_file(old)
    assert data.startswith(b'{\n  "format": "pveplan-plan/2",\n')
    new = decode_plan_file(data, "v2.json")
    assert new.format == FORMAT
    assert new == msgspec.structs.replace(old, format=FORMAT)
    assert [(p, s.address, s.hash) for p, s in new.plan.walk()] == [
        (p, s.address, s.hash) for p, s in old.plan.walk()
    ]
    assert require_signature(new, KEYS, "v2.json")
    assert encode_plan_file(new) == data  # /2 -> /2: the same bytes


def test_v2_is_smaller_and_stores_shared_parts_once() -> None:
    data = encode_plan_file(v1())
    assert len(data) < 0.8 * len(V1.read_bytes())
    doc = json.loads(data)
    lines = [line for plan in _plans(doc["plan"]) for line in plan["steps"]]
    used = {line["template"] for line in lines}
    assert used == set(doc["templates"])  # each template used, none missing
    assert len(used) < len(lines)  # start, wait_ip, ... of every node share one each
    assert all("hash" not in line for line in lines)  # computed by the reader


def _plans(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for sub in plan.get("subplans", {}).values():
        out += _plans(sub)
    return out


def test_show_reads_both_formats_alike(tmp_path: Path) -> None:
    v2 = tmp_path / "n2-tiered.json"
    v2.write_bytes(encode_plan_file(v1()))
    shown = [run_cli(["show", "--json", str(path)]) for path in (V1, v2)]
    assert [code for code, _, _ in shown] == [0, 0]
    assert json.loads(shown[0][1]) == json.loads(shown[1][1])


def test_signing_a_v1_file_writes_v2_and_keeps_its_signature(tmp_path: Path) -> None:
    """`pveplan sign` of an old file rewrites it in the current format; the signature
    already in it (over the plan, not its encoding) still verifies."""
    path = tmp_path / "n2-tiered.json"
    path.write_bytes(V1.read_bytes())
    key = tmp_path / "other"
    assert run_cli(["keygen", str(key), "-C", "other"])[0] == 0
    code, _, err = run_cli(["sign", str(path), "--key", str(key)])
    assert code == 0, err
    signed = decode_plan_file(path.read_bytes(), str(path))
    assert signed.format == FORMAT and signed.hash == V1_HASH
    assert len(signed.header.signatures) == 2
    assert require_signature(signed, KEYS, str(path))
    other = parse_public_keys(Path(f"{key}.pub").read_text(), "other.pub")
    assert require_signature(signed, other, str(path))


def test_the_same_plan_gives_the_same_bytes_in_any_process() -> None:
    """Byte-identical on every run: two fresh processes, different hash seeds."""
    script = (
        "import sys; from pathlib import Path; "
        "from pveplan.planner._planfile import decode_plan_file, encode_plan_file; "
        f"sys.stdout.buffer.write(encode_plan_file(decode_plan_file(Path({str(V1)!r}).read_bytes(), 'f')))"
    )
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, check=True, env=env, cwd=ROOT
        )
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1] == encode_plan_file(v1())


@pytest.mark.parametrize("manifest", ["n3-deep", "lab", "two-hosts"])
def test_a_compiled_plan_is_written_the_same_as_its_decoded_copy(
    site: Path,  # noqa: F811
    tmp_path: Path,
    manifest: str,
) -> None:
    """The compiler's in-memory plan (args in its own key order) and the same plan read
    back from a file encode to the same bytes, and decode to the same plan."""
    out = tmp_path / "plan.json"
    code, _, err = run_cli(["plan", *plan_args(site, manifest), "-o", str(out)])
    assert code in (0, 2), err
    data = out.read_bytes()
    decoded = decode_plan_file(data, "plan.json")
    assert encode_plan_file(decoded) == data


# ---- tampering ----------------------------------------------------------------------------

V2_DOC = json.loads(encode_plan_file(v1()))
FREE = {"tool", "sources", "source_files", "site_config", "signatures"}


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every scalar, and of every object key (as ("key", ...path)), in `value`."""
    out: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            out.append(("key", *path, key))
            out += _leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _leaves(item, (*path, index))
    else:
        out.append(("value", *path))
    return out


TARGETS = [
    leaf
    for leaf in _leaves(V2_DOC)
    if not (len(leaf) > 2 and leaf[1] == "header" and leaf[2] in FREE)
    and leaf[1:] != ("header",)  # renaming the header key itself: a missing field
]


def _other(value: Any, pick: int) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1 + pick
    if isinstance(value, str):  # a longer one, or one of the same length
        if pick % 2 or not value:
            return value + "x"
        return ("y" if value[0] != "y" else "z") + value[1:]
    return pick  # null


def _tamper(doc: Any, leaf: tuple[Any, ...], pick: int) -> Any:
    doc = json.loads(json.dumps(doc))
    kind, *path = leaf
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if kind == "key":
        parent[_other(last, pick)] = parent.pop(last)
    else:
        parent[last] = _other(parent[last], pick)
    return doc


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(leaf=st.sampled_from(TARGETS), pick=st.integers(0, 3))
def test_any_edit_of_a_v2_file_that_apply_uses_is_refused(leaf: tuple[Any, ...], pick: int) -> None:
    """One value or key changed anywhere but in a free header field: the file is refused
    when read (its hashes, its templates), or, for a bound header field, its signature
    no longer verifies. Either way apply never runs it."""
    edited_doc = _tamper(V2_DOC, leaf, pick)
    assert edited_doc != V2_DOC
    data = json.dumps(edited_doc).encode()
    try:
        edited = decode_plan_file(data, "edited.json")
    except PlanError:
        return
    assert leaf[1] == "header" and leaf[2] in BOUND_HEADER_FIELDS, leaf
    with pytest.raises(PlanError):
        require_signature(edited, KEYS, "edited.json")


def test_every_part_of_the_body_can_be_tampered_with() -> None:
    """The property above samples lines, templates, subplans and the hashes alike."""
    tops = {leaf[1] for leaf in TARGETS}
    assert tops == {"format", "hash", "header", "plan", "templates"}
    assert any(leaf[1:3] == ("plan", "subplans") for leaf in TARGETS)


# ---- round trip ---------------------------------------------------------------------------


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(manifest=manifests())
def test_any_manifest_round_trips_through_v2(manifest: Manifest) -> None:
    """Whatever the manifest (nesting, pull nodes, containers, devices, ...): the /2 file
    decodes to the very plan file the compiler made, and writes the same bytes again."""
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.yaml"
        path.write_text(yaml.safe_dump(msgspec.to_builtins(manifest), sort_keys=False))
        loaded = load_manifest(str(path))
        resolved = resolve_manifest(loaded, SITE, "sim")
        plan_file = build_plan_file(loaded, resolved, SITE, "sim", planned_against=None)
    data = encode_plan_file(plan_file)
    back = decode_plan_file(data, "m.json")
    assert back == plan_file
    assert encode_plan_file(back) == data
