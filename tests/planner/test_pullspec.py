"""Pull nodes in plans: what they fetch, the hash all ends agree on, and their credential.

The hash a plan expects (`config.await_report`'s `spec_hash`) must be the hash the spec
server computes when it serves the node from the site config alone, or a node that
converged would be reported as having applied the wrong spec.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pveplan.dsl import load_manifest
from pveplan.planner._errors import PlanError
from pveplan.planner._planfile import encode_plan_file
from pveplan.planner._planning import build_plan_file
from pveplan.planner._pullspec import from_await_step
from pveplan.planner.siteconfig import load_site_config, resolve_manifest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "site-config"


def plan_for(site_root: Path, name: str, host: str = "sim"):
    site = load_site_config(site_root)
    loaded = load_manifest(str(site_root / "manifests" / f"{name}.yaml"))
    resolved = resolve_manifest(loaded, site, host)
    return site, build_plan_file(loaded, resolved, site, host, planned_against=None)


@pytest.fixture
def site_copy(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    shutil.copytree(EXAMPLES, root)
    return root


def test_a_pull_node_boots_with_its_pull_settings_and_the_driver_awaits_its_report() -> None:
    _, plan_file = plan_for(EXAMPLES, "n1-pull")
    plan = plan_file.plan
    create = plan.step("node.edge.create")
    assert create.args["cloud_init"]["pull"] == {
        "identity": "edge",
        "spec": "base",
        "auth": "network",
        "server": None,
    }
    config = plan.step("node.edge.config")
    assert config.kind == "config.await_report"
    assert config.refs == {"instance": "node.edge.create#pull_instance"}
    assert config.args["timeouts"] == {"spec": 300, "config": 300}
    # A pull node is never logged into: no wait for SSH, no push.
    assert "node.edge.wait_ssh" not in [s.address for s in plan.steps]


def test_the_expected_spec_hash_is_what_the_server_computes_from_the_site_alone() -> None:
    from pveplan.cli._catalog import catalog_for_plan, catalog_for_site

    site, plan_file = plan_for(EXAMPLES, "n2-pull")
    expected = {
        s.args["identity"]: s.args["spec_hash"]
        for _, s in plan_file.plan.walk()
        if s.kind == "config.await_report"
    }
    assert list(expected) == ["edge"]
    from_site = catalog_for_site(site)
    from_plan = catalog_for_plan(plan_file.plan, site)
    assert from_site.specs["edge"].spec_hash == expected["edge"]
    assert from_plan.specs["edge"].document == from_site.specs["edge"].document


def test_two_manifests_defining_one_node_differently_are_not_served(site_copy: Path) -> None:
    from pveplan.cli._catalog import catalog_for_site

    other = (
        (site_copy / "manifests" / "n1-pull.yaml").read_text().replace("spec: base", "spec: pve")
    )
    (site_copy / "manifests" / "other-pull.yaml").write_text(other.replace("n1-pull", "other"))
    catalog = catalog_for_site(load_site_config(site_copy))
    assert "edge" not in catalog.specs
    assert "two different specs" in catalog.conflicts["edge"]


def test_a_token_posture_needs_its_secret_and_the_plan_holds_only_its_digest(
    site_copy: Path,
) -> None:
    spec = site_copy / "specs" / "base.yaml"
    spec.write_text(spec.read_text().replace("posture: dev", "posture: stage"))
    with pytest.raises(PlanError) as refused:
        plan_for(site_copy, "n1-pull")
    assert "auth.site_token" in str(refused.value)

    secrets = site_copy / "secrets.yaml"
    canary = "CANARY-site-token-4f1e"
    secrets.write_text(secrets.read_text().replace("auth:\n", f'auth:\n  site_token: "{canary}"\n'))
    _, plan_file = plan_for(site_copy, "n1-pull")
    create = plan_file.plan.step("node.edge.create")
    assert "auth.site_token" in [s.name for s in create.secrets]
    assert canary.encode() not in encode_plan_file(plan_file)
    # The credential is not part of the spec: the server's view drops it.
    pulled = from_await_step(plan_file.plan.step("node.edge.config"))
    assert "auth.site_token" not in [s.name for s in pulled.secrets]


def test_a_container_in_pull_mode_is_refused_with_the_reason(site_copy: Path) -> None:
    path = site_copy / "manifests" / "ct-pull.yaml"
    path.write_text(
        "schema_version: 2\nname: ct-pull\nnodes:\n"
        "  - {name: box, type: ct, template: debian-12-standard, spec: base, execution: {mode: pull}}\n"
    )
    with pytest.raises(PlanError) as refused:
        plan_for(site_copy, "ct-pull")
    assert "container in pull mode" in str(refused.value)


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(["cron", "chrony", "nginx", "rsyslog"]))
def test_a_spec_change_moves_the_spec_hash_and_only_that_nodes_steps(service: str) -> None:
    """A service is not cloud-init's business: only the awaited spec (and the delegate
    holding it) changes; the VM is not replaced."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "site"
        shutil.copytree(EXAMPLES, root)
        _, before = plan_for(root, "n2-mixed")
        spec = root / "specs" / "base.yaml"
        text = spec.read_text()
        extra = f"    - curl\n  services:\n    enable:\n      - {service}\n"
        spec.write_text(text.replace("    - curl\n", extra, 1))
        _, after = plan_for(root, "n2-mixed")
    old = {a: s for a, s in ((s.address, s) for _, s in before.plan.walk())}
    new = {a: s for a, s in ((s.address, s) for _, s in after.plan.walk())}
    changed = sorted(a for a in new if new[a].hash != old[a].hash)
    assert changed == ["node.edge.config", "node.root-pve.delegate"]
    assert new["node.edge.config"].args["spec_hash"] != old["node.edge.config"].args["spec_hash"]


def test_each_node_is_served_only_the_secrets_its_own_spec_names(site_copy: Path) -> None:
    import json

    from pveplan.cli._catalog import catalog_for_site

    alice = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA5gr2yJzAHgb2/rdC4FK8hQfuUuDAaqcPMi7lktEe8t alice-CANARY@x"
    bob = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBfmc4d/cFG5ANNYP3p19L82xaoHaEpvOabe1aE6ycGq bob-CANARY@x"
    secrets = site_copy / "secrets.yaml"
    secrets.write_text(
        secrets.read_text().replace(
            "ssh_keys:\n", f'ssh_keys:\n  alice: "{alice}"\n  bob: "{bob}"\n'
        )
    )
    base = (site_copy / "specs" / "base.yaml").read_text()
    for who in ("alice", "bob"):
        (site_copy / "specs" / f"{who}.yaml").write_text(
            base.replace("      sudo: true\n", f"      sudo: true\n      ssh_keys: [{who}]\n")
        )
    (site_copy / "manifests" / "pair.yaml").write_text(
        "schema_version: 2\nname: pair\nexecution: {default_mode: pull}\nnodes:\n"
        "  - {name: node-a, type: vm, spec: alice, image: debian-12}\n"
        "  - {name: node-b, type: vm, spec: bob, image: debian-12}\n"
    )
    catalog = catalog_for_site(load_site_config(site_copy))
    served = {name: json.loads(catalog.specs[name].document) for name in ("node-a", "node-b")}
    assert served["node-a"]["secrets"] == {"ssh_keys.alice": alice}
    assert served["node-b"]["secrets"] == {"ssh_keys.bob": bob}
    # Neither document carries a credential or another secret, by name or by value.
    for document in served.values():
        text = json.dumps(document)
        assert "signing_key" not in text and "example-signing-key" not in text
