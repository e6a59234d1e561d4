"""A node file's API settings (issue 19): `transport` and the pinned `api_fingerprint`,
and how the composition root picks a host's transport from them and secrets.yaml.

Why: the choice decides whether a token travels, and to whom. A pin must be checked when
the file is read (a typo must not become "no pin": that would fall back to the CAs), and
`transport: api` without an endpoint or token must say what to add.
"""

from __future__ import annotations

import pytest

from pveplan import dsl
from pveplan.cli._session import host_api, pinned_host_info
from pveplan.planner import PlanError

from .conftest import site_with

PIN = ":".join(["AB"] * 31 + ["0F"])


def test_a_node_file_says_nothing_by_default(fixture_site) -> None:
    father = fixture_site.host("father")
    assert father.transport is None and father.api_fingerprint is None


@pytest.mark.parametrize(
    "written",
    [PIN, PIN.lower(), PIN.replace(":", "").lower(), f"sha256:{PIN}", f"SHA256 Fingerprint={PIN}"],
)
def test_a_pin_is_read_in_the_forms_people_paste(site_dir, written: str) -> None:
    site = site_with(
        site_dir,
        {"nodes/father.yaml": f'api_endpoint: "https://f:8006"\napi_fingerprint: "{written}"\n'},
    )
    assert site.host("father").api_fingerprint == PIN


def test_a_pin_that_is_no_fingerprint_is_refused_at_its_line(site_dir) -> None:
    site = site_with(
        site_dir,
        {"nodes/father.yaml": 'api_endpoint: "https://f:8006"\napi_fingerprint: "AB:CD"\n'},
    )
    with pytest.raises(PlanError) as info:
        site.host("father")
    assert info.value.summary == "api_fingerprint is not a SHA-256 certificate fingerprint"
    assert info.value.location is not None and info.value.location.line == 2
    assert "pvenode cert info" in info.value.detail


def test_transport_api_needs_an_endpoint(site_dir) -> None:
    site = site_with(site_dir, {"nodes/father.yaml": "transport: api\n"})
    with pytest.raises(PlanError, match="transport: api needs api_endpoint"):
        site.host("father")


def test_an_endpoint_must_be_https(site_dir) -> None:
    site = site_with(site_dir, {"nodes/father.yaml": 'api_endpoint: "http://f:8006"\n'})
    with pytest.raises(PlanError, match="https://"):
        site.host("father")


def test_transport_is_api_or_ssh(site_dir) -> None:
    site = site_with(site_dir, {"nodes/father.yaml": "transport: rest\n"})
    with pytest.raises(dsl.DslError):
        site.host("father")


# --- the composition root's choice -------------------------------------------------------


def test_the_api_is_the_default_where_endpoint_and_token_are_given(fixture_site) -> None:
    api = host_api(fixture_site, fixture_site.host("father"))
    assert api is not None
    assert api.endpoint == "https://father.core:8006"
    assert api.token_secret == "api_tokens.father"
    assert api.fingerprint is None and api.source is not None
    assert api.source.endswith("nodes/father.yaml")


def test_without_the_token_secret_the_default_is_ssh(site_dir) -> None:
    site = site_with(site_dir, {"secrets.yaml": "api_tokens:\n  mother: x\n"})
    assert host_api(site, site.host("father")) is None


def test_transport_ssh_keeps_pvesh_over_ssh(site_dir) -> None:
    site = site_with(
        site_dir, {"nodes/father.yaml": 'api_endpoint: "https://f:8006"\ntransport: ssh\n'}
    )
    assert host_api(site, site.host("father")) is None


def test_transport_api_without_the_token_secret_says_what_to_add(site_dir) -> None:
    site = site_with(
        site_dir,
        {
            "nodes/father.yaml": 'api_endpoint: "https://f:8006"\ntransport: api\n',
            "secrets.yaml": "api_tokens:\n  mother: x\n",
        },
    )
    with pytest.raises(PlanError, match=r"secrets\.yaml has no api_tokens\.father"):
        host_api(site, site.host("father"))


def test_an_api_host_needs_no_ssh_key_until_ssh_is_needed(fixture_site) -> None:
    config = fixture_site.host("father")
    with pytest.raises(PlanError, match="no pinned SSH host key"):
        pinned_host_info(config)
    info = pinned_host_info(config, host_api(fixture_site, config, fingerprint=PIN))
    assert info.host_key == "" and info.api is not None and info.api.fingerprint == PIN
