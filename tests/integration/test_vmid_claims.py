"""VMs without a pinned vmid, created in parallel, each get their own (issue 17 trials).

PVE's `/cluster/nextid` hands the same id to every create that asks before the first one
exists; two such creates used to collide ("VM 100 already exists"), and the loser's
recorded vm_id then made destroy refuse ("vmid 100 belongs to VM 'a'").
"""

from __future__ import annotations

from tests.cli_runner import run_cli

from .conftest import Lab

UNPINNED = """
manifest "unpinned" {
  pattern = "flat"
  settings = { parallelism = 4 }
  for i in range(1, 5) {
    node "u-${i}" {
      type = "vm"
      preset = "vm-xsmall"
      image = "debian-13"
    }
  }
}
"""


def test_parallel_unpinned_creates_get_distinct_vmids_and_destroy_cleanly(lab: Lab) -> None:
    name = lab.manifest("unpinned", UNPINNED)
    code, out, err = run_cli(lab.args("apply", "-M", name, "-H", "sim", "--yes"))
    assert code == 0, out + err
    vms = lab.vms(name)
    assert sorted(v["name"] for v in vms) == ["u-1", "u-2", "u-3", "u-4"]
    assert len({v["vmid"] for v in vms}) == 4
    code, out, err = run_cli(lab.args("destroy", "-M", name, "-H", "sim", "--yes"))
    assert code == 0, out + err
    assert lab.vms(name) == []
