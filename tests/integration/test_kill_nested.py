"""SIGKILL trials for a nested manifest: a PVE host in a VM with two VMs of its own.

The flat trials (test_kill.py) show that a killed apply resumes without duplicates. A
nested tree adds a second store and a second executor, on the nested host, started over
SSH by the driver: killing the driver must take that executor down with its channel, and
killing that executor must fail the driver's run clearly (not hang it, no traceback). In
both cases the re-run must converge, with every VM once at its level and, after destroy,
no VM left at any level (a VM whose host is gone, or a nested node whose VM is gone, would
be an orphan). Real `pveplan` processes, the real simulator, real SQLite.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from pveplan.sim import read_state
from pveplan.store import open_store

from .conftest import Lab
from .test_apply import counts
from .test_nested import write_yaml

pytestmark = pytest.mark.slow

RUN_TIMEOUT = 240.0
"""Seconds any one `pveplan` run may take before it counts as hung (a cold nested apply
takes about 20 s; a loaded CI machine, several times that)."""
VMID_B = 90101
"""The one pinned vmid, on the nested host's own level (each level has its own vmids)."""


def tree(name: str, host: str, *, memory: int = 1024, image: str = "debian-12") -> str:
    """A tiered manifest: PVE host `host` with VMs `NAME-a` and `NAME-b`.

    The host and `NAME-a` pin no vmid: their level picks the next free one, so a run that
    lost track of a VM it made would make a second one of the same name (a pinned vmid is
    refused instead, which hides that). `NAME-b` pins one (VMID_B), for that path.
    """
    nodes: list[dict[str, object]] = [
        {"name": host, "type": "pve", "spec": "pve", "preset": "vm-medium", "image": "pve-9"}
    ]
    for suffix in "ab":
        nodes.append(
            {
                "name": f"{name}-{suffix}",
                "type": "vm",
                "spec": "base",
                "preset": "vm-small",
                "memory": memory,
                "image": image,
                "parent": host,
                **({"vmid": VMID_B} if suffix == "b" else {}),
            }
        )
    return yaml.safe_dump(
        {"schema_version": 2, "name": name, "pattern": "tiered", "nodes": nodes}, sort_keys=False
    )


def expected(name: str, host: str) -> set[tuple[str, str]]:
    """(level, VM name) of every VM the tree makes: the host on `sim`, the rest on it."""
    return {("sim", host), (host, f"{name}-a"), (host, f"{name}-b")}


def levels(lab: Lab, name: str, host: str) -> list[dict]:
    """Every VM of the tree at any level: tagged with the manifest, named as one of its
    nodes, or living on its nested host (untagged ones too: they would be orphans)."""
    tag = f"pveplan-{name}"
    names = {vm for _, vm in expected(name, host)}
    return [
        vm
        for vm in read_state(lab.sim)["vms"].values()
        if vm["node"] == host
        or vm["name"] in names
        or tag in str(vm["config"].get("tags", "")).split(";")
    ]


def assert_no_duplicate_or_orphan(lab: Lab, name: str, host: str) -> None:
    """Each VM at most once at its level, none at a level it does not belong to, none on
    a node that is gone, and no nested node left behind by its VM."""
    state = read_state(lab.sim)
    vms = levels(lab, name, host)
    found = Counter((vm["node"], vm["name"]) for vm in vms)
    assert all(n == 1 for n in found.values()), f"duplicates: {found}"
    assert set(found) <= expected(name, host), f"strangers: {found}"
    orphans = [key for key in found if key[0] not in state["nodes"]]
    assert not orphans, f"VMs on a node that is gone: {orphans}"
    node = state["nodes"].get(host)
    if node is not None:  # the nested node exists only while its VM does
        vm = [(v["node"], v["vmid"]) for v in vms if (v["node"], v["name"]) == ("sim", host)]
        assert vm == [(node["parent"], node["vmid"])], f"node {host} {node} outlived its VM"


def assert_converged(lab: Lab, name: str, host: str) -> None:
    assert_no_duplicate_or_orphan(lab, name, host)
    running = sorted((vm["node"], vm["name"], vm["status"]) for vm in levels(lab, name, host))
    assert running == sorted((*key, "running") for key in expected(name, host)), running


