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
    # With the image already ensured (cached), every create asks for the host's driver at
    # the same moment: they must still share one, and so one set of vmid claims.
    from .test_apply import specless

    warm = lab.manifest("warm", specless("warm", 1, 93700))
    assert run_cli(lab.args("apply", "-M", warm, "-H", "sim", "--yes"))[0] == 0
    assert run_cli(lab.args("destroy", "-M", warm, "-H", "sim", "--yes"))[0] == 0
    name = lab.manifest("unpinned", UNPINNED)
    code, out, err = run_cli(lab.args("apply", "-M", name, "-H", "sim", "--yes"))
    assert code == 0, out + err
    vms = lab.vms(name)
    assert sorted(v["name"] for v in vms) == ["u-1", "u-2", "u-3", "u-4"]
    assert len({v["vmid"] for v in vms}) == 4
    code, out, err = run_cli(lab.args("destroy", "-M", name, "-H", "sim", "--yes"))
    assert code == 0, out + err
    assert lab.vms(name) == []


def test_a_create_cut_off_between_pves_two_config_writes_is_cleared_and_redone(lab: Lab) -> None:
    """PVE writes a new VM's config empty and locked `create` first, then whole: a kill in
    between leaves a nameless locked VM at the pinned vmid. The store already holds the
    host key kept just before that create, which is how pveplan knows it is its own."""
    from pveplan.sim._state import allocate_address, locked_state, vm_key
    from pveplan.store import open_store

    from .test_apply import specless

    name = lab.manifest("cutoff", specless("cutoff", 1, 93600))
    assert run_cli(["sim", "up"])[0] == 0
    with open_store(lab.store) as store:
        store.put_secret(f"hostkey/{name}@sim/node.w-1.create", b"kept before the create")
    with locked_state(lab.sim) as state:
        state["vms"][vm_key("sim", 93601)] = {
            "vmid": 93601,
            "node": "sim",
            "name": None,
            "status": "stopped",
            "config": {},
            "lock": "create",
            "started_at": None,
            "address": allocate_address(state),
        }
    code, out, err = run_cli(lab.args("apply", "-M", name, "-H", "sim", "--yes"))
    assert code == 0, out + err
    (vm,) = [v for v in lab.vms() if v["vmid"] == 93601]
    assert vm["name"] == "w-1" and vm["status"] == "running" and not vm.get("lock")
    assert run_cli(lab.args("destroy", "-M", name, "-H", "sim", "--yes"))[0] == 0
    assert [v for v in lab.vms() if v["vmid"] == 93601] == []
