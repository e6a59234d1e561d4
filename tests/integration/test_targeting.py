"""`-target NODE` on the simulator: only the target and its hosts are made or destroyed,
through a nested host's own executor too, and the rest of the workspace is left alone."""

from __future__ import annotations

from pveplan.store import open_store
from tests.cli_runner import run_cli

from .conftest import Lab

MANIFEST = """\
manifest "target-lab" {
  pattern = "tiered"
  node "tg-pve" {
    type = "pve"  spec = "pve"  preset = "vm-large"  image = "pve-9"  vmid = 97701
    node "tg-a" { type = "vm"  spec = "base"  preset = "vm-small"  image = "debian-12"  vmid = 97711 }
    node "tg-b" { type = "vm"  spec = "base"  preset = "vm-small"  image = "debian-12"  vmid = 97712 }
  }
  node "tg-flat" { type = "vm"  spec = "base"  preset = "vm-small"  image = "debian-12"  vmid = 97702 }
}
"""


def _applied(lab: Lab) -> str | None:
    with open_store(lab.store) as store:
        state = store.applied("target-lab@sim")
    return state.plan_hash if state is not None else None


def test_targeted_apply_and_destroy_touch_only_the_target_and_its_hosts(lab: Lab) -> None:
    name = lab.manifest("target-lab", MANIFEST)
    base = ["-M", name, "-H", "sim"]

    # Nothing applied yet: -target tg-a makes tg-a and the host it needs, nothing else.
    code, out, err = run_cli(lab.args("apply", *base, "-target", "tg-a", "-y"))
    assert code == 0, out + err
    assert "resource targeting is in effect" in err
    assert sorted(v["name"] for v in lab.vms(name)) == ["tg-a", "tg-pve"]
    assert _applied(lab) is None  # a partial view records no applied state

    # The whole manifest: what the targeted run made is reused, the rest is made.
    code, out, err = run_cli(lab.args("apply", *base, "-y"))
    assert code == 0, out + err
    assert sorted(v["name"] for v in lab.vms(name)) == ["tg-a", "tg-b", "tg-flat", "tg-pve"]
    full = _applied(lab)
    assert full is not None

    # Destroying one nested node goes through its host's executor and leaves the rest.
    code, out, err = run_cli(lab.args("destroy", *base, "-target", "tg-b", "-y"))
    assert code == 0, out + err
    assert sorted(v["name"] for v in lab.vms(name)) == ["tg-a", "tg-flat", "tg-pve"]
    assert _applied(lab) == full
    # The applied state is kept, but the next plan says tg-b is made again, not "No changes".
    code, out, err = run_cli(lab.args("plan", *base, "--detailed-exitcode"))
    assert code == 2, out + err
    assert "tg-b" in out and "No changes" not in out

    # A targeted apply of one flat node neither destroys nor re-makes anything else.
    code, out, err = run_cli(lab.args("apply", *base, "-target", "tg-flat", "-y"))
    assert code == 0, out + err
    assert sorted(v["name"] for v in lab.vms(name)) == ["tg-a", "tg-flat", "tg-pve"]

    # And the full apply brings back what the targeted destroy removed.
    code, out, err = run_cli(lab.args("apply", *base, "-y"))
    assert code == 0, out + err
    assert sorted(v["name"] for v in lab.vms(name)) == ["tg-a", "tg-b", "tg-flat", "tg-pve"]
    code, out, err = run_cli(lab.args("destroy", *base, "-y"))
    assert code == 0, out + err
    assert lab.vms(name) == []
