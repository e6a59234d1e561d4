"""cloud-init's final stage in a simulated VM: `runcmd`, in the background, after the boot.

On a Debian cloud image `runcmd` runs in cloud-init's final stage, after the boot has
finished, so `qm start` returns long before it is done. Here the start (`_power.boot`)
marks the VM running, then `launch` spawns a detached runner (`python -c ... ROOT NODE
VMID`, in a session and process group of its own) that runs the entries one after the
other, in the VM's tree, as root, with the environment of an SSH session on that VM
(`_setup.session_env`: its `bin/` first on PATH, PVEPLAN_SYSROOT = its tree). A failed
entry does not stop the next (real runcmd is one shell script without `set -e`).

The runner stops by itself, killing its process group (its current command with it),
when the VM is stopped or destroyed, its host chain is down, the daemon it started under
is gone, or the time limit passes; `qm stop`/`shutdown`/`destroy` kill it at once
(`kill_runcmd`). Its record is `var/lib/sim/runcmd.json`; see docs/simulator.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pveplan.sim._state import SimRoot, host_chain_running, read_state, vm_key, write_json_atomic

RECORD = Path("var/lib/sim/runcmd.json")
OUTPUT_LOG = Path("var/log/cloud-init-output.log")
RUNNER_LOG = Path("var/log/cloud-init.log")
BOOT_FINISHED = Path("var/lib/cloud/instance/boot-finished")
LIMIT_ENV = "PVEPLAN_SIM_RUNCMD_LIMIT"
DEFAULT_LIMIT = 900.0
POLL = 1.0
"""Seconds between the runner's looks at the VM's status, the daemon and the clock."""
KILL_WAIT = 1.0
"""Seconds `kill_runcmd` waits (at most) for the killed group to be gone."""
RUNNER_TAG = "pveplan-sim-runcmd"
IN_PROCESS_TOOLS = frozenset(
    {"systemctl", "apt-get", "dpkg-query", "timedatectl", "hostnamectl", "useradd", "usermod"}
    | {"id", "getent", "chown"}
)
"""Guest tools an argv entry of runcmd runs inside the runner (`Runner._run_here`): quick
ones that start nothing and wait for nothing."""
CLOUD_INIT_VERSION = "22.4.2"  # Debian 12's
DATASOURCE = "DataSourceNoCloud [seed=/dev/sr0][dsmode=net]"


# --- the record ------------------------------------------------------------------------------


@contextlib.contextmanager
def _edit(tree: Path) -> Any:
    """runcmd.json to change in place, under the guest's lock (`_vm.Guest.edit`'s).
    A tree that is gone (the VM was destroyed) is not brought back: nothing is written."""
    if not tree.is_dir():
        yield {}
        return
    sim = tree / RECORD.parent
    sim.mkdir(parents=True, exist_ok=True)
    fd = os.open(sim / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        data = read_record(tree)
        yield data
        write_json_atomic(tree / RECORD, data)
    finally:
        os.close(fd)


def read_record(tree: Path) -> dict[str, Any]:
    """The VM's runcmd.json ({} when it has none)."""
    try:
        data = json.loads((tree / RECORD).read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def runcmd_entries(value: Any) -> tuple[list[list[str] | str], list[str]]:
    """cloud-config `runcmd` as (entries, warnings): a list is an argv, a string a shell
    command; anything else is skipped, as cloud-init cannot shellify it."""
    entries: list[list[str] | str] = []
    warnings: list[str] = []
    for item in value if isinstance(value, list) else []:
        if isinstance(item, str):
            entries.append(item)
        elif isinstance(item, list) and item:
            entries.append([str(word) for word in item])
        else:
            warnings.append(f"runcmd: unable to shellify type '{type(item).__name__}'")
    return entries, warnings


def plan_runcmd(tree: Path, instance: str, entries: list[list[str] | str]) -> None:
    """A new instance's runcmd: recorded, to run once after the boot (`launch`)."""
    (tree / BOOT_FINISHED).unlink(missing_ok=True)  # a new instance has not finished yet
    with _edit(tree) as data:
        data.clear()
        data.update(
            instance=instance,
            commands=entries,
            pid=None,
            started=None,
            limit=None,
            daemon=None,
            exits=[],
            done=False,
            finished=None,
            stopped=None,
        )


def _limit() -> float:
    try:
        return float(os.environ.get(LIMIT_ENV) or DEFAULT_LIMIT)
    except ValueError:
        return DEFAULT_LIMIT


def rfc2822() -> str:
    """Now, as cloud-init writes times (`util.time_rfc2822`)."""
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())


