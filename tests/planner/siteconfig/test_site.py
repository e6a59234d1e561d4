"""load_site_config: the homestak files, strict checking, layouts, hosts, laziness."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from pveplan import dsl
from pveplan.planner import PlanError
from pveplan.planner.siteconfig import HostConfig, Preset, SecretRef, load_site_config

from .conftest import FIXTURE, site_with, write

# homestak.md: vm-xsmall 1/1024/8, vm-small 2/2048/10, vm-medium 2/4096/20,
# vm-large 4/8192/40, vm-xlarge 8/16384/80.
PRESETS = {
    "vm-xsmall": (1, 1024, 8),
    "vm-small": (2, 2048, 10),
    "vm-medium": (2, 4096, 20),
    "vm-large": (4, 8192, 40),
    "vm-xlarge": (8, 16384, 80),
}


def test_presets_are_homestaks(fixture_site) -> None:
    assert sorted(fixture_site.presets) == sorted(PRESETS)
    for name, (cores, memory, disk) in PRESETS.items():
        assert fixture_site.presets[name] == Preset(cores=cores, memory=memory, disk=disk)


def test_specs_postures_and_site_defaults(fixture_site) -> None:
    assert list(fixture_site.specs) == ["base", "pve"]
    assert list(fixture_site.postures) == ["dev", "local", "prod", "stage"]
    pve = fixture_site.specs["pve"]
    assert pve.platform.services.enable == ("pveproxy", "pvedaemon", "pvestatd")
    assert pve.config.pve is not None and pve.config.pve.remove_subscription_nag is True
    assert fixture_site.postures["prod"].auth.method == "node_token"
    assert fixture_site.postures["dev"].ssh.permit_root_login == "yes"
    defaults = fixture_site.site.defaults
    assert defaults.timezone == "America/Denver"
    assert defaults.host_user == "root"
    assert defaults.vm_user == "homestak"
    assert defaults.bridge == "vmbr0"
    assert defaults.packages[:3] == ("htop", "curl", "wget")
    assert fixture_site.host_names() == ("father", "mother")


def test_loading_the_reference_site_config_is_fast() -> None:
    best = min(_timed(lambda: load_site_config(FIXTURE)) for _ in range(5))
    assert best < 0.05


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def test_missing_root_is_a_plan_error(tmp_path) -> None:
    with pytest.raises(PlanError, match="does not exist"):
        load_site_config(tmp_path / "absent")


def test_missing_site_yaml_means_homestak_defaults(tmp_path) -> None:
    site = load_site_config(tmp_path)
    assert site.site.defaults.vm_user == "homestak"
    assert site.site.defaults.bridge == "vmbr0"
    assert len(site.presets) == 0
    assert "debian-12" in site.images


def test_unknown_preset_key_is_located_with_a_suggestion(site_dir) -> None:
    site = site_with(site_dir, {"presets/vm-small.yaml": "cores: 2\nmemroy: 2048\ndisk: 10\n"})
    with pytest.raises(dsl.DslError) as info:
        site.presets["vm-small"]
    diags = info.value.diagnostics
    unknown = next(d for d in diags if "memroy" in d.summary)
    assert unknown.location.file.endswith("vm-small.yaml")
    assert (unknown.location.line, unknown.location.col) == (2, 1)
    assert "did you mean 'memory'?" in unknown.detail
    assert any("missing required key 'memory'" in d.summary for d in diags)


def test_posture_values_are_checked(site_dir) -> None:
    site = site_with(site_dir, {"postures/dev.yaml": "auth:\n  method: token\n"})
    with pytest.raises(dsl.DslError) as info:
        site.postures["dev"]
    assert info.value.location.line == 2
    assert "node_token" in info.value.detail


def test_unknown_spec_key_is_an_error(site_dir) -> None:
    site = site_with(site_dir, {"specs/base.yaml": "schema_version: 1\nplatfrom: {}\n"})
    with pytest.raises(dsl.DslError) as info:
        site.specs["base"]
    assert "did you mean 'platform'?" in info.value.detail


def test_spec_config_keeps_its_additional_keys(site_dir) -> None:
    site = site_with(
        site_dir,
        {
            "specs/base.yaml": """\
            schema_version: 1
            config:
              timezone: UTC
              locale: en_US.UTF-8
              sysctl: {vm.swappiness: 10}
            """
        },
    )
    config = site.specs["base"].config
    assert config.timezone == "UTC"
    assert config.extra == {"locale": "en_US.UTF-8", "sysctl": {"vm.swappiness": 10}}


def test_empty_preset_file_reports_missing_keys_at_the_file(site_dir) -> None:
    site = site_with(site_dir, {"presets/vm-small.yaml": "# nothing yet\n"})
    with pytest.raises(dsl.DslError) as info:
        site.presets["vm-small"]
    assert info.value.location.file.endswith("vm-small.yaml")
    assert "missing required key" in info.value.summary


def test_site_yaml_defaults_are_strict(site_dir) -> None:
    write(site_dir, {"site.yaml": "defaults:\n  timezon: UTC\n"})
    with pytest.raises(dsl.DslError) as info:
        load_site_config(site_dir)
    assert info.value.location.line == 2
    assert "did you mean 'timezone'?" in info.value.detail


def test_site_yaml_accepts_every_documented_default(site_dir) -> None:
    write(
        site_dir,
        {
            "site.yaml": """\
            defaults:
              gateway: 10.0.0.1
              dns_servers: [10.0.0.1]
              domain: home.arpa
              timezone: UTC
              host_user: admin
              vm_user: ops
              packages: [vim]
              server_url: https://controller:44443
              bridge: vmbr1
              image_release: v1.2
            trusted_plan_keys: ["ssh-ed25519 AAAATRUSTED ci@test"]
            """
        },
    )
    site = load_site_config(site_dir)
    assert site.site.defaults.bridge == "vmbr1"
    assert site.site.trusted_plan_keys == ("ssh-ed25519 AAAATRUSTED ci@test",)


def test_files_are_read_only_when_looked_up(site_dir) -> None:
    # A broken spec that nothing looks up does not stop anything else.
    site = site_with(site_dir, {"specs/broken.yaml": "schema_version: [\n"})
    assert "broken" in site.specs
    assert site.specs["base"].access.posture == "dev"
    assert site.presets["vm-small"].cores == 2
    with pytest.raises(dsl.DslError, match="YAML syntax error"):
        site.specs["broken"]


def test_unknown_name_is_a_key_error(fixture_site) -> None:
    with pytest.raises(KeyError):
        fixture_site.presets["vm-huge"]
    assert "vm-huge" not in fixture_site.presets


def test_old_v2_layout_is_found(tmp_path) -> None:
    root = tmp_path / "sc"
    (root / "v2").mkdir(parents=True)
    for kind in ("presets", "specs", "postures"):
        shutil.copytree(FIXTURE / kind, root / "v2" / kind)
    shutil.copy(FIXTURE / "site.yaml", root / "site.yaml")
    site = load_site_config(root)
    assert site.presets["vm-large"].memory == 8192
    assert site.specs["pve"].access.posture == "dev"
    assert "stage" in site.postures


def test_root_layout_wins_over_v2(site_dir) -> None:
    write(site_dir, {"v2/presets/vm-small.yaml": "cores: 9\nmemory: 9999\ndisk: 99\n"})
    write(site_dir, {"v2/presets/only-old.yaml": "cores: 9\nmemory: 9999\ndisk: 99\n"})
    site = load_site_config(site_dir)
    assert site.presets["vm-small"].cores == 2
    assert "only-old" not in site.presets


def test_each_kind_falls_back_to_v2_on_its_own(site_dir) -> None:
    shutil.move(str(site_dir / "postures"), str(site_dir / "v2" / "postures"))
    site = load_site_config(site_dir)
    assert site.postures["prod"].fail2ban.enabled is True
    assert site.presets["vm-small"].cores == 2


# ---- hosts ----------------------------------------------------------------------------


def test_node_file_merges_over_site_defaults(fixture_site) -> None:
    father = fixture_site.host("father")
    assert isinstance(father, HostConfig)
    assert father.source == "nodes" and father.is_pve
    assert father.file == str(FIXTURE / "nodes" / "father.yaml")
    assert father.ssh_host == "father.core"  # from api_endpoint
    assert father.ssh_user == "root"  # site.yaml defaults.host_user
    assert father.api_token == SecretRef(name="api_tokens.father")
    assert father.datastore == "local-zfs"
    assert father.timezone == "America/Denver"
    assert fixture_site.host("mother").ssh_host == "10.0.12.62"  # ip wins


def test_hosts_file_is_the_ssh_only_fallback(site_dir) -> None:
    site = site_with(
        site_dir,
        {
            "hosts/srv1.yaml": """\
            host: srv1
            network:
              interfaces:
                vmbr0: {type: bridge, ports: [eno1], address: 192.0.2.7/24, gateway: 192.0.2.1}
            storage:
              zfs_pools:
                - name: rpool
                  devices: [sda]
            timezone: Europe/Oslo
            access:
              ssh_user: admin
              authorized_keys: [alice]
            """
        },
    )
    srv1 = site.host("srv1")
    assert srv1.source == "hosts" and not srv1.is_pve
    assert srv1.file.endswith("hosts/srv1.yaml")
    assert srv1.ssh_host == "192.0.2.7"
    assert srv1.ssh_user == "admin"
    assert srv1.timezone == "Europe/Oslo"
    assert srv1.api_token is None
    assert srv1.authorized_keys == (SecretRef(name="ssh_keys.alice"),)
    assert site.host_names() == ("father", "mother", "srv1")


def test_nodes_file_wins_over_hosts_file(site_dir) -> None:
    site = site_with(site_dir, {"hosts/father.yaml": "ip: 192.0.2.99\n"})
    assert site.host("father").source == "nodes"
    assert site.host_names() == ("father", "mother")


def test_unknown_host_suggests_the_closest(fixture_site) -> None:
    with pytest.raises(PlanError) as info:
        fixture_site.host("fathr")
    assert info.value.summary == "unknown host 'fathr'"
    assert "did you mean 'father'?" in info.value.detail
    assert "hosts that exist: father, mother" in info.value.detail


def test_host_files_are_strict(site_dir) -> None:
    site = site_with(site_dir, {"nodes/father.yaml": "api_endpiont: https://x:8006\n"})
    with pytest.raises(dsl.DslError) as info:
        site.host("father")
    assert "did you mean 'api_endpoint'?" in info.value.detail


def test_repr_names_the_root(fixture_site) -> None:
    assert repr(fixture_site) == f"SiteConfig({str(FIXTURE)!r})"
    assert isinstance(FIXTURE, Path)
