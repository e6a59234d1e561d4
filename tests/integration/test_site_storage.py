"""A homestak-style site config rehearses unchanged on the simulator (issue 19, item 5).

Why: a real node file says `datastore: local-zfs`, the catalog's images carry no
simulator pins, and a fresh PVE 9 host's `local` lacks `snippets`. The simulated host is
the host the node file describes (a zfspool `local-zfs`, no `local-lvm`), it has
internet, and pveplan's `pve.storage.content` step enables the content types its steps
need, or, with `storage: {enable_content: false}`, refuses with the command to run.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pveplan.sim import SimRoot, read_state, stop_daemon
from tests.cli_runner import run_cli

from .conftest import EXAMPLES

MANIFEST = {
    "schema_version": 2,
    "name": "zfs-lab",
    "nodes": [{"name": "z1", "type": "vm", "preset": "vm-small", "image": "debian-12"}],
}


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The example site config as a homestak user has it: no image pins, and a node file
    `father` with `datastore: local-zfs`, simulated."""
    site = tmp_path / "site-config"
    shutil.copytree(EXAMPLES, site)
    site_yaml = yaml.safe_load((site / "site.yaml").read_text())
    site_yaml.pop("images")
    (site / "site.yaml").write_text(yaml.safe_dump(site_yaml))
    for name, datastore in (("father", "local-zfs"), ("mother", None)):
        node = {"node": name, "api_token": "sim", "sim": True}
        if datastore:
            node["datastore"] = datastore
        (site / "nodes" / f"{name}.yaml").write_text(yaml.safe_dump(node))
    (site / "manifests" / "zfs-lab.yaml").write_text(yaml.safe_dump(MANIFEST))
    monkeypatch.setenv("PVEPLAN_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("PVEPLAN_SIM_DIR", raising=False)
    monkeypatch.delenv("HOMESTAK_SITE_CONFIG", raising=False)
    try:
        yield site
    finally:
        stop_daemon(SimRoot(tmp_path / "store" / "sim"))


def _apply(site: Path, host: str, verb: str = "apply") -> tuple[int, str]:
    code, out, err = run_cli(
        [verb, "-M", "zfs-lab", "-H", host, "--site-config", str(site), "--yes"]
    )
    return code, out + err


def test_a_zfs_node_with_unpinned_images_applies_and_reapplies(site: Path) -> None:
    code, out = _apply(site, "father")
    assert code == 0, out
    sim = SimRoot(site.parent / "store" / "sim")
    state = read_state(sim)
    assert sorted(state["storage_cfg"]["father"]) == ["local", "local-zfs"]
    assert "snippets" in state["storage_cfg"]["father"]["local"]["content"]  # enabled by the step
    vm = next(v for v in state["vms"].values() if v["name"] == "z1")
    assert vm["config"]["scsi0"].startswith(f"local-zfs:vm-{vm['vmid']}-disk-0,")
    image = sim.host_dir("father") / "var/lib/vz/import/debian-12.qcow2"
    assert image.read_bytes().startswith(b"pveplan-sim-download https://")  # internet
    code, again = _apply(site, "father")
    assert code == 0 and re.search(r"\b0 ran\b", again), again
    code, out = _apply(site, "father", "destroy")
    assert code == 0, out


def test_without_enable_content_the_step_names_the_command(site: Path) -> None:
    site_yaml = site / "site.yaml"
    site_yaml.write_text(site_yaml.read_text() + "storage:\n  enable_content: false\n")
    code, out = _apply(site, "mother")
    assert code != 0
    assert "storage 'local' on node mother lacks content type(s) snippets" in out
    assert "`pvesm set local --content backup,import,iso,snippets,vztmpl`" in out
    assert not any(
        v["name"] == "z1"
        for v in read_state(SimRoot(site.parent / "store" / "sim"))["vms"].values()
    )
