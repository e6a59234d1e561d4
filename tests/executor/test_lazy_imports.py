"""A run that reaches no host loads no SSH, HTTP or TLS-key library.

asyncssh, httpx and cryptography take a large share of a command's start-up; a no-op
apply needs none of them. The executor binds them lazily (`executor._lazy`), so they are
imported when a run first connects, calls an API or makes a key: here a fresh process
loads every step kind, opens a run session (bridge loop and SSH pool) around a body that
reaches no host, and must not have imported them; reaching for SSH then does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import json, sys
from pveplan.executor import kind_for, run_session, run_workspace  # noqa: F401
from pveplan.executor import execute  # noqa: F401
from pveplan.store import open_store

kind_for("pve.vm.create")  # every built-in kind, the PVE driver and the channels
heavy = ("asyncssh", "httpx", "cryptography.hazmat")


async def body(services):
    return sorted(m for m in heavy if m in sys.modules)


with open_store(sys.argv[1]) as store:
    before = run_session(
        body, store=store, workspace="t@h", hosts={}, driver_key=(sys.argv[2].encode(), ""),
        reveal=lambda name: "",
    )
from pveplan.executor._sshchannel import asyncssh
asyncssh.import_private_key(sys.argv[2].encode())  # the first real use loads it
print(json.dumps({"before": before, "after": sorted(m for m in heavy if m in sys.modules)}))
"""


def test_a_session_that_reaches_no_host_imports_no_ssh_http_or_crypto(tmp_path: Path) -> None:
    from pveplan.executor import generate_ed25519

    private, _ = generate_ed25519()
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "store"), private.decode()],
        capture_output=True,
        text=True,
        check=True,
    )
    seen = json.loads(done.stdout)
    assert seen["before"] == []
    assert "asyncssh" in seen["after"]
