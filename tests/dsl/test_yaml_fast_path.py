"""The YAML loader's short path for plain scalars in mappings (`_Builder.fast`) builds the
same values, positions and errors as its general path, on random documents."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pveplan.dsl import DslError
from pveplan.dsl._positions import SourceMap
from pveplan.dsl._yaml import _Builder, _Loader, load_yaml
from tests._tiers import examples

# Plain scalars whose meaning differs between YAML 1.1 types, and ordinary text.
SCALARS = (
    "0", "7", "99001", "-1", "+1", "0123", "09", "1_000", "0x1F", "0b101", "1.5", "1e3",
    ".inf", "yes", "No", "off", "ON", "true", "null", "~", "2001-12-14", "12:30:45",
    "vm-small", "debian-12", "a b", "x", "<<", "=", "١٢",
)  # fmt: skip
KEYS = ("name", "type", "vmid", "memory", "a", "b", "1", "yes", "null", "<<", "~")


def _scalar() -> st.SearchStrategy[str]:
    plain = st.sampled_from(SCALARS)
    quoted = st.sampled_from(SCALARS).map(lambda s: f"'{s}'")
    anchored = st.tuples(st.sampled_from("pq"), plain).map(lambda t: f"&{t[0]} {t[1]}")
    tagged = plain.map(lambda s: f"!!str {s}")
    return st.one_of(plain, plain, plain, quoted, anchored, tagged, st.just("*p"))


def _block(depth: int) -> st.SearchStrategy[list[str]]:
    """Lines of a block mapping or sequence (indented by the caller)."""
    leaf = _scalar()
    if depth >= 3:
        child: st.SearchStrategy[Any] = leaf
    else:
        child = st.one_of(leaf, leaf, st.deferred(lambda: _block(depth + 1)))

    def mapping(items: list[tuple[str, Any]]) -> list[str]:
        out = []
        for key, value in items:
            if isinstance(value, list):
                out += [f"{key}:", *("  " + line for line in value)]
            else:
                out.append(f"{key}: {value}")
        return out

    def sequence(items: list[Any]) -> list[str]:
        out = []
        for value in items:
            if isinstance(value, list) and value:
                out += [f"- {value[0]}", *("  " + line for line in value[1:])]
            else:
                out.append(f"- {value if not isinstance(value, list) else '[]'}")
        return out

    return st.one_of(
        st.lists(st.tuples(st.sampled_from(KEYS), child), min_size=1, max_size=5).map(mapping),
        st.lists(child, min_size=1, max_size=4).map(sequence),
    )


def _load(text: str, fast: bool) -> Any:
    smap = SourceMap()
    builder = _Builder("t.yaml", smap, fast=fast)
    try:
        for event in yaml.parse(text, Loader=_Loader):
            builder.feed(event)
    except DslError as exc:
        return "error", exc.summary, [(d.location, d.detail) for d in exc.diagnostics]
    except yaml.YAMLError as exc:
        return "yaml", str(exc)
    return builder.result(), smap.values, smap.keys


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_block(0))
def test_the_short_path_builds_what_the_general_path_builds(lines: list[str]) -> None:
    text = "\n".join(lines) + "\n"
    assert _load(text, fast=True) == _load(text, fast=False)


def test_the_short_path_is_the_one_load_yaml_takes() -> None:
    text = "a: 1\nb: x\nc: [1, 2]\n"
    assert (
        load_yaml(text, "t.yaml")[0] == _load(text, fast=True)[0] == {"a": 1, "b": "x", "c": [1, 2]}
    )
