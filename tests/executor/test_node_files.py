"""What the node-local kinds write: the sudoers rule, the sshd drop-in, the converge units."""

from __future__ import annotations

from pveplan.executor.kinds._node import converge_units, sshd_drop_in, sudoers_rule
from pveplan.planner import ConvergeTimerArgs, SshdArgs

BUNDLE = "ab" * 32


def test_file_contents() -> None:
    assert sudoers_rule("alice", True) == "alice ALL=(ALL) NOPASSWD:ALL"
    assert sudoers_rule("alice", False) == "alice ALL=(ALL:ALL) ALL"
    drop_in = sshd_drop_in(SshdArgs(port=2222, permit_root_login="no")).decode()
    assert drop_in.splitlines()[1:] == ["Port 2222", "PermitRootLogin no"]
    units = converge_units(ConvergeTimerArgs(interval="30min", boot="5min", bundle=BUNDLE))
    service = units["pveplan-converge.service"].decode()
    launcher = f"/root/.pveplan/bundles/{BUNDLE}/bundle/run.py"
    assert f"ExecStart=/usr/bin/python3 -I -S {launcher} spec get\n" in service
    assert service.index("spec get") < service.index("config apply")
    timer = units["pveplan-converge.timer"].decode()
    assert "OnUnitActiveSec=30min\n" in timer and "OnBootSec=5min\n" in timer
