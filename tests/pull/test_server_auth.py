"""The auth matrix: for each posture, what opens a node's spec and report, and what does not.

Every refusal is a 401 or a 403 whose body holds no part of any document; every accepted
request gets exactly its own node's document; every refusal is logged with its detailed
reason; and no secret (all of them carry the canary) ever reaches a log line.
"""

from __future__ import annotations

import time

import msgspec
import pytest

from pveplan.executor.pull import (
    HttpStatusError,
    NodeReport,
    PullClient,
    PullError,
    mint_token,
)
from pveplan.executor.specserver import Catalog

from ._support import (
    CANARY,
    SIGNING_KEY,
    SITE_TOKEN,
    Running,
    catalog,
    document,
    node_token,
    raw_request,
    running_server,
)

NOW = int(time.time())


def provisioning(node: str = "edge", *, issued: int = NOW, key: str = SIGNING_KEY) -> str:
    return mint_token(node, f"{node}-spec", key, now=issued)


def tampered() -> str:
    token = provisioning()
    payload, mac = token.split(".")
    return f"{payload}.{mac[:-2]}{'A' if mac[-2] != 'A' else 'B'}{mac[-1]}"


REFUSED_EVERYWHERE = {
    "another node's provisioning token": (provisioning("core"), "token for another node"),
    "an expired provisioning token": (provisioning(issued=NOW - 2 * 86400), "expired token ("),
    "a provisioning token from the future": (
        provisioning(issued=NOW + 7200),
        "token issued in the future",
    ),
    "a tampered provisioning token": (tampered(), "bad signature"),
    "a provisioning token from another key": (provisioning(key="other"), "bad signature"),
    "a wrong token": (f"wrong-{CANARY}", "wrong "),
    "the other node's static token": (node_token("core"), "wrong "),
}


def fetch(running: Running, token: str | None, node: str = "edge") -> tuple[int, bytes, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    status, response_headers, body = raw_request(
        running.info, "GET", f"/spec/{node}?instance=i-1", headers=headers
    )
    return status, body, response_headers


def assert_refused(running: Running, token: str | None, status: int, reason: str) -> None:
    got, body, headers = fetch(running, token)
    assert got == status
    for node in ("edge", "core"):
        assert document(node) not in body
        assert CANARY.encode() not in body
    assert msgspec.json.decode(body) == {
        "error": "a token is required" if status == 401 else "token refused"
    }
    if status == 401:
        assert headers["www-authenticate"] == "Bearer"
    line = running.wait_for_log(f"refused: {reason}")
    assert f" GET /spec/edge {status} " in line


def assert_served(running: Running, token: str | None, node: str = "edge") -> None:
    status, body, headers = fetch(running, token, node)
    assert (status, body) == (200, document(node))
    assert headers["x-pveplan-spec-hash"] == f"{node}-hash".ljust(64, "0")


def assert_no_secret_logged(running: Running, *secrets: str) -> None:
    text = "\n".join(running.logs)
    assert CANARY not in text
    for secret in secrets:
        assert secret not in text


@pytest.mark.parametrize("posture", ["site_token", "node_token"])
def test_token_postures(posture: str) -> None:
    used: list[str] = []
    with running_server(catalog(posture)) as running:  # type: ignore[arg-type]
        assert_refused(running, None, 401, "no token presented")
        for token, reason in REFUSED_EVERYWHERE.values():
            used.append(token)
            running.logs.clear()
            assert_refused(running, token, 403, reason)
        if posture == "site_token":
            assert_refused(running, node_token("edge"), 403, "wrong site token")
            assert_served(running, SITE_TOKEN)
            assert_served(running, SITE_TOKEN, "core")
        else:
            assert_refused(running, SITE_TOKEN, 403, "wrong node token for edge")
            assert_served(running, node_token("edge"))
            assert_served(running, node_token("core"), "core")
        assert_served(running, provisioning("edge"))
        assert_served(running, provisioning("core"), "core")
    assert_no_secret_logged(running, SITE_TOKEN, SIGNING_KEY, *used)


def test_network_posture_needs_no_token_and_ignores_one() -> None:
    with running_server(catalog("network")) as running:
        assert_served(running, None)
        assert_served(running, f"anything-{CANARY}")
        assert_served(running, None, "core")
    assert_no_secret_logged(running)


def test_missing_secrets_refuse_and_say_why() -> None:
    no_secrets = catalog("site_token", site_token=None, signing_key=None)
    with running_server(no_secrets) as running:
        assert_refused(running, f"x-{CANARY}", 403, "no site token is configured")
        assert_refused(
            running, provisioning(), 403, "provisioning token presented but no signing key"
        )
    no_node_token = catalog("node_token", node_tokens={"core": node_token("core")})
    with running_server(no_node_token) as running:
        assert_refused(running, node_token("edge"), 403, "no node token for edge is configured")
        assert_served(running, provisioning())
    assert_no_secret_logged(running)


def test_malformed_authorization_headers() -> None:
    with running_server(catalog("site_token")) as running:
        for header in ("Basic " + SITE_TOKEN, "Bearer", "Bearer   ", SITE_TOKEN):
            status, _, body = raw_request(
                running.info, "GET", "/spec/edge", headers={"Authorization": header}
            )
            assert status == 401 and CANARY.encode() not in body
        status, _, body = raw_request(
            running.info,
            "GET",
            "/spec/edge",
            headers={"Authorization": f"bearer {SITE_TOKEN}"},
        )
        assert status == 200 and body == document("edge")
    assert_no_secret_logged(running)


def test_reports_need_the_same_token() -> None:
    report = NodeReport(
        identity="edge", instance="i-1", spec_hash="h", status="converged", drift=["x"]
    )
    with running_server(catalog("node_token")) as running:
        url, pin = running.info.url, running.info.fingerprint
        for token in (None, node_token("core"), provisioning("core")):
            with PullClient(url, pin, token=token) as client:
                with pytest.raises(HttpStatusError) as caught:
                    client.post_json("/report/edge", report)
                assert caught.value.status in (401, 403)
                with pytest.raises(HttpStatusError):
                    client.get_json("/report/edge")
        assert running.server.reports == {}
        with PullClient(url, pin, token=node_token("edge")) as client:
            assert client.post_json("/report/edge", report) == {"status": "recorded"}
            assert client.get_json("/report/edge")["phase"] == "reported"
    assert running.server.reports == {"edge": report}
    assert_no_secret_logged(running)


def test_client_errors_never_show_the_token() -> None:
    token = f"client-{CANARY}"
    with (
        running_server(catalog("site_token")) as running,
        PullClient(running.info.url, running.info.fingerprint, token=token) as client,
        pytest.raises(HttpStatusError) as caught,
    ):
        client.get_json("/spec/edge")
    assert caught.value.status == 403 and caught.value.error == "token refused"
    assert CANARY not in str(caught.value) and CANARY not in repr(caught.value)
    with pytest.raises(PullError) as bad:
        PullClient("https://127.0.0.1:1", "00" * 32, token=f"line\n{CANARY}")
    assert CANARY not in str(bad.value)


def test_catalog_repr_shows_no_secret() -> None:
    shown = repr(catalog("site_token")) + repr(catalog("node_token").specs["edge"])
    assert CANARY not in shown
    assert "edge" in shown
    assert isinstance(catalog("network"), Catalog)
