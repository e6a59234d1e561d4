"""Wiring a run: the store, the driver's SSH key, host access (starting the simulator for a
host whose node file says `sim: true`), and the site's secrets, handed to the executor's
`run_session` (which owns the trio side: bridge loop, SSH pool, bundle).

This is the composition root's job, so it lives in the CLI: it is the one place that
sees the site config (planner) and the executor together.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from pveplan.planner import PlanError

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from pveplan.executor import ApiAccess, Bundle, HostInfo, Services
    from pveplan.planner import HostConfig, Plan, SiteConfig
    from pveplan.store import Store

    from . import Console

T = TypeVar("T")


def sim_root(console: Console, store_path: Path) -> Path:
    """The simulator's directory: $PVEPLAN_SIM_DIR, else `sim/` inside the store."""
    override = console.env.get("PVEPLAN_SIM_DIR")
    return Path(override) if override else store_path / "sim"


def driver_key_path(console: Console) -> Path:
    """Where the driver's SSH key lives: $PVEPLAN_DRIVER_KEY, else the XDG config dir.

    Not in the store: a lost store must not lock pveplan out of the VMs it made (they
    trust this key), so that apply can adopt them again.
    """
    env = console.env
    if env.get("PVEPLAN_DRIVER_KEY"):
        return Path(env["PVEPLAN_DRIVER_KEY"])
    config = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(config) / "pveplan" / "driver_ed25519"


def driver_key(console: Console) -> tuple[bytes, str]:
    """The driver's own SSH key pair, made on first use (private half mode 0600)."""
    import os

    from pveplan.executor import generate_ed25519, public_line

    path = driver_key_path(console)
    try:
        private = path.read_bytes()
    except FileNotFoundError:
        private, _ = generate_ed25519("pveplan-driver")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(private)
        os.replace(tmp, path)
    except OSError as exc:
        raise PlanError.at(
            None, f"cannot read the driver's SSH key {path}: {exc.strerror or exc}"
        ) from None
    try:
        return private, public_line(private, "pveplan-driver")
    except ValueError as exc:
        raise PlanError.at(None, f"{path} is not an ed25519 private key: {exc}") from None


def host_info(
    console: Console, site: SiteConfig, host: str, public_key: str, store: Store
) -> HostInfo:
    """How to reach `host`: the simulator's daemon for a `sim: true` node, else the site
    config's address, pinned host key and (`host_api`) API endpoint and token."""
    from pveplan.executor import HostInfo

    config = site.host(host)
    if config.sim:
        from pveplan.sim import SimHost, ensure_simulator

        root = sim_root(console, store.local_dir)
        # The host its node file describes (its datastore and bridge are modelled), reached
        # as the node file says: `transport: api` rehearses PVE's HTTPS API with the site's
        # own token (registered with the simulator, which serves it with a certificate of
        # its own, pinned here from its daemon's answer); otherwise `pvesh` over SSH.
        described = SimHost(
            node=config.pve_node, datastore=config.datastore, bridges=(config.bridge,)
        )
        api = host_api(site, config) if config.transport == "api" else None
        tokens = {config.pve_node: site.secrets.reveal(config.api_token)} if api else None
        try:
            daemon = ensure_simulator(root, [described], public_key, api_tokens=tokens)
        except Exception as exc:
            raise PlanError.at(None, f"cannot start the simulator for {host}: {exc}") from None
        entry = daemon["hosts"][config.pve_node]
        if api is not None:
            served = daemon["api"][config.pve_node]
            api = msgspec.structs.replace(
                api, endpoint=served["url"], fingerprint=served["fingerprint"]
            )
        return HostInfo(
            name=host,
            pve_node=config.pve_node,
            ssh_host=entry["address"],
            ssh_port=daemon["port"],
            host_key=entry["host_key"],
            vm_ssh_port=daemon["port"],
            api=api,
        )
    return pinned_host_info(config, host_api(site, config))


def plan_hosts(*plans: Plan | None, steps_only: bool = False) -> tuple[str, ...]:
    """The PVE hosts `plans` run steps on, at their top level (a nested host is reached
    through its delegate, not from here): each plan's own host first, then the hosts its
    nodes name (`host:`), in name order. `steps_only`: only hosts some step runs on (what
    a probe lists: a `--target-host` plan never reaches for the hosts it leaves out)."""
    used = {s.host for p in plans if p is not None for s in p.steps}
    first = [p.host for p in plans if p is not None and (p.host in used or not steps_only)]
    return tuple(dict.fromkeys([*first, *sorted(used - set(first))]))


