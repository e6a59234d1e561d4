"""`pveplan import` over PVE's HTTPS API with a token, on the simulator: the guest's host
key comes through `GET .../agent/file-read` like every other request of the run, and a
VM pveplan made but whose store was lost is adopted back with the key read from the guest.
"""

from __future__ import annotations

import pytest

from pveplan.sim import read_state
from pveplan.store import open_store

from .test_api_transport import ApiLab, api_lab, env  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow


def test_import_reads_the_host_key_over_the_api_after_a_lost_store(env: ApiLab) -> None:  # noqa: F811
    site = ["-M", "n1-push", "-H", "sim"]
    code, out, err = env.cli("apply", *site, "--yes")
    assert code == 0, out + err
    for path in env.store.glob("store.sqlite*"):
        path.unlink()  # the store is lost; the VM stays
    since = len(env.api_calls())
    code, out, err = env.cli("import", *site, "--discover")
    assert code == 0, out + err
    assert "edge = VM 99001  (by its pveplan tag; running; host key SHA256:" in out
    reads = [c for c in env.api_calls()[since:] if c["path"].endswith("/agent/file-read")]
    assert [(c["method"], c["path"]) for c in reads] == [
        ("GET", "/nodes/{node}/qemu/{vmid}/agent/file-read")
    ]
    guest = env.sim.vm_dir("sim", 99001) / "etc" / "ssh" / "ssh_host_ed25519_key.pub"
    with open_store(env.store) as store:
        (edge,) = [r for r in store.resources("n1-push@sim") if r.address == "node.edge.create"]
    assert edge.outputs["host_key"].split() == guest.read_text().split()[:2]
    code, out, err = env.cli("plan", *site, "--detailed-exitcode")
    assert code == 2 and "to add" in out, out + err
    code, out, err = env.cli("apply", *site, "--yes")
    assert code == 0, out + err
    code, out, err = env.cli("plan", *site, "--detailed-exitcode")
    assert code == 0 and "No changes." in out, out + err
    assert env.cli("destroy", *site, "--yes")[0] == 0
    assert not [v for v in read_state(env.sim)["vms"].values() if v["vmid"] == 99001]
