"""BOOTSTRAP_CODE, run the way cloud-init runs it (`python3 -I -S -c CODE`, no arguments),
against the real spec server serving a real bundle.

The first two tests run it in a bare temporary sysroot and never let it reach `config
apply` (that would converge the test machine itself): the server refuses the pin, or
knows no such node. The last one runs it inside a simulated VM, where the whole chain
runs: download, install, `spec get`, `config apply`, the report.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from pveplan.executor.pull import fingerprint
from pveplan.executor.pull._bootstrap import BOOTSTRAP_CODE
from pveplan.executor.remote._bundle import Bundle, build_bundle
from pveplan.sim import session_env
from tests.pull._support import OTHER_CERT, Running, catalog, node_token, running_server
from tests.pull.test_node import Node, spec_document
from tests.sim import Sim

PYTHON = getattr(sys, "_base_executable", None) or sys.executable
"""The interpreter a fresh image has: no site-packages of ours (`-I -S` anyway)."""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return build_bundle(tmp_path_factory.mktemp("bundle-cache"))


def _pull(root: Path, server: str, pin: str, bundle: Bundle) -> None:
    pull = root / "root/.pveplan/pull"
    pull.mkdir(parents=True, exist_ok=True)
    config = {
        "server": server,
        "fingerprint": pin,
        "identity": "edge",
        "instance": "vm-1",
        "bundle": bundle.hash,
    }
    (pull / "pull.json").write_text(json.dumps(config))


def _bootstrap(root: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-I", "-S", "-c", BOOTSTRAP_CODE],
        env=env or {"PVEPLAN_SYSROOT": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _requests(server: Running, path: str) -> list[str]:
    time.sleep(0.3)  # the server logs a request once its response has left
    return [line for line in server.logs if path in line]


def test_a_wrong_pin_is_refused_before_anything_is_sent(tmp_path: Path, bundle: Bundle) -> None:
    served = lambda digest: bundle.path if digest == bundle.hash else None  # noqa: E731
    with running_server(catalog("network"), bundle_path=served) as server:
        _pull(tmp_path, server.info.url, fingerprint(OTHER_CERT), bundle)
        result = _bootstrap(tmp_path)
        assert result.returncode == 2, result.stderr
        assert "not the pinned one: refusing to talk to it" in result.stderr
        assert _requests(server, "/bundle/") == []
    assert not (tmp_path / "root/.pveplan/bundles" / bundle.hash).exists()


def test_installs_the_bundle_and_launches_it(tmp_path: Path, bundle: Bundle) -> None:
    served = lambda digest: bundle.path if digest == bundle.hash else None  # noqa: E731
    with running_server(catalog("network", nodes=("core",)), bundle_path=served) as server:
        bare = server.info.fingerprint.replace(":", "").lower()  # any spelling pins
        _pull(tmp_path, server.info.url, bare, bundle)
        result = _bootstrap(tmp_path)
        # `spec get` ran from the installed bundle and found no spec for this node: final.
        assert result.returncode == 1, result.stderr
        lines = [line for line in result.stderr.splitlines() if "bootstrap:" in line]
        assert lines == [
            f"pveplan bootstrap: fetching bundle {bundle.hash[:12]} from 127.0.0.1:{server.info.port}",
            f"pveplan bootstrap: installing bundle {bundle.hash[:12]}",
            "pveplan bootstrap: running pveplan spec get",
            "pveplan bootstrap: pveplan spec get failed (exit 1)",
        ]
        assert "no spec for node 'edge'" in result.stderr and "Traceback" not in result.stderr
        assert len(_requests(server, f"/bundle/{bundle.hash}")) == 1
        assert len(_requests(server, "/spec/edge")) == 1
        installed = tmp_path / "root/.pveplan/bundles" / bundle.hash
        assert (installed / "READY").is_file() and (installed / "bundle/run.py").is_file()
        failure = json.loads((tmp_path / "root/.pveplan/state/failure.json").read_text())
        assert failure["phase"] == "spec"

        again = _bootstrap(tmp_path)  # installed already: no second download
        assert again.returncode == 1
        assert f"pveplan bootstrap: bundle {bundle.hash[:12]} is installed" in again.stderr
        assert len(_requests(server, f"/bundle/{bundle.hash}")) == 1


def test_first_boot_of_a_pull_node_converges_and_reports(
    tmp_path_factory: pytest.TempPathFactory, bundle: Bundle
) -> None:
    sim = Sim(tmp_path_factory.mktemp("bootstrap-sim"))
    node = Node(sim, 310)
    document: dict[str, Any] = spec_document(run=None, posture_settings=None)
    published = catalog("node_token", nodes=("edge",))
    spec = msgspec.structs.replace(published.specs["edge"], document=json.dumps(document).encode())
    served = lambda digest: bundle.path if digest == bundle.hash else None  # noqa: E731
    with running_server(
        msgspec.structs.replace(published, specs={"edge": spec}), bundle_path=served
    ) as server:
        _pull(node.tree, server.info.url, server.info.fingerprint, bundle)
        node.write("root/.pveplan/pull/token", node_token("edge").encode())
        env = session_env(sim.root, node.tree, "sim", 310, "root", node.tree / "root")
        result = subprocess.run(
            [str(node.tree / "bin/python3"), "-I", "-S", "-c", BOOTSTRAP_CODE],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stderr.rstrip().endswith("pveplan bootstrap: converged")
        assert node_token("edge") not in result.stdout + result.stderr
        assert "edge: converged on spec base (a1b2c3d4)" in result.stdout
        report = server.server.status("edge", "vm-1").report
        assert report is not None and report.status == "converged"
    assert node.tool("dpkg-query", "-W", "-f=${Status}", "htop").stdout == "install ok installed"
    complete = node.marker("complete.json")
    assert complete is not None and complete["instance"] == "vm-1"
