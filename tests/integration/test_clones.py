"""Templates and linked clones on the simulator (issue 23, item 2).

The example `clones` manifest: a template made once from an image, and two linked
clones of it, configured over SSH like any VM. Re-applying runs nothing; destroying
removes the clones first, then the template (PVE refuses to destroy a template that
linked clones are children of, as the simulator does too).
"""

from __future__ import annotations

from tests.cli_runner import run_cli

from .conftest import Lab
from .test_apply import counts, resources


def test_template_and_two_linked_clones_apply_reapply_destroy(lab: Lab) -> None:
    code, out, err = run_cli(lab.args("apply", "-M", "clones", "-H", "sim", "--yes"))
    assert code == 0, out + err
    assert counts(out)["failed"] == 0
    vms = {v["name"]: v for v in lab.vms("clones")}
    assert sorted(vms) == ["debian-tmpl", "web-1", "web-2"]
    template = vms["debian-tmpl"]
    assert template["config"]["template"] == 1 and template["status"] == "stopped"
    base = template["config"]["scsi0"].split(",")[0]
    assert base == "local:99900/base-99900-disk-0.qcow2"
    for name, vmid, size in (("web-1", 99901, "16G"), ("web-2", 99902, "8G")):
        vm = vms[name]
        assert vm["status"] == "running"
        disk = vm["config"]["scsi0"]
        # a thin child of the template's base disk, grown to what the node asks for
        assert disk.startswith(f"{base}/{vmid}/vm-{vmid}-disk-0.qcow2,")
        assert f"size={size}" in disk
        assert "template" not in vm["config"]
    assert vms["web-1"]["config"]["cores"] == 1  # vm-xsmall's, not the template's 2

    code, out2, err2 = run_cli(lab.args("apply", "-M", "clones", "-H", "sim", "--yes"))
    assert code == 0, out2 + err2
    assert counts(out2)["ran"] == 0

    code, out3, err3 = run_cli(lab.args("destroy", "-M", "clones", "-H", "sim", "--yes"))
    assert code == 0, out3 + err3
    assert lab.vms("clones") == []
    assert resources(lab, "clones@sim") == {}
    done = [line for line in out3.splitlines() if ".destroy (" in line]
    assert len(done) == 3 and "node.debian-tmpl.destroy" in done[-1], out3


SWAP = """
manifest "tmplswap" {
  node "swap-tmpl" { type = "template" image = "debian-13" vmid = 99950 disk = DISK }
  node "swap-a" { type = "vm" preset = "vm-xsmall" vmid = 99951 clone = { from = "swap-tmpl" } }
  node "swap-b" {
    type = "vm"
    preset = "vm-xsmall"
    vmid = 99952
    disk = 12
    clone = { from = "swap-tmpl", linked = false }
  }
}
"""


def test_a_new_template_remakes_its_linked_clones_and_keeps_full_ones(lab: Lab) -> None:
    name = lab.manifest("tmplswap", SWAP.replace("DISK", "8"))
    code, out, err = run_cli(lab.args("apply", "-M", name, "-H", "sim", "--yes"))
    assert code == 0, out + err
    before = {v["name"]: v["config"]["vmgenid"] for v in lab.vms(name)}
    assert lab.vms(name) and len(before) == 3

    lab.manifest("tmplswap", SWAP.replace("DISK", "10"))
    code, out, err = run_cli(lab.args("plan", "-M", name, "-H", "sim"))
    assert code == 0, out + err
    # the plan says what PVE would otherwise refuse at apply, and what it means for the clones
    assert "its linked clones are destroyed first" in " ".join(out.split()), out
    assert "template: node.swap-tmpl.create is replaced (forces replacement)" in out, out
    code, out, err = run_cli(lab.args("apply", "-M", name, "-H", "sim", "--yes"))
    assert code == 0, out + err
    after = {v["name"]: v for v in lab.vms(name)}
    assert after["swap-tmpl"]["config"]["vmgenid"] != before["swap-tmpl"]
    assert "size=10G" in after["swap-tmpl"]["config"]["scsi0"]
    # the linked clone was destroyed with the old template and cloned from the new one
    assert after["swap-a"]["config"]["vmgenid"] != before["swap-a"]
    assert after["swap-a"]["config"]["scsi0"].startswith("local:99950/base-99950-disk-0.qcow2/")
    assert "size=10G" in after["swap-a"]["config"]["scsi0"]
    assert after["swap-a"]["status"] == "running"
    # the full clone is its own copy: kept
    assert after["swap-b"]["config"]["vmgenid"] == before["swap-b"]

    code, out, err = run_cli(lab.args("destroy", "-M", name, "-H", "sim", "--yes"))
    assert code == 0, out + err
    assert lab.vms(name) == []