def hosts_info(
    console: Console, site: SiteConfig, hosts: tuple[str, ...], public_key: str, store: Store
) -> dict[str, HostInfo]:
    """`host_info` of each of `hosts`: how a run reaches every host its plan names."""
    return {host: host_info(console, site, host, public_key, store) for host in hosts}


def host_api(
    site: SiteConfig, config: HostConfig, *, fingerprint: str | None = None
) -> ApiAccess | None:
    """The API transport of a host, or None for `pvesh` over SSH: the node file's
    `transport`, else the API when `api_endpoint` is set and secrets.yaml has its token.
    `fingerprint` pins a certificate the node file does not (a simulated host's)."""
    from pveplan.executor import ApiAccess

    if config.transport == "ssh" or not config.api_endpoint or config.api_token is None:
        return None
    if not site.secrets.has(config.api_token):
        if config.transport is None:
            return None
        raise PlanError.at(
            None,
            f"{config.file} says transport: api, but secrets.yaml has no {config.api_token.name}",
            f"add it ({config.api_token.name}: USER@REALM!TOKENID=SECRET, as"
            " `pveum user token add` prints it), or use transport: ssh",
        )
    return ApiAccess(
        endpoint=config.api_endpoint,
        token_secret=config.api_token.name,
        fingerprint=fingerprint or config.api_fingerprint,
        source=config.file,
    )


def pinned_host_info(config: HostConfig, api: ApiAccess | None = None) -> HostInfo:
    """A real host from its node file, which must pin its SSH host key (no trust on first
    use): the driver's targets, and a nested host's own executor reaching itself. A host
    reached through its API (`api`) may leave the key out until something needs SSH."""
    from pveplan.executor import HostInfo

    host = config.name
    if not config.ssh_host_key and api is None:
        raise PlanError.at(
            None,
            f"host {host} has no pinned SSH host key",
            f"add `ssh_host_key: <the host's ed25519 public key line>` to {config.file} "
            "(check it out of band, e.g. on the console: cat /etc/ssh/ssh_host_ed25519_key.pub); "
            "pveplan never trusts a host key on first use",
        )
    return HostInfo(
        name=host,
        pve_node=config.pve_node,
        ssh_host=config.ssh_host,
        ssh_port=config.ssh_port,
        ssh_user=config.ssh_user or "root",
        host_key=config.ssh_host_key or "",
        vm_ssh_port=config.vm_ssh_port,
        pinned_in=config.file,
        api=api,
    )


@contextlib.contextmanager
def open_run_store(console: Console) -> Iterator[Store]:
    from pveplan.store import open_store

    from ._state import store_location

    with open_store(store_location(console)) as store:
        yield store


def run_trio(
    console: Console,
    store: Store,
    workspace: str,
    hosts: dict[str, HostInfo],
    site: SiteConfig,
    body: Callable[[Services], Awaitable[T]],
    spec_server: Callable[[Callable[[], Bundle]], AbstractAsyncContextManager[Any]] | None = None,
) -> T:
    """Run `body(services)` under trio, inside the asyncio bridge and an SSH pool (the
    executor's `run_session`), with the driver's key and the site's secrets; one error
    out of nested nursery groups, so it renders as one message.

    `spec_server(bundle)`, when given, is entered first and yields the spec server this
    run's pull nodes use (or None); it lives exactly as long as the run.
    """
    from pveplan.executor import run_session, with_deadline
    from pveplan.planner import SecretRef

    def reveal(name: str) -> str:
        return site.secrets.reveal(SecretRef(name=name))

    try:
        return run_session(
            with_deadline(body, console.deadline),  # --timeout: cancels at the deadline
            store=store,
            workspace=workspace,
            hosts=hosts,
            driver_key=driver_key(console),
            reveal=reveal,
            site_root=site.root,
            spec_server=spec_server,
        )
    except BaseExceptionGroup as group:
        raise single_error(group) from None


def single_error(group: BaseExceptionGroup) -> BaseException:
    """The one error inside nested nursery groups (so the CLI can render it), else the group.

    Ctrl-C wins over anything else it caused on the way out.
    """
    interrupt = group.subgroup(KeyboardInterrupt)
    if interrupt is not None:
        return KeyboardInterrupt()
    leaves: list[BaseException] = []

    def collect(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                collect(inner)
        else:
            leaves.append(exc)

    collect(group)
    return leaves[0] if len(leaves) == 1 else group
