"""What the spec server sustains: 50 pull clients fetching their specs over pinned HTTPS.

The server runs in a child process (so the clients' threads do not share its GIL) on
127.0.0.1, an ephemeral port, a freshly generated certificate and a synthetic catalog of
`--nodes` nodes in the `site_token` posture. `--clients` threads each fetch their own
node's spec again and again with a valid provisioning token (the costlier check: an HMAC
per request) for `--seconds`, twice:

(a) keep-alive: one pinned connection per client, as a node's `PullClient` keeps it;
(b) a new connection per request: a TLS handshake and a pin check every time.

    python benchmarks/spec_server.py [--seconds 5] [--clients 50] [--nodes 50]

Prints requests/s, p50/p99 latency and errors; asserts nothing; loopback only; stops by
itself. Secrets are generated here, handed to the child on stdin, and never printed.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DOCUMENT_BYTES = 4096


def serve(config: dict[str, object]) -> None:
    """The child: serve the synthetic catalog until stdin closes."""
    from functools import partial

    import trio

    from pveplan.executor.specserver import Catalog, PublishedSpec, serve_specs

    nodes = [f"node-{index:03d}" for index in range(int(config["nodes"]))]  # type: ignore[call-overload]
    filler = "x" * DOCUMENT_BYTES
    catalog = Catalog(
        specs={
            node: PublishedSpec(
                identity=node,
                spec_name=f"{node}-spec",
                auth_method="site_token",
                spec_hash=f"{index:064x}",
                document=json.dumps({"node": node, "filler": filler}).encode(),
            )
            for index, node in enumerate(nodes)
        },
        site_token=str(config["site_token"]),
        signing_key=str(config["signing_key"]),
    )
    lines = 0

    def count(line: str) -> None:
        nonlocal lines
        lines += 1

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            info = await nursery.start(
                partial(
                    serve_specs,
                    load_catalog=lambda: catalog,
                    bundle_path=lambda digest: None,
                    cert_pem=str(config["cert"]).encode(),
                    key_pem=str(config["key"]).encode(),
                    port=0,
                    log=count,
                )
            )
            print(info.port, info.fingerprint, flush=True)
            await trio.to_thread.run_sync(sys.stdin.read)  # until the parent closes it
            nursery.cancel_scope.cancel()

    trio.run(main)


def hammer(
    url: str,
    pin: str,
    tokens: list[str],
    nodes: list[str],
    seconds: float,
    *,
    keep_alive: bool,
) -> tuple[list[float], int]:
    """Every client thread fetches its node's spec until the deadline; latencies in s."""
    from pveplan.executor.pull import PullClient, PullError

    latencies: list[list[float]] = [[] for _ in nodes]
    errors = [0] * len(nodes)
    start = threading.Barrier(len(nodes) + 1)
    deadline = [0.0]

    def client(index: int) -> None:
        with PullClient(url, pin, token=tokens[index], timeout=10) as pull:
            start.wait()
            path = f"/spec/{nodes[index]}"
            while time.perf_counter() < deadline[0]:
                began = time.perf_counter()
                try:
                    pull.get_bytes(path)
                except PullError:
                    errors[index] += 1
                    continue
                finally:
                    if not keep_alive:
                        pull.close()
                latencies[index].append(time.perf_counter() - began)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(nodes))]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + seconds
    start.wait()
    for thread in threads:
        thread.join(timeout=seconds + 30)
    return [value for per_client in latencies for value in per_client], sum(errors)


def report(title: str, latencies: list[float], errors: int, seconds: float) -> None:
    if not latencies:
        print(f"{title}: no successful requests, {errors} errors")
        return
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    print(
        f"{title}: {len(latencies) / seconds:8.0f} requests/s"
        f"  p50 {cuts[49] * 1000:6.1f} ms  p99 {cuts[98] * 1000:6.1f} ms"
        f"  ({len(latencies)} requests, {errors} errors)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(json.loads(sys.stdin.readline()))
        return

    from pveplan.executor.pull import generate_certificate, mint_token

    cert, key = generate_certificate()
    config = {
        "nodes": args.nodes,
        "cert": cert.decode(),
        "key": key.decode(),
        "site_token": secrets.token_urlsafe(32),
        "signing_key": secrets.token_urlsafe(32),
    }
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        child.stdin.write(json.dumps(config) + "\n")
        child.stdin.flush()
        port, pin = child.stdout.readline().split()
        url = f"https://127.0.0.1:{port}"
        nodes = [f"node-{index % args.nodes:03d}" for index in range(args.clients)]
        tokens = [mint_token(node, f"{node}-spec", str(config["signing_key"])) for node in nodes]
        print(
            f"spec server on {url}: {args.nodes} nodes, {DOCUMENT_BYTES // 1024} KiB specs,"
            f" {args.clients} clients, {args.seconds:g} s each, provisioning tokens"
        )
        for title, keep_alive in (("keep-alive        ", True), ("new conn/request  ", False)):
            latencies, errors = hammer(url, pin, tokens, nodes, args.seconds, keep_alive=keep_alive)
            report(title, latencies, errors, args.seconds)
    finally:
        child.stdin.close()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


if __name__ == "__main__":
    main()
