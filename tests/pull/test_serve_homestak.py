"""A real `pveplan serve` takes the provisioning tokens homestak's iac-driver mints.

iac-driver mints a pull node's token at create time (HMAC-SHA256 keyed with the
hex-decoded `auth.signing_key`); a node booted by it, or by pveplan, must be able to fetch
its spec from `pveplan serve` with that token. Slow: it starts the server as a process.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pveplan.executor.pull import HttpStatusError, PullClient

from .test_tokens import homestak_mint

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
HEX_KEY = "c0ffee" * 10 + "beef"  # 64 hex digits, as secrets.token_hex(32) writes
STATIC = "static-edge-token-FAKESECRET"
"""homestak's older per-node static token, `auth.node_tokens.edge`."""


def site_config(tmp_path: Path) -> Path:
    """The example site config, with a hex signing key, homestak's nested static token for
    edge, and edge's spec under a posture whose nodes must present a token (node_token)."""
    root = tmp_path / "site-config"
    shutil.copytree(ROOT / "examples" / "site-config", root)
    secrets = root / "secrets.yaml"
    text = secrets.read_text()
    start = text.index("signing_key:")
    end = text.index("\n", start)
    key = f'signing_key: "{HEX_KEY}"\n  node_tokens:\n    edge: "{STATIC}"'
    secrets.write_text(text[:start] + key + text[end:])
    spec = root / "specs" / "base.yaml"
    spec.write_text(spec.read_text().replace("posture: dev", "posture: prod"))
    return root


def test_a_token_homestak_minted_opens_pveplan_serve(tmp_path: Path) -> None:
    site = site_config(tmp_path)
    env = {**os.environ, "PVEPLAN_STORE": str(tmp_path / "store")}
    log = tmp_path / "serve.stderr"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "pveplan.cli", "serve", "--port=0", f"--site-config={site}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            banner = [process.stdout.readline() for _ in range(3)]  # type: ignore[union-attr]
            assert banner[0].startswith("spec server on https://127.0.0.1:"), banner
            url, fingerprint = banner[0].split()[3], banner[1].split()[-1]
            token = homestak_mint("edge", "base", HEX_KEY, int(time.time()))
            with PullClient(url, fingerprint, token=token) as client:
                document = client.get_json("/spec/edge")
            assert document["identity"] == "edge" and document["spec_name"] == "base"
            forged = homestak_mint("edge", "base", "ab" * 32, int(time.time()))
            client = PullClient(url, fingerprint, token=forged)
            with client, pytest.raises(HttpStatusError) as refused:
                client.get_json("/spec/edge")
            assert refused.value.status == 403
            with PullClient(url, fingerprint, token=STATIC) as client:
                assert client.get_json("/spec/edge")["identity"] == "edge"
            client = PullClient(url, fingerprint, token=token)
            with client, pytest.raises(HttpStatusError) as other:
                client.get_json("/spec/not-edge")
            assert other.value.status in (403, 404)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                assert process.wait(timeout=15) == 0
            finally:
                if process.poll() is None:
                    process.kill()
    logged = log.read_text()
    assert token not in logged and HEX_KEY not in logged and STATIC not in logged
    assert "not hex" not in logged  # a hex key: no compat hint
