"""resolve_manifest: every foreign key looked up, every missing one located and suggested."""

from __future__ import annotations

import textwrap
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pveplan import dsl
from pveplan.planner import PlanError
from pveplan.planner.siteconfig import (
    ResolvedManifest,
    SecretRef,
    load_site_config,
    resolve_manifest,
)

from .conftest import FIXTURE, MANIFESTS, manifest, write

SITE_PACKAGES = ("htop", "curl", "wget", "git", "vim", "tmux", "tree", "jq", "rsync")
ALL_KEYS = (SecretRef(name="ssh_keys.alice"), SecretRef(name="ssh_keys.bob"))


def one_node(**fields: object) -> str:
    body = ", ".join(
        f"{k}: {v}" for k, v in {"name": "a", "type": "vm", "image": "debian-12", **fields}.items()
    )
    return f"schema_version: 2\nname: m\nnodes:\n  - {{{body}}}\n"


def resolve_text(site_dir: Path, text: str, host: str | None = None) -> ResolvedManifest:
    return resolve_manifest(manifest(site_dir, text), load_site_config(site_dir), host)


def errors_of(site_dir: Path, text: str, host: str | None = None) -> list[dsl.Diagnostic]:
    with pytest.raises(PlanError) as info:
        resolve_text(site_dir, text, host)
    return list(info.value.diagnostics)


# ---- the homestak manifests -------------------------------------------------------------


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.stem for p in MANIFESTS])
def test_every_fixture_manifest_resolves(path: Path, fixture_site) -> None:
    loaded = dsl.load_manifest(str(path))
    resolved = resolve_manifest(loaded, fixture_site, "father")
    assert resolved.name == loaded.manifest.name
    assert [n.name for n in resolved.nodes] == [n.name for n in loaded.manifest.nodes]
    assert resolved.host == "father" and resolved.host_config.name == "father"
    assert all(w.severity == "warning" for w in resolved.warnings)
    for node, written in zip(resolved.nodes, loaded.manifest.nodes, strict=True):
        assert node.image is not None and node.image.name == written.image
        preset = fixture_site.presets[written.preset]
        assert (node.cores, node.memory) == (preset.cores, preset.memory)
        assert node.disk == (written.disk or preset.disk)
        assert (node.spec is None) == (written.spec is None)


def test_n2_tiered_in_detail(fixture_site) -> None:
    loaded = dsl.load_manifest(str(FIXTURE / "manifests" / "n2-tiered.yaml"))
    resolved = resolve_manifest(loaded, fixture_site)
    root, edge = resolved.nodes
    assert (root.name, root.type, root.parent, root.depth, root.vmid) == (
        "root-pve",
        "pve",
        None,
        0,
        99011,
    )
    assert (root.cores, root.memory, root.disk) == (4, 8192, 64)  # disk overrides vm-large's 40
    assert (edge.parent, edge.depth, edge.mode) == ("root-pve", 1, "push")
    assert (edge.cores, edge.memory, edge.disk) == (2, 2048, 10)
    assert edge.spec_name == "base" and edge.posture_name == "dev"
    assert edge.posture == fixture_site.postures["dev"]
    # site defaults, then the dev posture's, then the spec's (htop, curl: already there)
    assert edge.packages == (*SITE_PACKAGES, "net-tools", "strace", "tcpdump")
    assert edge.timezone == "America/Denver"
    assert edge.vm_user == "homestak" and edge.bridge == "vmbr0"
    assert edge.authorized_keys == ALL_KEYS
    (user,) = edge.spec.users
    assert (user.name, user.sudo, user.ssh_keys) == ("homestak", True, ALL_KEYS)
    assert edge.spec.hostname == "edge"
    assert root.spec.services_enable == ("pveproxy", "pvedaemon", "pvestatd")
    assert root.spec.services_disable == ("rpcbind",)
    assert root.spec.pve.remove_subscription_nag is True
    assert "proxmox-ve" in root.packages and root.packages.count("htop") == 1
    assert resolved.host is None and resolved.host_config is None


def test_modes_and_depths(fixture_site) -> None:
    mixed = resolve_manifest(
        dsl.load_manifest(str(FIXTURE / "manifests" / "n2-mixed.yaml")), fixture_site
    )
    assert [n.mode for n in mixed.nodes] == ["push", "pull"]
    deep = resolve_manifest(
        dsl.load_manifest(str(FIXTURE / "manifests" / "n3-deep.yaml")), fixture_site
    )
    assert [n.depth for n in deep.nodes] == [0, 1, 2]


