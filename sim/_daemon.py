"""The simulator's daemon: every simulated host and running VM answers SSH on its address,
and every PVE host its HTTPS API.

Run as its own process, `python -m pveplan.sim._daemon ROOT` (`_control.start_daemon` does
that), on plain asyncio + asyncssh: no trio, so nothing of the client side's bridge is needed
here. It binds one port, chosen ephemeral on the first host's address, on every machine's
loopback address; writes ROOT/daemon.json once the hosts listen; then reconciles listeners
with state.json every TICK seconds until SIGTERM/SIGINT (docs/simulator.md, "The daemon"),
or until `_lifetime.Lifetime` finds a reason to stop by itself (its root deleted, idle too long,
the process it was started to live with gone).
A nested PVE host has no listener of its own: it is its VM, served by the VM's listener,
and a VM is served only while every host up its chain runs (`host_chain_running`).
What one connection may do is `_sshd`'s. The same loop runs every PVE host's HTTPS API
(`_https.ApiServers`, reconciled with the SSH listeners), so both share one process and
one state; its listeners count as activity for `Lifetime` too.

The daemon never writes state.json: it only follows it. It holds ROOT/daemon.lock (flock)
for its lifetime, so two daemons never serve one root, whatever happened to daemon.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import asyncssh

from pveplan.sim._control import pid_is_daemon
from pveplan.sim._https import DEFAULT_PORT, ApiServers
from pveplan.sim._lifetime import Lifetime, LifetimeOptions, parse_argv, take_lock
from pveplan.sim._sshd import GRACE, Listener, Machine, SimServer, Spec, run_session, sftp_server
from pveplan.sim._state import (
    SimRoot,
    host_chain_running,
    read_config,
    read_state,
    write_json_atomic,
)

LOG = logging.getLogger("pveplan.sim.daemon")

TICK = 0.05
"""Seconds between looks at state.json, state.journal and config.json (only their stat
unless they changed)."""
RECHECK = 1.0
"""Seconds between full reconciles even when nothing changed (host key files, failed binds)."""
LOCK_WAIT = 3 * GRACE
"""Seconds a new daemon waits for the lock of one that is stopping (it removed daemon.json)."""
LOGIN_TIMEOUT = 10.0
BIND_ATTEMPTS = 5
HOST_KEY = Path("etc/ssh/ssh_host_ed25519_key")


# --- host keys -------------------------------------------------------------------------------


def ensure_host_key(path: Path) -> asyncssh.SSHKey:
    """The ed25519 key at `path`, generated (0600, written atomically) if missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = asyncssh.generate_private_key("ssh-ed25519")
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key.export_private_key("openssh"))
        os.replace(tmp, path)
    return asyncssh.read_private_key(str(path))


def public_line(key: asyncssh.SSHKey) -> str:
    return key.export_public_key("openssh").decode().strip()


def _host_key_fault(config: dict[str, Any], vm: dict[str, Any]) -> bool:
    """Whether config.json asks this VM to present a key other than its own (`host_key`)."""
    for fault in config.get("faults", []):
        if fault.get("op") != "host_key":
            continue
        if fault.get("vmid") is not None and fault["vmid"] != vm.get("vmid"):
            continue
        if fault.get("name") is not None and fault["name"] != vm.get("name"):
            continue
        if fault.get("times") is not None and fault["times"] <= 0:
            continue
        return True
    return False


# --- the daemon ------------------------------------------------------------------------------


