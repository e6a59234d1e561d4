"""Issue 23's features together (the `lab-mix` example): a container and a two-disk,
two-NIC VM on the target host, a template and two linked clones on sim2.

Why: each feature was tested alone. Where they meet, a template placed with `host:`
must be made on that host (its clones are cloned there, from the image ensured there),
a clone must be on its template's host (PVE clones on the source's node), and `status`
and drift must see clones and templates on any host, as they see VMs and containers.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pveplan.dsl import load_manifest
from pveplan.planner import LiveHost, LiveVm, Plan, find_drift, node_statuses, read_plan_file
from pveplan.planner._planning import build_plan_file
from pveplan.planner.siteconfig import load_site_config, resolve_manifest
from tests.cli_runner import run_cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "site-config"
CLONES = ("mix-web-1", "mix-web-2")


@cache
def lab_mix(ext: str = "pvp") -> Plan:
    site = load_site_config(EXAMPLES)
    loaded = load_manifest(str(EXAMPLES / "manifests" / f"lab-mix.{ext}"))
    return build_plan_file(
        loaded, resolve_manifest(loaded, site, "sim"), site, "sim", planned_against=None
    ).plan


def test_the_template_and_its_clones_are_made_on_sim2_from_sim2s_image() -> None:
    plan = lab_mix()
    assert lab_mix("yaml").hash == plan.hash  # both front ends make one plan
    hosts = {s.address: s.host for s in plan.steps}
    template = plan.step("node.mix-tmpl.create")
    assert template.host == "sim2"
    assert template.refs == {"volume": "image.debian-12@sim2.ensure#volid"}
    assert "storage.local@sim2.content" in template.deps
    for name in CLONES:
        assert hosts[f"node.{name}.create"] == "sim2"
    for name in ("mix-box", "mix-db"):
        assert hosts[f"node.{name}.create"] == "sim"
    # each host ensures only the images its own nodes use
    assert hosts["image.debian-13-standard.ensure"] == "sim"
    assert "image.debian-13-standard@sim2.ensure" not in hosts


def _edit(site: Path, old: str, new: str) -> str:
    path = site / "manifests" / "lab-mix.pvp"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return text


def test_a_clone_on_another_host_than_its_template_is_a_validate_error_at_its_host(
    site: Path,
) -> None:
    _edit(site, 'host = "sim2"  # the template', 'host = "sim"  # the template')
    code, _out, err = run_cli(
        ["validate", "-M", "lab-mix", "-H", "sim", "--site-config", str(site)]
    )
    assert code == 1
    assert "clone 'mix-web-1' is on host 'sim', its source 'mix-tmpl' on host 'sim2'" in err
    line = next(i for i, t in enumerate(_lines(site), 1) if 'host = "sim"  # the template' in t)
    assert f"lab-mix.pvp:{line}:" in err
    assert "mix-web-2" not in err  # the other clone is on its template's host


def test_a_clone_on_the_target_host_of_a_template_on_sim2_is_an_error_at_its_from(
    site: Path,
) -> None:
    clone_host = "    host = \"sim2\"  # the template's host: PVE clones on the source's node\n"
    _edit(site, clone_host, "")
    code, _out, err = run_cli(
        ["validate", "-M", "lab-mix", "-H", "sim", "--site-config", str(site)]
    )
    assert code == 1
    assert "clone 'mix-web-1' is on the target host, its source 'mix-tmpl' on host 'sim2'" in err
    line = next(i for i, t in enumerate(_lines(site), 1) if 'node "mix-web-1"' in t)
    assert f"lab-mix.pvp:{line + 5}:" in err  # its `clone = { from = ... }` line


def _lines(site: Path) -> list[str]:
    return (site / "manifests" / "lab-mix.pvp").read_text().splitlines()


def _applied(plan: Plan) -> tuple[dict, list[LiveHost]]:
    """The store's resources and both hosts' listings of the lab applied as planned."""
    resources: dict = {}
    listed: dict[str, list[LiveVm]] = {"sim": [], "sim2": []}
    for step in plan.steps:
        if not step.address.endswith(".create"):
            continue
        args = step.args
        resources[step.address] = {"vm_id": args["vmid"], "name": args["name"]}
        listed[step.host].append(
            LiveVm(
                vmid=args["vmid"],
                name=args["name"],
                status="stopped" if step.kind == "pve.template.create" else "running",
                cores=args["cores"],
                memory=args["memory"],
                disk=args["disk"],
                tags=tuple(args["tags"]),
                kind="lxc" if step.kind == "pve.ct.create" else "qemu",
            )
        )
    return resources, [LiveHost(host=h, vms=tuple(v)) for h, v in listed.items()]


def test_status_and_drift_see_the_template_and_clones_on_sim2() -> None:
    plan = lab_mix()
    resources, live = _applied(plan)
    statuses = {s.name: (s.type, s.host, s.state) for s in node_statuses(plan, live, resources)}
    assert statuses == {
        "mix-box": ("ct", "sim", "in_sync"),
        "mix-db": ("vm", "sim", "in_sync"),
        "mix-tmpl": ("template", "sim2", "in_sync"),
        "mix-web-1": ("vm", "sim2", "in_sync"),
        "mix-web-2": ("vm", "sim2", "in_sync"),
    }
    assert find_drift(plan, live, resources) == ()

    # On sim2, a clone stopped and the other's memory changed by hand, the template gone.
    sim, sim2 = live
    by_name = {vm.name: vm for vm in sim2.vms}
    changed = LiveHost(
        host="sim2",
        vms=(
            LiveVm(**{**_fields(by_name["mix-web-1"]), "status": "stopped"}),
            LiveVm(**{**_fields(by_name["mix-web-2"]), "memory": 4096}),
        ),
    )
    found = find_drift(plan, [sim, changed], resources)
    drift = {(d.node, d.field): d.fix for d in found}
    assert drift == {("mix-web-1", "status"): "start", ("mix-web-2", "memory"): "in_place"}
    now = node_statuses(plan, [sim, changed], resources, found)
    statuses = {s.name: s.state for s in now}
    assert statuses["mix-tmpl"] == "missing"
    assert statuses["mix-web-1"] == statuses["mix-web-2"] == "drift"
    assert statuses["mix-box"] == statuses["mix-db"] == "in_sync"


def _fields(vm: LiveVm) -> dict:
    return {f: getattr(vm, f) for f in vm.__struct_fields__}


def test_a_container_on_sim2_gets_its_vztmpl_and_rootdir_content_on_sim2(site: Path) -> None:
    _edit(site, "    disk = 4\n", '    disk = 4\n    host = "sim2"\n')
    out_file = site.parent / "mix.plan"
    code, _out, err = run_cli(
        ["plan", "-M", "lab-mix", "-H", "sim", "--site-config", str(site), "-o", str(out_file)]
    )
    assert code == 0, err
    plan = read_plan_file(out_file).plan
    box = plan.step("node.mix-box.create")
    assert box.host == "sim2"
    assert box.refs == {"volume": "image.debian-13-standard@sim2.ensure#volid"}
    assert plan.step("image.debian-13-standard@sim2.ensure").host == "sim2"
    content = plan.step("storage.local@sim2.content").args["content"]
    assert {"vztmpl", "rootdir", "import"} <= set(content)
    # sim keeps only what the VM there needs
    assert "vztmpl" not in plan.step("storage.local.content").args["content"]


MORE = """\
manifest "more" {
  node "t" { type = "template"  image = "debian-12"  vmid = 99501  disks = [{ size = 8 }] }
  node "u" { type = "template"  image = "debian-12"  vmid = 99503  searchdomain = "lab" }
  node "c" {
    type = "vm"
    vmid = 99502
    clone = { from = "t" }
    nics = [{ bridge = "vmbr0", vlan = 30 }]
    nameserver = "10.0.0.53"
  }
  node "k" { type = "ct"  template = "debian-13-standard"  nics = [{ bridge = "vmbr0" }] }
}
"""


def test_disk_and_nic_lists_on_a_template_clone_or_container_are_refused_where_written(
    site: Path,
) -> None:
    """Their steps have one disk and one NIC: a list would be dropped at apply; a template
    is never booted, so DNS on it would reach nothing."""
    (site / "manifests" / "more.pvp").write_text(MORE)
    code, _out, err = run_cli(["validate", "-M", "more", "-H", "sim", "--site-config", str(site)])
    assert code == 1
    assert "more.pvp:2:" in err and "node 't' sets disks, which a template does not" in err
    assert "more.pvp:3:" in err and "node 'u' sets searchdomain, which a template" in err
    assert "more.pvp:8:" in err and "node 'c' sets nics, which a clone does not" in err
    assert (
        "node 'c' sets nameserver" not in err
    )  # a clone takes DNS (tests/planner/test_guest_dns.py)
    assert "more.pvp:11:" in err and "node 'k' sets nics, which a ct does not" in err
