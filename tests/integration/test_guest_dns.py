"""The settings' DNS on a linked clone and a container, on the simulator: set at create
(a clone by `qm set` after cloning, a container in its create), changed in place on the
same guests, over SSH and over PVE's HTTPS API. Before, both came up without it."""

from __future__ import annotations

from pveplan.sim import read_state
from tests.cli_runner import run_cli

from .conftest import Lab
from .test_api_transport import ApiLab, api_lab, env  # noqa: F401 (fixtures)
from .test_apply import counts

DNS_LAB = """
manifest "dns" {{
  settings = {{ nameserver = "{ns}", searchdomain = "lab.example" }}
  node "dns-tmpl" {{ type = "template"  image = "debian-13"  preset = "vm-xsmall"  vmid = 99081 }}
  node "dns-web" {{ type = "vm"  vmid = 99082  clone = {{ from = "dns-tmpl" }} }}
  node "dns-box" {{ type = "ct"  vmid = 99083  template = "debian-13-standard"  disk = 4 }}
}}
"""
WANT = ("10.0.0.53", "lab.example")


def _configs(sim) -> dict[int, dict]:  # type: ignore[no-untyped-def]
    return {g["vmid"]: g["config"] for g in read_state(sim)["vms"].values()}


def _dns(config: dict) -> tuple[str | None, str | None]:
    return config.get("nameserver"), config.get("searchdomain")


def _check(cli, site, sim) -> None:  # type: ignore[no-untyped-def]
    (site / "manifests" / "dns.pvp").write_text(DNS_LAB.format(ns=WANT[0]))
    code, out, err = cli("apply", "-M", "dns", "-H", "sim", "--yes")
    assert code == 0, out + err
    before = _configs(sim)
    assert _dns(before[99082]) == WANT and _dns(before[99083]) == WANT
    assert _dns(before[99081]) == (None, None)  # the template is never booted

    code, out, err = cli("apply", "-M", "dns", "-H", "sim", "--yes")
    assert code == 0 and counts(out)["ran"] == 0, out + err

    (site / "manifests" / "dns.pvp").write_text(DNS_LAB.format(ns="10.0.0.54"))
    code, out, err = cli("apply", "-M", "dns", "-H", "sim", "--yes")
    assert code == 0, out + err
    after = _configs(sim)
    for vmid in (99082, 99083):
        assert _dns(after[vmid]) == ("10.0.0.54", WANT[1])
    assert after[99082]["vmgenid"] == before[99082]["vmgenid"]  # the same clone, in place
    assert after[99083]["rootfs"] == before[99083]["rootfs"]  # the same container

    code, out, err = cli("destroy", "-M", "dns", "-H", "sim", "--yes")
    assert code == 0, out + err
    assert not set(_configs(sim)) & {99081, 99082, 99083}


def test_the_settings_dns_reaches_a_clone_and_a_container_and_changes_in_place(lab: Lab) -> None:
    _check(lambda *words: run_cli(lab.args(*words)), lab.site, lab.sim)


def test_the_same_over_the_https_api(env: ApiLab) -> None:  # noqa: F811 (a fixture)
    _check(env.cli, env.site, env.sim)