class Daemon:
    """The listeners of one simulator root and the loop that keeps them in step with it."""

    def __init__(self, root: SimRoot, options: LifetimeOptions | None = None) -> None:
        self.root = root
        self.lifetime = Lifetime(root, options or LifetimeOptions())
        self.port = 0
        self.listeners: dict[str, Listener] = {}
        self.hosts: dict[str, dict[str, str]] = {}
        self.api_hosts: dict[str, dict[str, str]] = {}
        self.stop = asyncio.Event()
        self.started = time.time()
        port = read_config(root).get("api_port", DEFAULT_PORT)
        self.api = ApiServers(root, int(port) if isinstance(port, int) else DEFAULT_PORT)
        self._state: dict[str, Any] = {}
        self._fault_keys: dict[str, asyncssh.SSHKey] = {}
        self._keys: dict[Path, tuple[tuple[int, int, int], asyncssh.SSHKey, str]] = {}
        self._pending = False

    async def _listen(self, spec: Spec, port: int) -> Listener:
        listener = Listener(spec)
        listener.acceptor = await asyncssh.listen(
            spec.machine.address,
            port,
            reuse_address=True,
            config=None,
            server_factory=functools.partial(SimServer, listener),
            server_host_keys=[spec.key],
            process_factory=functools.partial(run_session, listener),
            sftp_factory=functools.partial(sftp_server, spec.machine.root),
            allow_scp=False,
            encoding=None,
            agent_forwarding=False,
            x11_forwarding=False,
            allow_pty=False,
            login_timeout=LOGIN_TIMEOUT,
        )
        return listener

    def _host_specs(self, state: dict[str, Any]) -> dict[str, Spec]:
        """Top-level hosts only: a nested one is its VM, which `_vm_specs` serves."""
        specs: dict[str, Spec] = {}
        for node, info in sorted(state.get("nodes", {}).items()):
            address = info.get("address")
            if not address or info.get("vmid") is not None:
                continue
            root = self.root.host_dir(node)
            key = ensure_host_key(root / HOST_KEY)
            machine = Machine(address=address, root=root, sim=self.root, node=node)
            specs[address] = Spec(machine, key, public_line(key))
        return specs

    def _vm_specs(self, state: dict[str, Any], config: dict[str, Any]) -> dict[str, Spec]:
        specs: dict[str, Spec] = {}
        for vm in state.get("vms", {}).values():
            address = vm.get("address")
            if vm.get("status") != "running" or not address:
                continue
            if not host_chain_running(state, vm["node"]):
                continue  # its host (or one above) is stopped: the guest is unreachable
            root = self.root.vm_dir(vm["node"], vm["vmid"])
            machine = Machine(address, root, self.root, vm["node"], vm["vmid"])
            if _host_key_fault(config, vm):
                key = self._fault_keys.get(address)
                if key is None:
                    key = self._fault_keys[address] = asyncssh.generate_private_key("ssh-ed25519")
                specs[address] = Spec(machine, key, "fault:" + public_line(key))
                continue
            self._fault_keys.pop(address, None)
            try:
                key, key_id = self._vm_key(root / HOST_KEY)
            except FileNotFoundError:
                self._pending = True  # cloud-init has not installed it yet: look every tick
                continue
            except (OSError, ValueError) as exc:
                LOG.warning("VM %s: unusable host key: %s", address, exc)
                continue
            specs[address] = Spec(machine, key, key_id)
        return specs

    def _vm_key(self, path: Path) -> tuple[asyncssh.SSHKey, str]:
        """A VM's host key and its id (the file's sha256), read again only when the file
        changed: a reconcile looks at every running VM, so importing every key each time
        made each state change cost O(VMs)."""
        info = path.stat()
        stamp = (info.st_ino, info.st_size, info.st_mtime_ns)
        cached = self._keys.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1], cached[2]
        data = path.read_bytes()
        key = asyncssh.import_private_key(data)
        self._keys[path] = (stamp, key, hashlib.sha256(data).hexdigest())
        return key, self._keys[path][2]

    def desired(self) -> dict[str, Spec]:
        state, config = read_state(self.root), read_config(self.root)
        self._state = state
        self.lifetime.configure(config)
        self._pending = False
        return {**self._host_specs(state), **self._vm_specs(state, config)}

    async def bind_hosts(self) -> None:
        """Bind every host node (port 0 on the first, that port on the rest), retrying on a
        port clash a few times."""
        hosts = self._host_specs(read_state(self.root))
        previous = _last_port(self.root)
        for attempt in range(BIND_ATTEMPTS):
            # The port of the previous daemon first: nested hosts wrote it into their node
            # files (a real host's SSH port does not change when sshd restarts either).
            self.port = previous if attempt == 0 else 0
            try:
                for address, spec in hosts.items():
                    self.listeners[address] = await self._listen(spec, self.port)
                    if not self.port:
                        self.port = self.listeners[address].acceptor.get_port()  # type: ignore[union-attr]
                break
            except OSError as exc:
                LOG.warning("bind attempt %d failed: %s", attempt + 1, exc)
                await self.close_all()
        else:
            raise SystemExit(f"pveplan sim: cannot bind the host addresses of {self.root.path}")
        if not self.port:  # no host node yet: still fix a port for the VMs to come
            self.port = _free_port(read_state(self.root)["prefix"] + ".255.254")
        with contextlib.suppress(OSError):
            (self.root.path / PORT_FILE).write_text(f"{self.port}\n")
        await self.api.reconcile(read_state(self.root))
        self._update_hosts()

    def _update_hosts(self) -> None:
        hosts = {
            listener.spec.machine.node: {
                "address": address,
                "host_key": public_line(listener.spec.key),
            }
            for address, listener in self.listeners.items()
            if listener.spec.machine.vmid is None
        }
        api = self.api.info()
        if hosts != self.hosts or api != self.api_hosts or not self.root.daemon.exists():
            self.hosts, self.api_hosts = hosts, api
            info = {"pid": os.getpid(), "port": self.port, "started": self.started, "hosts": hosts}
            info.update(api_port=self.api.port, api=api)
            write_json_atomic(self.root.daemon, info)

    async def reconcile(self) -> None:
        """Close what should not listen (or listens with the wrong key), open what should."""
        try:
            desired = self.desired()
        except (OSError, ValueError) as exc:
            LOG.warning("cannot read the simulator state: %s", exc)
            return
        for address in list(self.listeners):
            spec = desired.get(address)
            if spec is None or spec != self.listeners[address].spec:
                LOG.info("closing %s", address)
                await self.listeners.pop(address).aclose()
        for address, spec in desired.items():
            if address in self.listeners:
                continue
            try:
                self.listeners[address] = await self._listen(spec, self.port)
                LOG.info("listening on %s:%d", address, self.port)
            except OSError as exc:
                LOG.warning("cannot listen on %s:%d: %s", address, self.port, exc)
        await self.api.reconcile(self._state)
        try:
            self._update_hosts()
        except OSError as exc:  # ROOT deleted under us: `Lifetime` stops the daemon next tick
            LOG.warning("cannot write %s: %s", self.root.daemon, exc)

    async def serve(self) -> None:
        """Reconcile whenever state.json/config.json change, every RECHECK s, or every tick
        while a running VM still lacks its host key; until `stop` is set or the lifetime
        says to stop (looked at first: a deleted root must not be recreated by a read)."""
        seen: tuple[Any, ...] = ()
        last = time.monotonic()
        while not self.stop.is_set():
            if reason := self.lifetime.gone_reason():
                LOG.info("stopping by itself: %s", reason)
                return
            stamp = (_stamp(self.root.state), _stamp(self.root.journal), _stamp(self.root.config))
            now = time.monotonic()
            if stamp != seen:
                self.lifetime.touch()
            if stamp != seen or now - last >= RECHECK or self._pending:
                seen, last = stamp, now
                await self.reconcile()
            listeners = [*self.listeners.values(), *self.api.listeners.values()]
            if reason := self.lifetime.idle_reason(listeners):
                LOG.info("stopping by itself: %s", reason)
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), TICK)

    async def close_all(self) -> None:
        listeners = list(self.listeners.values())
        self.listeners.clear()
        await asyncio.gather(*(listener.aclose() for listener in listeners))

    async def shutdown(self) -> None:
        """Stop listening, kill every session, wait (bounded) for them to be reaped."""
        listeners = list(self.listeners.values())
        await self.api.aclose()
        await self.close_all()
        deadline = time.monotonic() + GRACE
        while any(listener.sessions for listener in listeners) and time.monotonic() < deadline:
            for listener in listeners:
                listener.kill_sessions()
            await asyncio.sleep(TICK)