def test_resolution_is_deterministic(fixture_site) -> None:
    path = str(FIXTURE / "manifests" / "n3-deep.yaml")
    first = msgspec.json.encode(resolve_manifest(dsl.load_manifest(path), fixture_site, "mother"))
    again = msgspec.json.encode(
        resolve_manifest(dsl.load_manifest(path), load_site_config(FIXTURE), "mother")
    )
    assert first == again


# ---- sizes ------------------------------------------------------------------------------


def test_manifest_overrides_beat_the_preset(site_dir) -> None:
    (node,) = resolve_text(site_dir, one_node(preset="vm-large", cores=6, memory=1024)).nodes
    assert (node.cores, node.memory, node.disk) == (6, 1024, 40)


def test_no_preset_means_vm_small_sizes(site_dir) -> None:
    (node,) = resolve_text(site_dir, one_node()).nodes
    assert (node.cores, node.memory, node.disk) == (2, 2048, 10)
    (node,) = resolve_text(site_dir, one_node(disk=5)).nodes
    assert node.disk == 5


# ---- unresolved foreign keys --------------------------------------------------------------


def test_unknown_preset(site_dir) -> None:
    (diag,) = errors_of(site_dir, one_node(preset="vm-smal"))
    assert diag.summary == "unknown preset 'vm-smal'"
    assert diag.detail.startswith(
        "did you mean 'vm-small'? presets that exist: vm-large, vm-medium"
    )
    assert diag.location.file.endswith("manifests/test.yaml")
    assert (diag.location.line, diag.location.col) == (4, 51)


def test_unknown_spec(site_dir) -> None:
    (diag,) = errors_of(site_dir, one_node(spec="bsae"))
    assert diag.summary == "unknown spec 'bsae'"
    assert "did you mean 'base'? specs that exist: base, pve" in diag.detail
    assert diag.location.line == 4 and diag.location.source_line.endswith("spec: bsae}")


def test_unknown_image(site_dir) -> None:
    (diag,) = errors_of(site_dir, one_node(image="debian-1"))
    assert diag.summary == "unknown image 'debian-1'"
    assert "did you mean" in diag.detail and "debian-12" in diag.detail
    assert (diag.location.line, diag.location.col) == (4, 32)


def test_unknown_posture_is_located_in_the_spec(site_dir) -> None:
    write(site_dir, {"specs/base.yaml": "schema_version: 1\naccess:\n  posture: devv\n"})
    (diag,) = errors_of(site_dir, one_node(spec="base"))
    assert diag.summary == "unknown posture 'devv'"
    assert "did you mean 'dev'? postures that exist: dev, local, prod, stage" in diag.detail
    assert diag.location.file == str(site_dir / "specs" / "base.yaml")
    assert (diag.location.line, diag.location.col) == (3, 12)


def test_default_posture_must_exist_too(site_dir) -> None:
    write(site_dir, {"specs/base.yaml": "schema_version: 1\n", "postures/dev.yaml": None})
    (diag,) = errors_of(site_dir, one_node(spec="base"))
    assert diag.summary == "unknown posture 'dev'"
    assert diag.location.file.endswith("base.yaml")


def test_unknown_ssh_key_is_located_in_the_spec(site_dir) -> None:
    write(
        site_dir,
        {
            "specs/base.yaml": "schema_version: 1\naccess:\n  users:\n    - name: ops\n      ssh_keys: [bob, alcie]\n"
        },
    )
    (diag,) = errors_of(site_dir, one_node(spec="base"))
    assert diag.summary == "unknown ssh key 'alcie'"
    assert "did you mean 'alice'? ssh keys that exist: alice, bob" in diag.detail
    assert (diag.location.line, diag.location.col) == (5, 23)


def test_unknown_ssh_key_without_secrets_file_says_so(site_dir) -> None:
    write(
        site_dir,
        {
            "secrets.yaml": None,
            "specs/base.yaml": "schema_version: 1\naccess:\n  users: [{name: x, ssh_keys: [alice]}]\n",
        },
    )
    (diag,) = errors_of(site_dir, one_node(spec="base"))
    assert "secrets.yaml does not exist" in diag.detail


