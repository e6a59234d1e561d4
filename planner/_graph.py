"""A plan's DAG as Graphviz DOT: steps as nodes, refs and deps as edges, subplans as clusters.

Node ids are quoted addresses prefixed by the subplan path, so the same address on two
hosts (each host's `image.debian-12.ensure`) stays two nodes. A delegate step points at
its cluster's first step. Output is stable: plan order, no positions or colours that vary.
"""

from __future__ import annotations

from ._plan import Plan


def plan_to_dot(plan: Plan) -> str:
    lines = [
        f'digraph "{_escape(plan.manifest)}" {{',
        "  rankdir=LR;",
        '  node [shape=box, fontname="monospace", fontsize=10];',
        f'  label="{_escape(plan.manifest)} on {_escape(plan.host)} (plan {plan.hash[:12]})";',
    ]
    _level(plan, "", lines, "  ")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _node_id(prefix: str, address: str) -> str:
    return f'"{_escape(prefix + address)}"'


def _level(plan: Plan, prefix: str, lines: list[str], pad: str) -> None:
    for step in plan.steps:
        shape = ", shape=component" if step.kind == "subplan.delegate" else ""
        lines.append(
            f'{pad}{_node_id(prefix, step.address)} [label="{_escape(step.address)}\\n{_escape(step.kind)}"{shape}];'
        )
    for step in plan.steps:
        sources = dict.fromkeys((*step.ref_addresses(), *step.deps))
        for source in sources:
            lines.append(f"{pad}{_node_id(prefix, source)} -> {_node_id(prefix, step.address)};")
    for address, subplan in plan.subplans.items():
        cluster = f"{prefix}{address}/"
        lines.append(f'{pad}subgraph "cluster_{_escape(cluster)}" {{')
        lines.append(f'{pad}  label="{_escape(subplan.host)} (subplan {subplan.hash[:12]})";')
        lines.append(f"{pad}  style=rounded;")
        _level(subplan, cluster, lines, pad + "  ")
        lines.append(f"{pad}}}")
        if subplan.steps:
            first = subplan.steps[0].address
            lines.append(
                f"{pad}{_node_id(prefix, address)} -> {_node_id(cluster, first)} [style=dashed];"
            )


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
