"""The guest agent's `file-read`, as PVE 9.1 serves it, over both surfaces.

Why: `pveplan import` takes a guest's SSH host key through the agent (a channel that
does not rest on the guest's own SSH identity), so the simulator must answer it as PVE
does: the agent configured and the VM running (PVE's errors otherwise, in PVE's order),
`content` decoded by default or base64 with `decode=0`, `truncated` when `count` stops
short, and QGA's error for a missing file. `pvesh` (over SSH) and the HTTPS API share
one handler; the API also checks the token's privilege (VM.GuestAgent.FileRead).
"""

from __future__ import annotations

import base64
from pathlib import Path

from pveplan.sim import SimRoot, init_root, register_token
from tests.contract.pve_contract import check_call
from tests.sim import Sim

from .test_rest import NODE, TOKEN, Api

KEY = "/etc/ssh/ssh_host_ed25519_key.pub"
PATH = "/nodes/sim/qemu/{}/agent/file-read"


def test_reads_the_guest_host_key_and_fails_as_pve_does(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    assert sim.create_vm(200, "--name", "db").returncode == 0
    assert sim.run("qm", "create", "201", "--name", "bare").returncode == 0  # no agent
    stopped = sim.run("pvesh", "get", PATH.format(200), "--file", KEY)
    assert (stopped.returncode, stopped.stderr) == (255, "VM 200 is not running\n")
    assert sim.run("qm", "start", "200").returncode == 0
    assert sim.run("qm", "start", "201").returncode == 0
    bare = sim.run("pvesh", "get", PATH.format(201), "--file", KEY)
    assert (bare.returncode, bare.stderr) == (255, "No QEMU guest agent configured\n")

    on_disk = (sim.root.vm_dir("sim", 200) / KEY.lstrip("/")).read_text()
    assert on_disk.startswith("ssh-ed25519 ")  # made at first boot, as sshd would
    assert sim.pvesh("get", PATH.format(200), "--file", KEY) == {"content": on_disk}
    raw = sim.pvesh("get", PATH.format(200), "--file", KEY, "--decode", "0")
    assert base64.b64decode(raw["content"]).decode() == on_disk
    part = sim.pvesh("get", PATH.format(200), "--file", KEY, "--count", "11", "--offset", "0")
    assert part == {"content": "ssh-ed25519", "truncated": 1}

    for missing in ("/etc/nonexistent", "/../../../../etc/passwd"):
        gone = sim.run("pvesh", "get", PATH.format(200), "--file", missing)
        assert gone.returncode == 255
        assert gone.stderr == (
            f"Agent error: failed to open file '{missing}' (mode: 'r'): No such file or directory\n"
        )
    no_file = sim.run("pvesh", "get", PATH.format(200))
    assert no_file.returncode == 255 and "file" in no_file.stderr
    assert check_call(["pvesh", "get", PATH.format(200), "--file", KEY]) == []


def test_the_api_serves_it_to_a_token_with_the_privilege(tmp_path: Path) -> None:
    root = SimRoot(tmp_path / "sim")
    init_root(root, [NODE])
    register_token(root, NODE, TOKEN)
    api = Api(root)
    api.data("POST", f"/nodes/{NODE}/qemu", {"vmid": 100, "name": "db", "agent": "1"})
    api.data("POST", f"/nodes/{NODE}/qemu/100/status/start")
    path = f"/nodes/{NODE}/qemu/100/agent/file-read"
    got = api.data("GET", path, {"file": KEY})
    assert got["content"].startswith("ssh-ed25519 ")
    limited = api.as_token(api.token_of("ops@pve", "limited"))
    api.data("POST", "/access/roles", {"roleid": "Watch", "privs": "VM.Audit,VM.GuestAgent.Audit"})
    api.data("PUT", "/access/acl", {"path": "/vms", "roles": "Watch", "tokens": "ops@pve!limited"})
    answer = limited.call("GET", path, {"file": KEY})
    assert answer.status == 403
    assert "VM.GuestAgent.FileRead" in str(answer.reason) or "/vms/100" in str(answer.reason)
