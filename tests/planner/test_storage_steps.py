"""Each plan level gets one `pve.storage.content` step per storage its steps use, first.

Why: a real PVE host refuses an `import` download, and has no `snippets/` directory, on a
storage whose content types lack them; a fresh PVE 9 install's `local` lacks `snippets`
and `images`, and a nested host's (PVE on Debian) lacks `import`. The step that makes
them so (or refuses, naming the command) must run before anything lands on the storage,
on every level, and the image must go to a file storage even when VM disks go to ZFS.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from pveplan.planner import StorageContentArgs, args_of
from pveplan.planner._plan import Plan, Step

from .test_diff_readable import compile_plan, tree, vm, yaml_manifest


def _steps(plan: Plan) -> dict[str, Step]:
    return {step.address: step for step in plan.steps}


def _set_datastore(site: Path, datastore: str) -> None:
    node_file = site / "nodes" / "sim.yaml"
    data = yaml.safe_load(node_file.read_text())
    node_file.write_text(yaml.safe_dump({**data, "datastore": datastore}))


def test_every_level_checks_its_storages_before_using_them(site: Path) -> None:
    plan = compile_plan(site, yaml_manifest(site, tree())).plan
    steps = _steps(plan)
    assert plan.steps[0].address == "storage.local.content"
    args = args_of(steps["storage.local.content"])
    assert args == StorageContentArgs(
        storage="local", content=("images", "import", "snippets"), enable=True
    )
    assert steps["image.debian-12.ensure"].deps == ("storage.local.content",)
    assert steps["node.side.create"].deps == ("storage.local.content",)
    for _, sub in plan.subplans.items():  # nested hosts: the same, on their own `local`
        first = sub.steps[0]
        assert first.kind == "pve.storage.content" and first.host == sub.host
        assert args_of(first) == args


def test_a_zfs_datastore_holds_disks_and_local_the_files(site: Path) -> None:
    _set_datastore(site, "local-zfs")
    plan = compile_plan(site, yaml_manifest(site, [vm("edge", 99200)])).plan
    steps = _steps(plan)
    assert [s.address for s in plan.steps[:2]] == [
        "storage.local.content",
        "storage.local-zfs.content",
    ]
    assert args_of(steps["storage.local.content"]).content == ("import", "snippets")
    assert args_of(steps["storage.local-zfs.content"]).content == ("images",)
    assert args_of(steps["image.debian-12.ensure"]).storage == "local"  # ZFS holds no files
    create = steps["node.edge.create"]
    assert args_of(create).storage == "local-zfs"
    assert create.deps == ("storage.local-zfs.content", "storage.local.content")


def test_the_setting_is_in_the_step_and_its_hash(site: Path) -> None:
    manifest = yaml_manifest(site, [vm("edge", 99200)])
    enabled = _steps(compile_plan(site, manifest).plan)
    site_yaml = site / "site.yaml"
    site_yaml.write_text(site_yaml.read_text() + "\nstorage:\n  enable_content: false\n")
    refused = _steps(compile_plan(site, manifest).plan)
    assert args_of(refused["storage.local.content"]).enable is False
    for address in ("storage.local.content", "node.edge.create", "node.edge.config"):
        assert refused[address].hash != enabled[address].hash
