"""`pveplan spec get` against the real spec server: what is retried, what is final.

Run in-process in a temporary sysroot (`PVEPLAN_SYSROOT`): spec get only talks HTTPS and
writes files under it, so no simulated machine is needed.
"""

from __future__ import annotations

import json
import socket
import stat
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from pveplan.executor.pull import fingerprint
from pveplan.executor.specserver import Catalog
from tests.cli_runner import run_cli
from tests.pull._support import OTHER_CERT, SITE_TOKEN, catalog, running_server
from tests.pull.test_node import spec_document


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PVEPLAN_SYSROOT", str(tmp_path))
    return tmp_path


def serving(auth: str, document: dict[str, Any]) -> Catalog:
    published = catalog(auth, nodes=("edge",))  # type: ignore[arg-type]
    spec = msgspec.structs.replace(published.specs["edge"], document=json.dumps(document).encode())
    return msgspec.structs.replace(published, specs={"edge": spec})


def write_pull(root: Path, server: str, pin: str, token: str | None = None) -> None:
    pull = root / "root/.pveplan/pull"
    pull.mkdir(parents=True, exist_ok=True)
    config = {"server": server, "fingerprint": pin, "identity": "edge", "instance": "i-7"}
    (pull / "pull.json").write_text(json.dumps({**config, "bundle": "ab" * 32}))
    if token is not None:
        (pull / "token").write_text(token + "\n")


def marker(root: Path, name: str) -> dict[str, Any] | None:
    path = root / "root/.pveplan/state" / name
    return json.loads(path.read_text()) if path.exists() else None


def stale_success(root: Path) -> None:
    state = root / "root/.pveplan/state"
    state.mkdir(parents=True, exist_ok=True)
    (state / "complete.json").write_text("{}")


def test_fetches_and_saves_the_spec(root: Path) -> None:
    document = spec_document()
    with running_server(serving("site_token", document)) as server:
        write_pull(root, server.info.url, server.info.fingerprint, SITE_TOKEN)
        code, out, err = run_cli(["spec", "get"])
        assert (code, out, err) == (0, "edge: fetched spec base (a1b2c3d4)\n", "")
        assert server.server.status("edge", "i-7").phase == "fetched"
    saved = root / "root/.pveplan/state/spec.yaml"
    assert msgspec.yaml.decode(saved.read_bytes()) == document
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert stat.S_IMODE(saved.parent.stat().st_mode) == 0o700


def test_flags_stand_in_for_pull_json(root: Path, tmp_path: Path) -> None:
    with running_server(serving("site_token", spec_document())) as server:
        token = tmp_path / "my-token"
        token.write_text(SITE_TOKEN)
        flags = {
            "--server": server.info.url,
            "--fingerprint": server.info.fingerprint,
            "--identity": "edge",
            "--token-file": str(token),
        }
        code, out, err = run_cli(["spec", "get", *(w for pair in flags.items() for w in pair)])
        assert code == 0, err
        assert out == "edge: fetched spec base (a1b2c3d4)\n"


@pytest.mark.parametrize(
    ("auth", "token", "nodes", "expected"),
    [
        ("site_token", None, ("edge",), "401: a token is required (the node's token was not"),
        ("site_token", "wrong", ("edge",), "403: token refused (the server refuses this node)"),
        ("network", None, ("core",), "404: no spec for node 'edge' (the server knows no node"),
    ],
)
def test_refusals_are_final_at_once(
    root: Path, auth: str, token: str | None, nodes: tuple[str, ...], expected: str
) -> None:
    stale_success(root)
    with running_server(catalog(auth, nodes=nodes)) as server:  # type: ignore[arg-type]
        write_pull(root, server.info.url, server.info.fingerprint, token)
        started = time.monotonic()
        code, out, err = run_cli(["spec", "get", "--timeout", "60"])
        assert time.monotonic() - started < 10
    assert (code, out) == (1, "")
    assert expected in err and "retrying" not in err and "Traceback" not in err
    failure = marker(root, "failure.json")
    assert failure is not None and failure["phase"] == "spec" and expected in failure["error"]
    assert marker(root, "complete.json") is None
    assert not (root / "root/.pveplan/state/spec.yaml").exists()


def test_a_certificate_other_than_the_pinned_one_is_final(root: Path) -> None:
    with running_server(serving("site_token", spec_document())) as server:
        write_pull(root, server.info.url, fingerprint(OTHER_CERT), SITE_TOKEN)
        code, _, err = run_cli(["spec", "get", "--timeout", "60"])
        assert server.request_lines("/spec/edge") == []
    assert code == 1 and "refusing to send the token" in err and "retrying" not in err
    assert SITE_TOKEN not in err


def test_the_spec_of_another_node_is_refused(root: Path) -> None:
    with running_server(serving("network", {**spec_document(), "identity": "core"})) as server:
        write_pull(root, server.info.url, server.info.fingerprint)
        code, _, err = run_cli(["spec", "get"])
    assert code == 1 and "the server sent the spec of 'core'" in err


def test_an_unreachable_server_is_retried_until_the_timeout(root: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    write_pull(root, f"https://127.0.0.1:{port}", "AB" * 32)
    stale_success(root)
    started = time.monotonic()
    code, _, err = run_cli(["spec", "get", "--timeout", "2.5"])
    elapsed = time.monotonic() - started
    assert code == 1 and 2.0 < elapsed < 10
    assert err.count("connection refused; retrying in") >= 2
    assert "error: no spec after 2.5s: cannot GET" in err
    failure = marker(root, "failure.json")
    assert failure is not None and failure["phase"] == "spec"
    assert marker(root, "complete.json") is None


def test_not_a_pull_node(root: Path) -> None:
    code, _, err = run_cli(["spec", "get"])
    assert code == 1
    assert "pull.json does not exist: this is not a pull-mode node" in err
