"""`nameserver` and `searchdomain` on clones and containers, the node's own or the
settings': each reaches its create step's args (a clone sets them by `qm set` after
cloning, a container in its own config), so none is dropped between validate and apply.

Why: the settings' DNS was resolved onto every node but only a VM made from an image had
fields for it, so a clone or a container silently came up without it.
"""

from __future__ import annotations

from pathlib import Path

from pveplan.dsl import load_manifest
from pveplan.planner import CtCreateArgs, VmCloneArgs, args_of
from pveplan.planner._diff import diff_plans
from pveplan.planner._planning import build_plan_file
from pveplan.planner.siteconfig import load_site_config, resolve_manifest
from tests.cli_runner import run_cli

LAB = """\
manifest "dns" {
  %(settings)s
  node "t" { type = "template"  image = "debian-12"  vmid = 99511 }
  node "c" { type = "vm"  vmid = 99512  clone = { from = "t" }  %(clone)s }
  node "k" { type = "ct"  vmid = 99513  template = "debian-13-standard"  %(ct)s }
}
"""
SETTINGS = 'settings = { nameserver = "10.0.0.53", searchdomain = "lab.example" }'


def plan_of(site: Path, settings: str = "", clone: str = "", ct: str = ""):  # type: ignore[no-untyped-def]
    path = site / "manifests" / "dns.pvp"
    path.write_text(LAB % {"settings": settings, "clone": clone, "ct": ct})
    config = load_site_config(site)
    loaded = load_manifest(str(path))
    return build_plan_file(
        loaded, resolve_manifest(loaded, config, "sim"), config, "sim", planned_against=None
    )


def test_the_settings_dns_reaches_the_clone_and_the_container(site: Path) -> None:
    plan = plan_of(site, settings=SETTINGS).plan
    clone = args_of(plan.step("node.c.create"), VmCloneArgs)
    ct = args_of(plan.step("node.k.create"), CtCreateArgs)
    for args in (clone, ct):
        assert (args.nameserver, args.searchdomain) == ("10.0.0.53", "lab.example")
    template = plan.step("node.t.create").args
    assert "nameserver" not in template and "searchdomain" not in template


def test_a_nodes_own_dns_wins_and_none_leaves_the_args_as_before(site: Path) -> None:
    own = plan_of(site, SETTINGS, 'nameserver = "10.9.9.9"', 'searchdomain = "ct.example"').plan
    assert args_of(own.step("node.c.create"), VmCloneArgs).nameserver == "10.9.9.9"
    assert args_of(own.step("node.k.create"), CtCreateArgs).searchdomain == "ct.example"
    bare = plan_of(site).plan
    for address in ("node.c.create", "node.k.create"):
        assert "nameserver" not in bare.step(address).args  # unset: no other plan's hash moves
        assert "searchdomain" not in bare.step(address).args


def test_a_dns_change_on_a_clone_or_a_container_is_in_place(site: Path) -> None:
    old = plan_of(site, SETTINGS)
    new = plan_of(site, SETTINGS.replace("10.0.0.53", "10.0.0.54"))
    changes = {c.address: c for c in diff_plans(new.plan, old.plan, new.header.sources)}
    for address in ("node.c.create", "node.k.create"):
        assert changes[address].action == "update"


def test_dns_on_a_clone_or_a_container_validates(site: Path) -> None:
    plan_of(site, clone='nameserver = "10.0.0.1"', ct='nameserver = "10.0.0.1"')
    code, _out, err = run_cli(["validate", "-M", "dns", "-H", "sim", "--site-config", str(site)])
    assert code == 0, err