def start(lab: Lab, *words: str, out: Path | None = None) -> subprocess.Popen:
    """`pveplan WORDS` in a process group of its own: stdout to `out` and stderr to a pipe
    if `out` is given, else both discarded. A SIGABRT makes it dump every thread's stack."""
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    sink = out.open("w") if out is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "pveplan.cli", *lab.args(*words)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.PIPE if out is not None else subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
    finally:
        if out is not None:
            sink.close()


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL `proc`'s whole process group (gone already is fine) and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def finish(proc: subprocess.Popen, what: str, timeout: float = RUN_TIMEOUT) -> str:
    """`proc`'s stderr once it exits; a run that outlives `timeout` is a hang: its stacks
    are dumped (SIGABRT) into the failure."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        try:
            _, err = proc.communicate(timeout=30)
        finally:
            kill_group(proc)
        raise AssertionError(f"{what} hung for {timeout:g}s:\n{err}") from None
    return err or ""


def run(lab: Lab, tmp_path: Path, *words: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `pveplan WORDS` run to its end, bounded in time."""
    out = tmp_path / "run.out"
    proc = start(lab, *words, out=out)
    try:
        err = finish(proc, " ".join(words))
    finally:
        if proc.poll() is None:
            kill_group(proc)
    return proc.returncode, out.read_text(), err


def executors(lab: Lab) -> set[int]:
    """Pids of the remote executors running in THIS lab's simulated machines: `python3 -I
    -S .pveplan/bundles/H/bundle/run.py executor --stdio`, its cwd in the simulator's
    directory (never another test's or another user's processes; the `/bin/sh -c` that
    started it has the command as one word, so it is not matched)."""
    root = lab.sim.path.resolve()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:  # gone meanwhile, or not ours to read
            continue
        words = [w.decode(errors="replace") for w in argv if w]
        if not any(w.endswith("/run.py") for w in words):
            continue
        if "executor" not in words or "--stdio" not in words:
            continue
        if cwd.is_relative_to(root):
            found.add(int(entry.name))
    return found