def test_unknown_host(site_dir) -> None:
    (diag,) = errors_of(site_dir, one_node(), host="mothr")
    assert diag.summary == "unknown host 'mothr'"
    assert "did you mean 'mother'? hosts that exist: father, mother" in diag.detail


def test_unknown_key_in_a_hosts_file(site_dir) -> None:
    write(site_dir, {"hosts/srv.yaml": "access:\n  authorized_keys: [alice, bobb]\n"})
    (diag,) = errors_of(site_dir, one_node(), host="srv")
    assert diag.summary == "unknown ssh key 'bobb'" and "did you mean 'bob'?" in diag.detail
    assert diag.location.file.endswith("hosts/srv.yaml") and diag.location.line == 2


def test_every_unresolved_key_is_reported_in_source_order(site_dir) -> None:
    write(site_dir, {"specs/base.yaml": "schema_version: 1\naccess:\n  posture: prd\n"})
    text = """\
    schema_version: 2
    name: many
    nodes:
      - {name: a, type: vm, image: debian-12, preset: vm-tiny}
      - {name: b, type: vm, image: debain-12, spec: nope}
      - {name: c, type: vm, image: debian-12, spec: base}
      - {name: d, type: vm, image: debian-12, spec: base, preset: vm-hug}
    """
    diags = errors_of(site_dir, textwrap.dedent(text), host="fathr")
    assert [d.summary for d in diags] == [
        "unknown host 'fathr'",  # no position: first
        "unknown preset 'vm-tiny'",
        "unknown image 'debain-12'",  # written before the spec on its line
        "unknown spec 'nope'",
        "unknown preset 'vm-hug'",
        "unknown posture 'prd'",  # once, though two nodes use the spec; its file comes after
    ]
    assert [d.location.line if d.location else None for d in diags] == [None, 4, 5, 5, 7, 3]
    assert all(d.detail for d in diags)


def partial(site_dir: Path, text: str) -> dsl.LoadedManifest:
    path = write(site_dir, {"manifests/partial.yaml": text}) / "manifests" / "partial.yaml"
    return dsl.load_manifest(str(path), keep_going=True)


def errors_of_partial(site_dir: Path, loaded: dsl.LoadedManifest) -> list[dsl.Diagnostic]:
    with pytest.raises(PlanError) as info:
        resolve_manifest(loaded, load_site_config(site_dir))
    return list(info.value.diagnostics)


def test_a_manifest_s_own_errors_and_its_unknown_names_come_out_together(site_dir) -> None:
    text = """\
    schema_version: 2
    name: m
    nodes:
      - {name: a, type: vm, image: debian-12, preset: vm-tiny, vmid: 101}
      - {name: b, type: vm, image: debian-12, vmid: 101, spec: nope}
      - {name: c, type: vm, image: debian-12, parent: ghost}
    """
    loaded = partial(site_dir, textwrap.dedent(text))
    diags = errors_of_partial(site_dir, loaded)
    assert [(d.location.line, d.summary) for d in diags] == [
        (4, "unknown preset 'vm-tiny'"),
        (5, "vmid 101 of 'b' is already used by 'a'"),  # the manifest's own, in source order
        (5, "unknown spec 'nope'"),
        (6, "node 'c' has unknown parent 'ghost'"),
    ]


def test_a_parent_cycle_with_every_name_known_is_refused_not_resolved(site_dir) -> None:
    """Depths of a cyclic tree have no answer: resolving must refuse, not loop."""
    text = """\
    schema_version: 2
    name: m
    pattern: tiered
    nodes:
      - {name: a, type: pve, image: pve-9, parent: b}
      - {name: b, type: pve, image: pve-9, parent: a}
    """
    loaded = partial(site_dir, textwrap.dedent(text))
    with pytest.raises(dsl.DslError) as info:
        resolve_manifest(loaded, load_site_config(site_dir))
    assert [d.summary for d in info.value.diagnostics] == ["parent cycle: a -> b -> a"]


def test_the_same_unknown_spec_is_reported_at_each_node(site_dir) -> None:
    text = "schema_version: 2\nname: m\nnodes:\n"
    text += "".join(
        f"  - {{name: n{i}, type: vm, image: debian-12, spec: gone}}\n" for i in range(2)
    )
    diags = errors_of(site_dir, text)
    assert [(d.summary, d.location.line) for d in diags] == [
        ("unknown spec 'gone'", 4),
        ("unknown spec 'gone'", 5),
    ]


