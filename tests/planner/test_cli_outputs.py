"""`pveplan output`: nodes gathered from store records, and the formats they render to.

No store and no simulator here: `collect_nodes` gets records as values, the renderers get
nodes. The end-to-end run (a real apply, the real `ansible-inventory` and `ssh`) is
tests/integration/test_outputs.py.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pveplan.cli._outputs import NodeOutput, collect_nodes, key_fingerprint
from pveplan.cli._outputs_render import (
    OutputError,
    reachable,
    render_ansible_inventory,
    render_json,
    render_known_hosts,
    render_ssh_config,
    render_table,
)
from pveplan.executor import generate_ed25519, public_line
from pveplan.planner import read_plan_file
from tests._tiers import examples
from tests.cli_runner import run_cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "site-config"
KNOWN = "/home/op/.ssh/pveplan.known_hosts"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHLM9lpnjp4DCLwb10z33nxSBzCXaJtX1JMajv96rgDy"


@pytest.fixture
def n2_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PVEPLAN_STORE", str(tmp_path / "store"))
    out = tmp_path / "n2.json"
    code, _, err = run_cli(
        ["plan", "-M", "n2-tiered", "-H", "sim", "--site-config", str(EXAMPLES), "-o", str(out)]
    )
    assert code == 0, err
    return read_plan_file(out).plan


def _ok_results(plan, **extra):
    results = {s.address: {} for s in plan.steps}
    results.update(extra)
    return results


def test_nodes_come_from_resources_results_and_the_delegate(n2_plan) -> None:
    resources = {"node.root-pve.create": {"vm_id": 99011, "host_key": KEY + " root@x"}}
    results = _ok_results(
        n2_plan,
        **{
            "node.root-pve.wait_ip": {"ip": "10.0.0.5"},
            "node.root-pve.delegate": {
                "node.edge.vm_id": 99021,
                "node.edge.ip": "10.10.0.7",
                "node.edge.host_key": KEY,
            },
        },
    )
    root, edge = collect_nodes(n2_plan, resources, results, port=22)
    assert (root.name, root.type, root.parent, root.host) == ("root-pve", "pve", None, "sim")
    assert (root.vmid, root.address, root.user, root.status) == (
        99011,
        "10.0.0.5",
        "homestak",
        "applied",
    )
    assert root.host_key == KEY  # the comment is dropped: known_hosts wants none
    assert (edge.name, edge.type, edge.parent, edge.host) == ("edge", "vm", "root-pve", "root-pve")
    assert (edge.vmid, edge.address, edge.status) == (99021, "10.10.0.7", "applied")
    assert edge.fingerprint == root.fingerprint == key_fingerprint(KEY)


def test_a_node_with_no_vm_recorded_is_absent_and_a_missing_step_is_partial(n2_plan) -> None:
    nodes = collect_nodes(n2_plan, {}, {}, port=22)
    assert [(n.name, n.status, n.address) for n in nodes] == [
        ("root-pve", "absent", None),
        ("edge", "absent", None),
    ]
    resources = {"node.root-pve.create": {"vm_id": 99011, "host_key": KEY}}
    results = _ok_results(n2_plan)
    del results["node.root-pve.config"]
    root = collect_nodes(n2_plan, resources, results)[0]
    assert root.status == "partial"
    assert root.vmid == 99011


def test_fingerprint_is_what_ssh_keygen_prints(tmp_path: Path) -> None:
    private, _ = generate_ed25519("t")
    line = public_line(private, "t")
    (tmp_path / "k.pub").write_text(line + "\n")
    try:
        printed = subprocess.run(
            ["ssh-keygen", "-l", "-E", "sha256", "-f", str(tmp_path / "k.pub")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except FileNotFoundError:
        pytest.skip("no ssh-keygen")
    assert printed.split()[1] == key_fingerprint(line)
    assert key_fingerprint("not a key") is None


# --- renderers -------------------------------------------------------------------------

NAMES = st.from_regex(r"[a-z][a-z0-9-]{0,14}", fullmatch=True)


@st.composite
def trees(draw: st.DrawFn) -> list[NodeOutput]:
    """Up to 8 uniquely named nodes, each on the target host or inside an earlier one."""
    names = draw(st.lists(NAMES, min_size=1, max_size=8, unique=True))
    nodes: list[NodeOutput] = []
    for index, name in enumerate(names):
        parent = draw(st.sampled_from([None, *names[:index]]))
        nodes.append(
            NodeOutput(
                name=name,
                type=draw(st.sampled_from(["vm", "pve", "ct"])),
                parent=parent,
                host=parent or "sim",
                vmid=90000 + index,
                address=f"10.0.{index}.{draw(st.integers(1, 254))}",
                port=draw(st.sampled_from([None, 22, 2222])),
                user=draw(st.sampled_from([None, "homestak", "ops"])),
                host_key=KEY,
                fingerprint=key_fingerprint(KEY),
                status="applied",
            )
        )
    return nodes


@settings(max_examples=examples(200))
@given(trees())
def test_any_tree_renders_to_an_inventory_that_round_trips_with_every_node(nodes) -> None:
    text = render_ansible_inventory(nodes, KNOWN, identity="/keys/driver")
    document = yaml.safe_load(text)
    groups = document["all"]["children"]
    hostvars = {}
    for group in groups.values():
        for name, values in group["hosts"].items():
            if values:
                hostvars[name] = values
    assert set(hostvars) == {n.name for n in nodes}
    for node in nodes:
        values = hostvars[node.name]
        assert values["ansible_host"] == node.address
        assert name_in_group(groups, node.type, node.name)
        assert name_in_group(
            groups, f"parent_{(node.parent or node.host).replace('-', '_')}", node.name
        )
        args = shlex.split(values["ansible_ssh_common_args"])
        assert f"UserKnownHostsFile={KNOWN}" in args
        assert "StrictHostKeyChecking=yes" in args
        # A nested node goes through one ProxyCommand per host in front of it.
        depth, by_name, parent = 0, {n.name: n for n in nodes}, node.parent
        while parent is not None:
            depth, parent = depth + 1, by_name[parent].parent
        assert _proxy_depth(args) == depth


def name_in_group(groups: dict, group: str, name: str) -> bool:
    return name in groups.get(group, {}).get("hosts", {})


def _proxy_depth(args: list[str]) -> int:
    """How many ProxyCommand hops the ssh arguments nest (each a shell word of its own)."""
    for arg in args:
        if arg.startswith("ProxyCommand="):
            return 1 + _proxy_depth(shlex.split(arg.removeprefix("ProxyCommand=")))
    return 0


@settings(max_examples=examples(200))
@given(trees())
def test_any_tree_renders_one_ssh_host_block_per_node(nodes) -> None:
    text = render_ssh_config(nodes, KNOWN)
    hosts = [line.split()[1] for line in text.splitlines() if line.startswith("Host ")]
    assert hosts == [n.name for n in nodes]
    for node in nodes:
        block = text.split(f"Host {node.name}\n", 1)[1].split("\n\n", 1)[0]
        assert f"  HostName {node.address}" in block
        assert (f"  ProxyJump root@{node.parent}" in block) == (node.parent is not None)
    known = render_known_hosts(nodes)
    assert len(known.splitlines()) == len(nodes) + 1  # the comment, then one per node


HOSTILE = st.one_of(
    st.text(min_size=1).filter(lambda s: any(c in s for c in ' \t\n\r"#=')),
    st.sampled_from(["edge\nHost *\n  ProxyCommand sh -c evil", "a b", 'x"y', "-oProxyCommand=x"]),
)


@settings(max_examples=examples(200))
@given(HOSTILE, st.sampled_from(["name", "user", "address", "parent"]))
def test_a_value_that_could_inject_is_refused_never_written(value: str, field: str) -> None:
    node = NodeOutput(
        name="edge",
        type="vm",
        parent=None,
        host="sim",
        address="10.0.0.1",
        user="homestak",
        host_key=KEY,
        status="applied",
    )
    pve = NodeOutput(
        name="pve", type="pve", parent=None, host="sim", address="10.0.0.2", host_key=KEY
    )
    if field == "parent":
        pve = NodeOutput(
            name=value, type="pve", parent=None, host="sim", address="10.0.0.2", host_key=KEY
        )
        node = NodeOutput(**{**_fields(node), "parent": value})
    else:
        node = NodeOutput(**{**_fields(node), field: value})
    for render in (render_ssh_config, render_ansible_inventory):
        with pytest.raises(OutputError):
            render([pve, node], KNOWN)


def _fields(node: NodeOutput) -> dict:
    return {f: getattr(node, f) for f in node.__struct_fields__}


@pytest.mark.parametrize("path", ["relative/kh", "/a/%d/kh", '/a"b', "/a\nHost x"])
def test_paths_ssh_would_expand_or_cannot_quote_are_refused(path: str) -> None:
    node = NodeOutput(
        name="edge", type="vm", parent=None, host="sim", address="10.0.0.1", host_key=KEY
    )
    with pytest.raises(OutputError):
        render_ssh_config([node], path)
    with pytest.raises(OutputError):
        render_ansible_inventory([node], KNOWN, identity=path)


def test_a_node_without_address_or_key_is_left_out_with_what_is_inside_it() -> None:
    host = NodeOutput(name="pve", type="pve", parent=None, host="sim", address=None, host_key=KEY)
    inner = NodeOutput(
        name="inner", type="vm", parent="pve", host="pve", address="10.0.0.3", host_key=KEY
    )
    flat = NodeOutput(
        name="flat", type="vm", parent=None, host="sim", address="10.0.0.4", host_key=KEY
    )
    ok, left = reachable([host, inner, flat])
    assert [n.name for n in ok] == ["flat"]
    assert [n.name for n in left] == ["pve", "inner"]
    assert "Host inner" not in render_ssh_config([host, inner, flat], KNOWN)


def test_known_hosts_names_the_port_when_it_is_not_22() -> None:
    nodes = [
        NodeOutput(
            name="a", type="vm", parent=None, host="sim", address="10.0.0.1", port=22, host_key=KEY
        ),
        NodeOutput(
            name="b",
            type="vm",
            parent=None,
            host="sim",
            address="10.0.0.2",
            port=2222,
            host_key=KEY,
        ),
    ]
    lines = render_known_hosts(nodes).splitlines()[1:]
    assert lines == [f"10.0.0.1 {KEY}", f"[10.0.0.2]:2222 {KEY}"]


def test_json_and_table_carry_every_field() -> None:
    node = NodeOutput(
        name="edge",
        type="vm",
        parent="pve",
        host="pve",
        vmid=7,
        address="10.0.0.1",
        status="applied",
    )
    host = NodeOutput(name="pve", type="pve", parent=None, host="sim", vmid=6, status="partial")
    document = json.loads(render_json([host, node], {"workspace": "w@sim"}))
    assert document["workspace"] == "w@sim"
    assert document["nodes"][1] == {
        "name": "edge",
        "type": "vm",
        "parent": "pve",
        "host": "pve",
        "vmid": 7,
        "address": "10.0.0.1",
        "port": None,
        "user": None,
        "host_key": None,
        "fingerprint": None,
        "status": "applied",
    }
    table = render_table([host, node])
    assert "pve › edge" in table
    assert "partial" in table


def test_output_with_nothing_applied_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PVEPLAN_STORE", str(tmp_path / "store"))
    code, _, err = run_cli(
        ["output", "-M", "n2-tiered", "-H", "sim", "--site-config", str(EXAMPLES)]
    )
    assert code == 1
    assert "nothing is applied to n2-tiered@sim" in err
    assert "Traceback" not in err


def test_output_reads_what_the_store_recorded_for_the_applied_plan(n2_plan, tmp_path: Path) -> None:
    """The command end to end on a store filled as an apply fills it (no simulator): the
    newest successful result of each applied step hash counts, older or failed ones not."""
    from pveplan.planner import canonical
    from pveplan.store import StepResult, open_store

    workspace = "n2-tiered@sim"

    def result(address: str, outputs: dict, *, status: str = "ok", finished: float = 2.0):
        step = next(s for s in n2_plan.steps if s.address == address)
        return StepResult(
            run_key=f"{address}-{finished}-{status}",
            step_hash=step.hash,
            address=address,
            kind=step.kind,
            status=status,
            outputs=outputs,
            started=finished - 1,
            finished=finished,
        )

    with open_store(tmp_path / "store") as store:
        store.put_plan(n2_plan.hash, store.put_object(canonical(n2_plan)), workspace)
        records = [(result(s.address, {}), None) for s in n2_plan.steps]
        records += [
            (result("node.root-pve.wait_ip", {"ip": "10.0.0.9"}, finished=1.0), None),
            (result("node.root-pve.wait_ip", {"ip": "10.0.0.5"}, finished=3.0), None),
            (
                result("node.root-pve.wait_ip", {"ip": "10.6.6.6"}, status="failed", finished=4.0),
                None,
            ),
            (
                result("node.root-pve.create", {"vm_id": 99011, "host_key": KEY}),
                {"vm_id": 99011, "host_key": KEY, "name": "root-pve"},
            ),
            (
                result(
                    "node.root-pve.delegate",
                    {
                        "node.edge.vm_id": 99021,
                        "node.edge.ip": "10.10.0.7",
                        "node.edge.host_key": KEY,
                    },
                ),
                None,
            ),
        ]
        store.record_steps(workspace, records)
        store.set_applied(workspace, n2_plan.hash, {s.address: s.hash for s in n2_plan.steps})
    code, out, err = run_cli(
        ["output", "-M", "n2-tiered", "-H", "sim", "--site-config", str(EXAMPLES), "--json"]
    )
    assert code == 0, err
    document = json.loads(out)
    assert document["workspace"] == workspace
    assert document["plan"] == n2_plan.hash
    nodes = {n["name"]: n for n in document["nodes"]}
    assert nodes["root-pve"]["address"] == "10.0.0.5"
    assert nodes["root-pve"]["vmid"] == 99011
    assert nodes["edge"]["address"] == "10.10.0.7"
    assert nodes["edge"]["parent"] == "root-pve"
    config = tmp_path / "cfg" / "pveplan.conf"
    config.parent.mkdir()
    words = ["output", "-M", "n2-tiered", "-H", "sim", "--site-config", str(EXAMPLES)]
    code, _, err = run_cli([*words, "--format", "ssh-config", "-o", str(config)])
    assert code == 0, err
    assert "no host contacted" in err
    known = Path(f"{config}.known_hosts").read_text().splitlines()
    assert any(line.startswith("10.10.0.7") or "[10.10.0.7]" in line for line in known)
    assert f'UserKnownHostsFile "{config}.known_hosts"' in config.read_text()