PORT_FILE = "daemon.port"
"""The port the last daemon of this root served; the next one tries it first."""


def _last_port(root: SimRoot) -> int:
    try:
        return int((root.path / PORT_FILE).read_text())
    except (OSError, ValueError):
        return 0


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return (info.st_mtime_ns, info.st_ino)


def _free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


async def _main(root: SimRoot, options: LifetimeOptions) -> None:
    daemon = Daemon(root, options)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, daemon.stop.set)
    try:
        await daemon.bind_hosts()
        LOG.info("pid %d serving %s on port %d", os.getpid(), root.path, daemon.port)
        await daemon.serve()
    finally:
        # daemon.json first: from now on `start_daemon` starts a new daemon, which waits
        # (LOCK_WAIT) for our lock instead of handing out addresses that are closing.
        if _recorded_pid(root) == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                root.daemon.unlink()
        await daemon.shutdown()
        LOG.info("stopped")


def _holder_alive(root: SimRoot) -> bool:
    other = _recorded_pid(root)
    return other is not None and pid_is_daemon(other)


def main(argv: list[str]) -> int:
    root, options = parse_argv(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    lock = take_lock(root, wait=LOCK_WAIT, holder_alive=functools.partial(_holder_alive, root))
    other = _recorded_pid(root)
    if lock is None or (other is not None and other != os.getpid() and pid_is_daemon(other)):
        print(
            f"pveplan sim: a daemon is already running for {root.path} (pid {other})",
            file=sys.stderr,
        )
        return 1
    try:
        asyncio.run(_main(root, options))
    except (OSError, ValueError) as exc:  # at start-up only: later, reconcile logs and goes on
        print(f"pveplan sim: cannot start the daemon for {root.path}: {exc}", file=sys.stderr)
        return 1
    finally:
        os.close(lock)  # the lock goes before the interpreter's own (slow) exit
    return 0


def _recorded_pid(root: SimRoot) -> int | None:
    try:
        return int(json.loads(root.daemon.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
