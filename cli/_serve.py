"""`pveplan serve`, and the spec server an apply starts for its pull nodes.

The server's certificate is made on first start and kept in the store's secrets, so its
fingerprint (what every pull node pins) stays the same across restarts; `--cert/--key`
use your own. A running server records itself in the store (`serve.json`: URL,
fingerprint, pid), which is how an apply finds it: an apply whose plan has pull nodes uses
that server when it answers with the recorded fingerprint and publishes every pull node
of the plan, and otherwise serves the plan's specs itself for the length of the run.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pveplan.planner import PlanError, pull_identities

from ._select import SiteCache, find_manifest, site_root

if TYPE_CHECKING:
    from pveplan.executor import Bundle, Limits, SpecServerRef
    from pveplan.planner import Plan, SiteConfig
    from pveplan.store import Store

    from . import Console

DEFAULT_PORT = 44443
SERVER_FILE = "serve.json"


def certificate(store: Store, cert: str | None, key: str | None) -> tuple[bytes, bytes]:
    """The server's certificate and key: the files given, else the store's (made once)."""
    from pveplan.executor import load_or_create_certificate

    if cert or key:
        if not (cert and key):
            raise PlanError.at(None, "--cert and --key go together: give both, or neither")
        try:
            return Path(cert).read_bytes(), Path(key).read_bytes()
        except OSError as exc:
            raise PlanError.at(None, f"cannot read {exc.filename}: {exc.strerror}") from None
    pem, private, _ = load_or_create_certificate(store.get_secret, store.put_secret)
    return pem, private


def listen_address(site: SiteConfig, bind: str | None, port: int | None) -> tuple[str, int]:
    """Where to listen: the flags, else the host and port of site.yaml's `server_url`, else
    127.0.0.1 and the default port."""
    url = urlsplit(site.site.defaults.server_url or "")
    return (
        bind or url.hostname or "127.0.0.1",
        port if port is not None else url.port or DEFAULT_PORT,
    )


def server_limits(site: SiteConfig) -> Limits:
    """The spec server's limits: site.yaml's `spec_server:` settings over the server's
    defaults (the server owns the defaults; site.yaml names only what it changes)."""
    import msgspec

    from pveplan.executor import Limits

    settings = msgspec.structs.asdict(site.site.spec_server)
    try:
        return Limits(**{name: value for name, value in settings.items() if value is not None})
    except ValueError as exc:
        raise PlanError.at(
            None, f"site.yaml: {exc}", "see docs/pull.md, Limits, for each setting"
        ) from None


def _bundle_lookup(bundle: Callable[[], Bundle]) -> Callable[[str], Path | None]:
    def lookup(digest: str) -> Path | None:
        current = bundle()
        return current.path if digest == current.hash else None

    return lookup


def _log_line(stream: Any = None) -> Callable[[str], None]:
    def log(line: str) -> None:
        out = stream or sys.stderr
        out.write(line + "\n")
        out.flush()

    return log


async def _start(
    nursery: Any,
    *,
    load_catalog: Callable[[], Any],
    bundle: Callable[[], Bundle],
    cert: tuple[bytes, bytes],
    address: tuple[str, int],
    log: Callable[[str], None],
    busy: str,
    limits: Limits,
    reload_on_sighup: bool = False,
) -> Any:
    """Start the spec server in `nursery`; its `ServerInfo`. A port that cannot be bound
    is one `PlanError`, with `busy` as the hint."""
    from pveplan.executor import serve_specs

    try:
        return await nursery.start(
            lambda task_status: serve_specs(
                load_catalog=load_catalog,
                bundle_path=_bundle_lookup(bundle),
                cert_pem=cert[0],
                key_pem=cert[1],
                bind=address[0],
                port=address[1],
                log=log,
                reload_on_sighup=reload_on_sighup,
                limits=limits,
                task_status=task_status,
            )
        )
    except OSError as exc:
        raise PlanError.at(None, f"spec server: {exc.strerror or exc}", busy) from None


@contextlib.asynccontextmanager
async def serve_for_run(
    console: Console,
    store: Store,
    site: SiteConfig,
    plan: Plan,
    bundle: Callable[[], Bundle],
) -> AsyncIterator[SpecServerRef | None]:
    """The spec server for a run of `plan` (None if it has no pull nodes): the running one
    if there is one that serves them all, else one of our own until the run ends."""
    import trio

    from pveplan.executor import SpecServerRef

    from ._catalog import catalog_for_plan

    identities = pull_identities(plan)
    if not identities:
        yield None
        return
    running = await trio.to_thread.run_sync(_running_server, store, identities)
    if running is not None:
        console.error(f"using the running spec server at {running.url}")
        yield running
        return
    config = site.host(plan.host)
    if site.site.defaults.server_url:
        host, port = listen_address(site, None, None)
    elif config.sim:
        host, port = "127.0.0.1", 0  # an ephemeral port: runs never collide
    else:
        raise PlanError.at(
            None,
            f"pull nodes ({', '.join(identities)}) fetch their specs from the spec server, and "
            "site.yaml sets no defaults.server_url",
            "set defaults.server_url to an https:// address of this machine that the VMs can "
            "reach (the server listens there), or run `pveplan serve` with --bind",
        )
    cert, key = certificate(store, None, None)
    limits = server_limits(site)
    catalog = catalog_for_plan(plan, site)
    log_file = store.local_dir / "serve.log"
    with log_file.open("a") as log_stream:
        async with trio.open_nursery() as nursery:
            info = await _start(
                nursery,
                load_catalog=lambda: catalog,
                bundle=bundle,
                cert=(cert, key),
                address=(host, port),
                log=_log_line(log_stream),
                busy="another process holds the port: stop it, or set another port in "
                "site.yaml's defaults.server_url",
                limits=limits,
            )
            url = site.site.defaults.server_url.rstrip("/") or info.url
            yield SpecServerRef(url=url, fingerprint=info.fingerprint)
            nursery.cancel_scope.cancel()


def _running_server(store: Store, identities: list[str]) -> SpecServerRef | None:
    """The server recorded in the store, if it answers with its recorded certificate
    (else None). One that answers but misses some of `identities` is an error: it would
    make those nodes wait for specs it does not have."""
    from pveplan.executor import SpecServerRef, published_specs

    try:
        record = json.loads((store.local_dir / SERVER_FILE).read_text())
        url, fingerprint, pid = record["url"], record["fingerprint"], int(record["pid"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    published = published_specs(url, fingerprint, timeout=3.0)
    if published is None:
        return None
    missing = [name for name in identities if name not in published]
    if missing:
        raise PlanError.at(
            None,
            f"the running spec server (pid {pid}, {url}) does not publish {', '.join(missing)}",
            f"reload it with `kill -HUP {pid}` after changing its manifests, or stop it and "
            "let apply serve the plan itself",
        )
    return SpecServerRef(url=url, fingerprint=fingerprint)


def _hint_non_hex_key(signing_key: str | None, log: Callable[[str], None]) -> None:
    """homestak keys tokens with the hex-decoded signing key; a text key works only here."""
    from pveplan.executor import NON_HEX_KEY_HINT, signing_key_is_hex

    if signing_key and not signing_key_is_hex(signing_key):
        log(f"hint: {NON_HEX_KEY_HINT}")


def run_serve(args: argparse.Namespace, console: Console) -> int:
    """`pveplan serve`: publish the site config's pull nodes until stopped."""
    import signal

    import trio

    from ._catalog import catalog_for_site
    from ._session import open_run_store, single_error

    root = site_root(args, console, None)
    extra = [Path(p) for p in args.manifest_file or []]
    extra += [find_manifest(root, name) for name in args.manifest or []]
    log = _log_line()

    def load() -> Any:
        from pveplan import dsl
        from pveplan.executor import CatalogError

        try:
            site = SiteCache().get(root)  # a fresh read each time: SIGHUP picks up edits
            return catalog_for_site(site, extra, warn=lambda text: log(f"warning: {text}"))
        except (dsl.DslError, PlanError) as exc:  # their messages name files, never values
            raise CatalogError(str(exc).strip().splitlines()[0]) from None

    site = SiteCache().get(root)  # a broken site config fails here, before anything listens
    catalog = catalog_for_site(site, extra, warn=lambda text: log(f"warning: {text}"))
    _hint_non_hex_key(catalog.signing_key, log)
    host, port = listen_address(site, args.bind, args.port)
    limits = server_limits(site)  # read once: a SIGHUP reloads the catalog, not the limits

    with open_run_store(console) as store:
        cert, key = certificate(store, args.cert, args.key)

        async def main() -> None:
            from pveplan.executor import current_bundle

            bundle = functools.cache(lambda: current_bundle(store.local_dir / "bundles"))
            unused = [catalog]  # the start uses the catalog loaded above; reloads read anew

            def load_catalog() -> Any:
                return unused.pop() if unused else load()

            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async with trio.open_nursery() as nursery:
                    info = await _start(
                        nursery,
                        load_catalog=load_catalog,
                        bundle=bundle,
                        cert=(cert, key),
                        address=(host, port),
                        log=log,
                        busy="another process holds the port (a spec server already running?): "
                        "stop it, or pick another with --port",
                        limits=limits,
                        reload_on_sighup=True,
                    )
                    record = store.local_dir / SERVER_FILE
                    record.write_text(
                        json.dumps(
                            {"url": info.url, "fingerprint": info.fingerprint, "pid": os.getpid()}
                        )
                    )
                    try:
                        names = ", ".join(sorted(catalog.specs)) or "none"
                        console.print(f"spec server on {info.url} (pid {os.getpid()})")
                        console.print(f"certificate SHA-256 fingerprint {info.fingerprint}")
                        console.print(f"serving {len(catalog.specs)} specs: {names}")
                        console.out.flush()
                        async for signum in signals:
                            log(
                                f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} "
                                f"stopping on {signal.Signals(signum).name}"
                            )
                            nursery.cancel_scope.cancel()
                            break
                    finally:
                        with contextlib.suppress(FileNotFoundError):
                            record.unlink()

        try:
            trio.run(main)
        except BaseExceptionGroup as group:
            raise single_error(group) from None
    return 0
