"""Shared hypothesis strategies for whole manifests, and a writer of .pvp text from a Manifest."""

from __future__ import annotations

import json

import msgspec
from hypothesis import strategies as st

from pveplan.dsl import Execution, Manifest, Node, NodeExecution, Settings

labels = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)


@st.composite
def manifests(draw: st.DrawFn) -> Manifest:
    names = draw(st.lists(labels, min_size=1, max_size=8, unique=True))
    vmids = draw(
        st.lists(
            st.integers(100, 999_999_999), min_size=len(names), max_size=len(names), unique=True
        )
    )
    nodes: list[Node] = []
    for i, name in enumerate(names):
        pve_before = [n.name for n in nodes if n.type == "pve"]
        parent = draw(st.one_of(st.none(), st.sampled_from(pve_before))) if pve_before else None
        kind = draw(st.sampled_from(["vm", "pve", "ct"]))
        nodes.append(
            Node(
                name=name,
                type=kind,
                image=None if kind == "ct" else draw(st.sampled_from(["debian-12", "pve-9"])),
                template="debian-12-standard" if kind == "ct" else None,
                preset=draw(st.one_of(st.none(), st.just("vm-small"))),
                spec=draw(st.one_of(st.none(), st.sampled_from(["base", "pve"]))),
                vmid=draw(st.one_of(st.none(), st.just(vmids[i]))),
                disk=draw(st.one_of(st.none(), st.integers(1, 1_000_000))),
                cores=draw(st.one_of(st.none(), st.integers(1, 1024))),
                parent=parent,
                # Containers have no cloud-init, so pull mode is refused for them.
                execution=NodeExecution(
                    mode="push" if kind == "ct" else draw(st.sampled_from([None, "push", "pull"]))
                ),
            )
        )
    return Manifest(
        schema_version=2,
        name=draw(labels),
        # Without YAML 1.1's extra line breaks (NEL, LS, PS): PyYAML's emitter writes them
        # raw inside quotes with allow_unicode, and its reader then folds them to spaces.
        # Without lone surrogates: no file can hold them (UTF-8 cannot encode them).
        description=draw(
            st.one_of(
                st.none(),
                st.text(
                    st.characters(
                        exclude_categories=("Cs",), exclude_characters="\x85\u2028\u2029"
                    ),
                    max_size=20,
                ),
            )
        ),
        pattern="tiered"
        if any(n.parent for n in nodes)
        else draw(st.sampled_from(["flat", "tiered"])),
        execution=Execution(default_mode=draw(st.sampled_from(["push", "pull"]))),
        settings=Settings(
            on_error=draw(st.sampled_from(["stop", "rollback", "continue"])),
            verify_ssh=draw(st.booleans()),
            timeout_buffer=draw(st.integers(0, 86_400)),
        ),
        nodes=tuple(nodes),
    )


def _pvp_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        # JSON leaves DEL raw, and .pvp source refuses raw control characters: escape it.
        return (
            json.dumps(value, ensure_ascii=False).replace("${", "\\${").replace("\x7f", "\\u007f")
        )
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_pvp_value(v)}" for k, v in value.items()) + " }"
    return str(value)


def to_pvp(manifest: Manifest, nested: bool) -> str:
    """The manifest as .pvp: children as nested blocks, or flat with explicit parents."""
    data = msgspec.to_builtins(manifest)
    nodes = data.pop("nodes")
    name = data.pop("name")
    data.pop("schema_version")
    lines = [f"manifest {_pvp_value(name)} {{"] + [
        f"  {k} = {_pvp_value(v)}" for k, v in data.items()
    ]

    def block(node: dict[str, object], depth: int) -> None:
        pad = "  " * depth
        lines.append(f"{pad}node {_pvp_value(node['name'])} {{")
        for key, value in node.items():
            if key == "name" or (nested and key == "parent"):
                continue
            lines.append(f"{pad}  {key} = {_pvp_value(value)}")
        if nested:
            for child in nodes:
                if child.get("parent") == node["name"]:
                    block(child, depth + 1)
        lines.append(f"{pad}}}")

    for node in nodes:
        if not nested or node.get("parent") is None:
            block(node, 1)
    return "\n".join([*lines, "}"]) + "\n"