# --- the start side ------------------------------------------------------------------------

_RUNNERS: list[subprocess.Popen[bytes]] = []
"""The runners this process spawned: kept, never waited for (they outlive `qm start`)."""


def launch(root: SimRoot, node: str, vmid: int) -> int | None:
    """cloud-init's final stage for a VM that was just marked running: spawn the runner if
    this instance's runcmd has not run yet (its pid), else write boot-finished (None)."""
    tree = root.vm_dir(node, vmid)
    data = read_record(tree)
    pending = data.get("started") is None and not data.get("done")
    if not data.get("commands") or not pending:
        if data.get("commands") is not None and pending:
            with _edit(tree) as record:
                record.update(started=time.time(), done=True, finished=time.time())
        write_boot_finished(root, node, vmid)
        return None
    from pveplan.sim._control import daemon_info
    from pveplan.sim._setup import bootstrap_code  # _setup imports this module

    info = daemon_info(root)
    with _edit(tree) as record:
        record.update(
            started=time.time(), limit=_limit(), daemon=info["pid"] if info is not None else None
        )
    (tree / RUNNER_LOG).parent.mkdir(parents=True, exist_ok=True)
    code = bootstrap_code("pveplan.sim._runcmd", "main(sys.argv[1:])")
    with open(tree / RUNNER_LOG, "ab") as log:
        try:
            child = subprocess.Popen(
                [sys.executable, "-c", code, RUNNER_TAG, str(root.path), node, str(vmid)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tree,
                close_fds=True,
                start_new_session=True,  # its own session and group: outlives `qm start`
            )
        except OSError as exc:
            log.write(f"pveplan sim: cannot start the runcmd runner: {exc}\n".encode())
            with _edit(tree) as record:
                record.update(finished=time.time(), stopped=f"cannot start: {exc}")
            return None
    _RUNNERS.append(child)
    with _edit(tree) as record:
        record["pid"] = child.pid
    return child.pid


def reap_runners() -> None:
    """Collect the runners of this process that have exited. For a long-lived process (the
    daemon starts VMs for HTTPS API requests): unreaped, they would stay zombies, which
    `kill -0` still finds alive."""
    _RUNNERS[:] = [child for child in _RUNNERS if child.poll() is None]


def write_boot_finished(root: SimRoot, node: str, vmid: int, uptime: float | None = None) -> None:
    """`/var/lib/cloud/instance/boot-finished`, as cloud-init's final stage writes it."""
    tree = root.vm_dir(node, vmid)
    if not tree.is_dir():
        return
    path = tree / BOOT_FINISHED
    path.parent.mkdir(parents=True, exist_ok=True)
    uptime = _uptime(root, node, vmid) if uptime is None else uptime
    path.write_text(f"{uptime:.2f} - {rfc2822()} - v. {CLOUD_INIT_VERSION}\n")


def _uptime(root: SimRoot, node: str, vmid: int) -> float:
    try:
        vm = read_state(root)["vms"].get(vm_key(node, vmid)) or {}
    except (OSError, ValueError):
        vm = {}
    return max(0.0, time.time() - float(vm.get("started_at") or time.time()))


# --- stopping it -----------------------------------------------------------------------------


def _proc_stat(pid: int) -> list[str] | None:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _is_runner(pid: int, root: SimRoot, node: str, vmid: int) -> bool:
    """Whether live process `pid` is the runner of this VM (a pid may have been reused)."""
    try:
        args = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    want = [RUNNER_TAG, str(root.path), node, str(vmid)]
    return [a.decode(errors="replace") for a in args[-5:-1]] == want


def _group_members(pgid: int) -> list[int]:
    """The live (non-zombie) processes of process group `pgid`."""
    members = []
    if not Path("/proc/self").exists():
        return members
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _proc_stat(int(entry.name))
        if fields and fields[0] not in {"Z", "X"} and fields[2] == str(pgid):
            members.append(int(entry.name))
    return members


def _group_is_ours(pgid: int, root: SimRoot, node: str, vmid: int) -> bool:
    """Whether process group `pgid` is this VM's runner's: the runner itself, or what its
    commands left behind (a group id is not reused while the group has members, but the
    leader's pid is once they are all gone: never kill a stranger's group)."""
    if not Path("/proc/self").exists():
        return True  # no procfs: the recorded pid is the best we have
    marker = f"PVEPLAN_SYSROOT={root.vm_dir(node, vmid)}".encode()
    for pid in _group_members(pgid):
        if _is_runner(pid, root, node, vmid):
            return True
        with contextlib.suppress(OSError):
            if marker in (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0"):
                return True
    return False


def kill_runcmd(root: SimRoot, node: str, vmid: int, reason: str) -> bool:
    """Kill VM `vmid`'s runcmd runner and its commands (its process group), if any is
    alive; record why when it had not finished. Never takes the state lock (callers may
    hold it). True when something was killed."""
    tree = root.vm_dir(node, vmid)
    data = read_record(tree)
    pgid = data.get("pid")
    killed = False
    if isinstance(pgid, int) and pgid > 1 and _group_is_ours(pgid, root, node, vmid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
            killed = True
        deadline = time.monotonic() + KILL_WAIT
        while _group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.01)
    if data.get("started") is not None and not data.get("finished") and tree.is_dir():
        with _edit(tree) as record:
            if not record.get("finished"):
                record.update(finished=time.time(), stopped=reason)
    return killed


# --- the runner --------------------------------------------------------------------------


class Runner:
    """The detached process that runs one VM's runcmd entries (`main`)."""

    def __init__(self, root: SimRoot, node: str, vmid: int) -> None:
        self.root, self.node, self.vmid = root, node, vmid
        self.tree = root.vm_dir(node, vmid)
        record = read_record(self.tree)
        self.commands: list[list[str] | str] = list(record.get("commands") or [])
        started = float(record.get("started") or time.time())
        self.deadline = started + float(record.get("limit") or DEFAULT_LIMIT)
        self.daemon: int | None = record.get("daemon")
        self.booted = started
        """The VM's boot, for cloud-init's "Up N seconds": `qm start` launches the runner
        the moment it marks the VM running, so its `started` is the boot (and the runner
        need not read the whole state to learn it)."""
        self.checked = time.monotonic()
        """When the VM was last seen running: at the launch (`qm start` had just marked it
        so), then by `_check`, at most every POLL seconds."""

    def uptime(self) -> float:
        return max(0.0, time.time() - self.booted)

    def stop_reason(self) -> str | None:
        """Why the runner must stop now, or None while it may go on."""
        if time.time() >= self.deadline:
            return "time limit"
        try:
            state = read_state(self.root)
        except (OSError, ValueError):
            return None  # a torn read: look again at the next poll
        vm = state["vms"].get(vm_key(self.node, self.vmid))
        if vm is None:
            return "destroyed"
        if vm.get("status") != "running":
            return "stopped"
        if not host_chain_running(state, self.node):
            return "host stopped"
        if self.daemon is not None:
            from pveplan.sim._control import pid_is_daemon

            if not pid_is_daemon(self.daemon):
                return "daemon stopped"
        return None

    def run(self) -> int:
        from pveplan.sim._setup import session_env

        with _edit(self.tree) as record:
            record["pid"] = os.getpid()
        env = session_env(self.root, self.tree, self.node, self.vmid, "root", self.tree / "root")
        (self.tree / OUTPUT_LOG).parent.mkdir(parents=True, exist_ok=True)
        with open(self.tree / OUTPUT_LOG, "ab") as log:
            log.write(
                f"Cloud-init v. {CLOUD_INIT_VERSION} running 'modules:final' at "
                f"{rfc2822()}. Up {self.uptime():.2f} seconds.\n".encode()
            )
            log.flush()
            for command in self.commands:
                status = self._run_one(command, env, log)
                with _edit(self.tree) as record:
                    record.setdefault("exits", []).append(status)
            uptime = self.uptime()
            log.write(
                f"Cloud-init v. {CLOUD_INIT_VERSION} finished at {rfc2822()}. Datasource "
                f"{DATASOURCE}.  Up {uptime:.2f} seconds\n".encode()
            )
        write_boot_finished(self.root, self.node, self.vmid, self.uptime())  # before "done"
        with _edit(self.tree) as record:
            record.update(done=True, finished=time.time())
        return 0

    def _run_one(self, command: list[str] | str, env: dict[str, str], log: Any) -> int:
        """Run one entry to its end (its exit status), or stop the runner on the way."""
        self._check()
        if isinstance(command, list) and (status := self._run_here(command, env, log)) is not None:
            return status
        argv = ["/bin/sh", "-c", command] if isinstance(command, str) else command
        try:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.tree,
                env=env,
                close_fds=True,  # in the runner's group: killing the group kills it too
            )
        except OSError as exc:  # as the runcmd script's shell would say it
            what = "not found" if isinstance(exc, FileNotFoundError) else "Permission denied"
            log.write(f"sh: 1: {argv[0]}: {what}\n".encode())
            log.flush()
            return 127 if isinstance(exc, FileNotFoundError) else 126
        while True:
            try:
                return child.wait(timeout=POLL)
            except subprocess.TimeoutExpired:
                self._check()

    def _run_here(self, argv: list[str], env: dict[str, str], log: Any) -> int | None:
        """An argv entry that is one of the VM's own quick guest tools (`systemctl enable
        --now qemu-guest-agent`, `apt-get install ...`), run in this process as its
        launcher would run it (same environment, cwd, output to the log): a process and
        the simulator's imports less per entry. None when it must be spawned: another
        command, a tool that waits or runs others (`sudo`, `cloud-init status --wait`),
        or a `bin/` launcher that is not exactly the simulator's."""
        from pveplan.sim._setup import guest_launcher_text

        if not argv or argv[0] not in IN_PROCESS_TOOLS:
            return None
        expected = guest_launcher_text(self.root.path, self.node, self.vmid, argv[0])
        try:
            if (self.tree / "bin" / argv[0]).read_text() != expected:
                return None
        except (OSError, UnicodeDecodeError):
            return None
        from pveplan.sim import _guest
        from pveplan.sim._stdio import SINK

        def write(text: str) -> None:
            log.write(text.encode("utf-8", "surrogateescape"))
            log.flush()

        os.environ.clear()
        os.environ.update(env)  # what the tool reads ($USER) is what its process would have
        token = SINK.set((write, write))  # stderr into the log too, as for a process
        try:
            return _guest.main(argv[0], argv[1:], str(self.root.path), self.node, self.vmid)
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except Exception:  # a bug: as the process would have shown it
            import traceback

            write(traceback.format_exc())
            return 1
        finally:
            SINK.reset(token)

    def _check(self) -> None:
        """Stop the runner if it must (`stop_reason`): the clock at every call, the VM
        and the daemon once per POLL (a read of the state; `qm stop` kills the runner
        itself at once anyway)."""
        if time.time() < self.deadline and time.monotonic() - self.checked < POLL:
            return
        self.checked = time.monotonic()
        reason = self.stop_reason()
        if reason is None:
            return
        with _edit(self.tree) as record:
            record.update(finished=time.time(), stopped=reason)
        with contextlib.suppress(OSError), open(self.tree / OUTPUT_LOG, "ab") as log:
            log.write(f"pveplan sim: runcmd stopped: {reason}\n".encode())
        os.killpg(os.getpgid(0), signal.SIGKILL)  # the current command, and the runner


def main(argv: list[str]) -> int:
    """`python -c CODE pveplan-sim-runcmd ROOT NODE VMID` (what `launch` spawns)."""
    if len(argv) != 4 or argv[0] != RUNNER_TAG:
        print(f"usage: {RUNNER_TAG} ROOT NODE VMID", file=sys.stderr)
        return 2
    root, node, vmid = SimRoot(argv[1]), argv[2], int(argv[3])
    if os.getpgid(0) != os.getpid():
        os.setsid()  # the group `kill_runcmd` kills is ours alone
    return Runner(root, node, vmid).run()