def test_a_broken_file_is_reported_alongside_the_rest(site_dir) -> None:
    write(site_dir, {"presets/vm-small.yaml": "cores: two\nmemory: 2048\ndisk: 10\n"})
    text = "schema_version: 2\nname: m\nnodes:\n"
    text += "  - {name: a, type: vm, image: debian-12, preset: vm-small}\n"
    text += "  - {name: b, type: vm, image: debian-12, preset: vm-small, spec: nope}\n"
    diags = errors_of(site_dir, text)
    assert [d.summary for d in diags[:1]] == ["unknown spec 'nope'"]  # the manifest's file first
    assert diags[1].location.file.endswith("presets/vm-small.yaml")
    assert "expected an integer" in diags[1].summary and len(diags) == 2  # once for two nodes


def test_missing_directory_is_mentioned(tmp_path) -> None:
    (diag,) = errors_of(tmp_path, one_node(preset="vm-small"))
    assert "presets that exist: (none)" in diag.detail
    assert "there is no presets/ directory" in diag.detail


# ---- spec content ------------------------------------------------------------------------


def test_explicit_keys_empty_keys_and_all_keys(site_dir) -> None:
    spec = """\
    schema_version: 1
    access:
      users:
        - {name: everyone}
        - {name: only-bob, ssh_keys: [bob]}
        - {name: nobody, ssh_keys: []}
    config:
      locale: C.UTF-8
    """
    write(site_dir, {"specs/base.yaml": spec})
    (node,) = resolve_text(site_dir, one_node(spec="base")).nodes
    keys = {u.name: u.ssh_keys for u in node.spec.users}
    assert keys == {
        "everyone": ALL_KEYS,
        "only-bob": (SecretRef(name="ssh_keys.bob"),),
        "nobody": (),
    }
    assert node.spec.config_extra == {"locale": "C.UTF-8"}


def test_timezone_falls_back_to_site_then_utc(site_dir) -> None:
    write(site_dir, {"specs/base.yaml": "schema_version: 1\n"})
    (node,) = resolve_text(site_dir, one_node(spec="base")).nodes
    assert node.timezone == "America/Denver"
    write(site_dir, {"site.yaml": "defaults: {}\n"})
    (node,) = resolve_text(site_dir, one_node(spec="base")).nodes
    assert node.timezone == "UTC" and node.vm_user == "homestak" and node.bridge == "vmbr0"
    assert node.packages == ("net-tools", "strace", "tcpdump")  # the dev posture's


def test_identity_and_domain(site_dir) -> None:
    write(
        site_dir,
        {
            "site.yaml": "defaults:\n  domain: home.arpa\n",
            "specs/fixed.yaml": "schema_version: 1\nidentity: {hostname: gateway}\n",
        },
    )
    (node,) = resolve_text(site_dir, one_node(spec="fixed")).nodes
    assert (node.spec.hostname, node.spec.domain) == ("gateway", "home.arpa")


def test_no_ssh_keys_at_all_is_a_warning(site_dir) -> None:
    write(site_dir, {"secrets.yaml": None})
    resolved = resolve_text(site_dir, one_node())
    assert resolved.nodes[0].authorized_keys == ()
    assert any(w.summary.startswith("no ssh keys") for w in resolved.warnings)


package_names = st.lists(st.sampled_from(["vim", "git", "jq", "curl", "htop", "tmux"]), max_size=5)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(site=package_names, posture=package_names, spec=package_names)
def test_packages_merge_in_order_without_duplicates(site_dir, site, posture, spec) -> None:
    write(
        site_dir,
        {
            "site.yaml": f"defaults:\n  packages: {site}\n",
            "postures/dev.yaml": f"packages: {posture}\n",
            "specs/base.yaml": f"schema_version: 1\nplatform:\n  packages: {spec}\n",
        },
    )
    (node,) = resolve_text(site_dir, one_node(spec="base")).nodes
    expected: list[str] = []
    for name in [*site, *posture, *spec]:
        if name not in expected:
            expected.append(name)
    assert node.packages == tuple(expected)
