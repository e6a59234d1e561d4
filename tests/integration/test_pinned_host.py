"""A real host's pinned key (`ssh_host_key` in its node file) is enforced (issue 17).

The "real host" is the simulator's SSH daemon reached as an ordinary host (no `sim:`),
with a node file that pins another ed25519 key than the one it presents: the apply is
refused before anything runs, and the message names the node file to update. With the
right key pinned, the same apply goes through.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pveplan.sim import daemon_info
from tests.cli_runner import run_cli

from .conftest import Lab
from .test_apply import specless


def _other_key() -> str:
    public = Ed25519PrivateKey.generate().public_key()
    line = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return line.decode() + " someone-else"


def _node_file(lab: Lab, name: str, address: str, port: int, key: str) -> str:
    path = lab.site / "nodes" / f"{name}.yaml"
    path.write_text(
        f'node: sim\nhost: {name}\nip: "{address}"\nssh_port: {port}\n'
        f'ssh_host_key: "{key}"\ndatastore: local\nvm_ssh_port: {port}\n'
    )
    return str(path)


def test_a_real_host_presenting_another_key_is_refused_naming_its_node_file(lab: Lab) -> None:
    code, out, err = run_cli(["sim", "up"])
    assert code == 0, out + err
    info = daemon_info(lab.sim)
    entry = info["hosts"]["sim"]
    name = lab.manifest("pinned", specless("pinned", 1, 93500))
    node_file = _node_file(lab, "realhost", entry["address"], info["port"], _other_key())

    code, out, err = run_cli(lab.args("apply", "-M", name, "-H", "realhost", "--yes"))
    assert code == 1, out + err
    assert "does not match ssh_host_key" in err and node_file in err, err
    assert "Traceback" not in err
    assert lab.vms(name) == []  # refused before anything ran

    # With the key the host really presents pinned, the same apply goes through.
    _node_file(lab, "realhost", entry["address"], info["port"], entry["host_key"])
    try:
        code, out, err = run_cli(lab.args("apply", "-M", name, "-H", "realhost", "--yes"))
        assert code == 0, out + err
        assert len(lab.vms(name)) == 1
    finally:
        code, out, err = run_cli(lab.args("destroy", "-M", name, "-H", "realhost", "--yes"))
    assert code == 0, out + err
    assert lab.vms(name) == []