def wait_no_executors(lab: Lab, within: float = 20.0) -> None:
    """A run that ended (or was killed) leaves no executor behind on a nested host."""
    deadline = time.monotonic() + within
    while (left := executors(lab)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"remote executors still running {within:g}s after their run: {left}"


def wait_for_executor(lab: Lab, proc: subprocess.Popen, before: set[int]) -> int | None:
    """The pid of the executor `proc`'s delegate started (one not in `before`); None if
    `proc` ended without starting one."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        new = executors(lab) - before
        if new:
            return min(new)
        time.sleep(0.05)
    if proc.poll() is None:
        raise AssertionError(f"no remote executor started within {RUN_TIMEOUT:g}s")
    return None


def last_run(lab: Lab, workspace: str) -> int:
    """The id of the newest run record of `workspace` (0: none yet)."""
    if not (lab.store / "store.sqlite").exists():
        return 0  # not created yet: opening it here would race the apply creating it
    with open_store(lab.store) as store:
        runs = store.runs(workspace, limit=1)
    return runs[0].id if runs else 0


def wait_for_nested_steps(
    lab: Lab, proc: subprocess.Popen, workspace: str, after: int, count: int
) -> bool:
    """Wait until the run of `proc` (a run record newer than `after`) holds `count` started
    steps of a nested level (the driver records them as they stream up, every 0.25 s).
    False if `proc` ended first."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        if last_run(lab, workspace) > after:
            with open_store(lab.store) as store:
                run = store.runs(workspace, limit=1)[0]
                events = store.run_events(run.id)
            if sum(1 for e in events if e.kind == "started" and e.host != "sim") >= count:
                return True
        time.sleep(0.05)
    if proc.poll() is None:
        raise AssertionError(f"{count} nested steps did not start within {RUN_TIMEOUT:g}s")
    return False


def test_sigkill_of_a_nested_apply_at_random_points_converges(lab: Lab, tmp_path: Path) -> None:
    name, host = "knest", "knest-pve"
    rng = random.Random(20261123)
    lab.set_sim_config(latency=0.02)  # stretch the run so kills land inside every phase
    try:
        for trial in range(8):
            verb = "destroy" if trial % 4 == 3 else "apply"
            # A new memory size for the nested VMs each time: their level has work to do.
            write_yaml(lab, name, tree(name, host, memory=1024 + 128 * trial))
            after = last_run(lab, f"{name}@sim")
            proc = start(lab, verb, "-M", name, "-H", "sim", "--yes")
            try:
                if rng.random() < 0.5:  # anywhere: mostly while the nested host is set up
                    time.sleep(rng.uniform(0.5, 12.0))
                else:  # while the nested level runs (or is starting, for 0)
                    steps = rng.randint(0, 8)
                    wait_for_nested_steps(lab, proc, f"{name}@sim", after, steps)
                    time.sleep(rng.uniform(0.0, 0.5))
            finally:
                kill_group(proc)
            wait_no_executors(lab)  # the nested executor went with the driver's channel
            assert_no_duplicate_or_orphan(lab, name, host)
    finally:
        lab.set_sim_config(latency=0.0)
    code, out, err = run(lab, tmp_path, "apply", "-M", name, "-H", "sim", "--yes")
    assert code == 0, out + err
    assert_converged(lab, name, host)
    code, out, err = run(lab, tmp_path, "apply", "-M", name, "-H", "sim", "--yes")
    assert code == 0 and counts(out)["ran"] == 0, out + err
    code, out, err = run(lab, tmp_path, "destroy", "-M", name, "-H", "sim", "--yes")
    assert code == 0, out + err
    assert levels(lab, name, host) == []  # no orphan at any level
    assert host not in read_state(lab.sim)["nodes"]
    wait_no_executors(lab)


def test_sigkill_of_the_nested_executor_fails_the_run_clearly_and_the_rerun_converges(
    lab: Lab, tmp_path: Path
) -> None:
    name, host = "kexec", "kexec-pve"
    workspace = f"{name}@sim"
    rng = random.Random(20261124)
    lab.set_sim_config(latency=0.05)  # the nested run lasts seconds: the kill lands in it
    try:
        for trial in range(5):
            # The nested level has work each time: everything (trial 0), then in turn new
            # memory (updated in place) and a new image (each VM destroyed and re-created).
            image = "debian-13" if trial % 4 == 2 else "debian-12"
            write_yaml(lab, name, tree(name, host, memory=1024 + 128 * trial, image=image))
            wait_no_executors(lab)
            before, after = executors(lab), last_run(lab, workspace)
            proc = start(lab, "apply", "-M", name, "-H", "sim", "--yes", out=tmp_path / "out")
            try:
                steps = rng.randint(0, 7)
                assert wait_for_nested_steps(lab, proc, workspace, after, steps), "ended early"
                time.sleep(rng.uniform(0.0, 0.4))
                pid = wait_for_executor(lab, proc, before)
                assert pid is not None, "the apply ended before its executor could be killed"
                os.kill(pid, signal.SIGKILL)  # the executor alone: not its driver
                killed = time.monotonic()
                # SILENCE_LIMIT (8 s) is the bound when nothing says the executor is gone
                err = finish(proc, f"apply after its executor was killed (trial {trial})", 60)
                took = time.monotonic() - killed
            finally:
                if proc.poll() is None:
                    kill_group(proc)
            out = (tmp_path / "out").read_text()
            assert proc.returncode == 1, out + err
            assert took < 15, f"the lost executor was noticed only after {took:.1f}s"
            assert "Traceback" not in out + err, out + err
            assert f"the executor on {host}" in err and "re-run to resume" in err, out + err
            assert_no_duplicate_or_orphan(lab, name, host)
            code, out, err = run(lab, tmp_path, "apply", "-M", name, "-H", "sim", "--yes")
            assert code == 0, out + err
            assert_converged(lab, name, host)
        code, out, err = run(lab, tmp_path, "apply", "-M", name, "-H", "sim", "--yes")
        assert code == 0 and counts(out)["ran"] == 0, out + err
    finally:
        lab.set_sim_config(latency=0.0)
    code, out, err = run(lab, tmp_path, "destroy", "-M", name, "-H", "sim", "--yes")
    assert code == 0, out + err
    assert levels(lab, name, host) == []
    assert host not in read_state(lab.sim)["nodes"]
    wait_no_executors(lab)
