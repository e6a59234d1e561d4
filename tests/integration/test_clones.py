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
