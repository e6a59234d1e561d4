"""Cold apply of N flat VMs on the simulator: wall time and the CPU it took, by whom.

    python benchmarks/sim_apply.py [--nodes N] [--keep]

The simulator is started first (`pveplan sim up`, not timed), then one `pveplan apply`
builds N VMs (four steps each, about ten `pvesh` calls and one SSH login per VM). Printed:
wall time, and CPU seconds of the client (`pveplan apply`), of the daemon (its own and its
children's: the host tools it spawned, runcmd runners it reaped) and of everything this
script started (the script is a child subreaper, so detached processes count when they
exit); per VM. CPU is the figure to compare on a shared machine: wall time follows the
load. Prints figures; asserts nothing. Uses a temporary store and simulator.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from apply_scale import manifest  # noqa: E402

PR_SET_CHILD_SUBREAPER = 36


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def daemon_cpu(sim: Path) -> tuple[float, float]:
    """(own, reaped children's) CPU seconds of the running daemon, from /proc."""
    pid = json.loads((sim / "daemon.json").read_text())["pid"]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    utime, stime, cutime, cstime = (int(value) / tick for value in fields[11:15])
    return utime + stime, cutime + cstime


def reap_all() -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.2)


def run(nodes: int, keep: bool) -> None:
    libc = ctypes.CDLL(None)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # detached processes' CPU counts too
    tmp = Path(tempfile.mkdtemp(prefix="sim-apply-"))
    site = tmp / "site"
    shutil.copytree(ROOT / "examples" / "site-config", site)
    (site / "manifests" / "bench-flat.pvp").write_text(manifest(nodes))
    env = {**os.environ, "PVEPLAN_STORE": str(tmp / "store"), "XDG_CONFIG_HOME": str(tmp / "c")}
    cli = [sys.executable, "-m", "pveplan.cli"]
    sim = tmp / "store" / "sim"
    try:
        subprocess.run([*cli, "sim", "up"], env=env, capture_output=True, check=True)
        start_all, (start_own, start_kids) = children_cpu(), daemon_cpu(sim)
        print(f"cold apply of {nodes} VMs ...", file=sys.stderr)
        started = time.perf_counter()
        words = ["apply", "-M", "bench-flat", "-H", "sim", "--site-config", str(site), "--yes"]
        done = subprocess.run([*cli, *words], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        client = children_cpu() - start_all
        own, kids = daemon_cpu(sim)
        if done.returncode != 0:
            sys.exit(f"apply failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    finally:
        subprocess.run([*cli, "sim", "down"], env=env, capture_output=True)
        reap_all()
    total = children_cpu() - start_all
    calls = len((sim / "calls.jsonl").read_text().splitlines())
    print(f"cold apply of {nodes} VMs: wall {wall:.1f} s ({wall / nodes * 1000:.0f} ms/VM)")
    print(
        f"CPU: client {client:.1f} s, daemon {own - start_own:.1f} s + its children "
        f"{kids - start_kids:.1f} s, everything {total:.1f} s ({total / nodes * 1000:.0f} ms/VM)"
    )
    print(f"{calls} host tool calls ({calls / nodes:.1f} per VM)")
    if keep:
        print(f"kept: {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help="keep the temporary lab")
    args = parser.parse_args()
    run(args.nodes, args.keep)


if __name__ == "__main__":
    main()
