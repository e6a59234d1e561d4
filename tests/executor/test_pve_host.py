"""A nested PVE host's API token and certificate pin (executor/kinds/_pve_host.py).

Why: each nested level is reached with a least-privilege token over HTTPS, not as root.
The api_token step makes the role, the user, both ACLs and a privilege-separated token,
and must survive a re-run or a resume after a kill (what exists is adopted), while a
token whose value this store lost is refused with a way out. Its requests are held to
PVE's API schema, as sent over the API and as `pvesh` argv (how the step sends them: as
root over SSH).
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from pveplan.executor import StepFailed
from pveplan.executor.kinds._pve_host import (
    TOKEN_PATH,
    ensure_token,
    pem_fingerprint,
    token_requests,
)
from pveplan.executor.pve import PveDriver, PveError, PveRequest, cert_fingerprint, pvesh_argv
from pveplan.executor.pve._privileges import ROLE, ROLE_ID, least_privilege_token
from pveplan.planner import ApiTokenArgs
from tests.contract.pve_contract import check_api_request, check_call

ARGS = ApiTokenArgs(user="pveplan@pve", token="pveplan", privsep=1)
VALUE = "0b7c3c62-7e5d-4a0c-9a43-0d5b4b3f7a11"


class FakeChannel:
    name = "pve1"


class FakePve:
    """Answers as PVE does; `existing` names what is there already (role, user, token)."""

    def __init__(self, *existing: str, fail: str | None = None) -> None:
        self.existing = set(existing)
        self.fail = fail
        self.calls: list[PveRequest] = []

    async def call(self, request: PveRequest, *, timeout: float) -> Any:
        self.calls.append(request)
        what = {
            "/access/roles": "role",
            "/access/users": "user",
            TOKEN_PATH: "token",
        }.get(request.path)
        if self.fail is not None and what == "user":
            raise PveError(f"create /access/users: {self.fail}")
        if what in self.existing:
            raise PveError(f"create {request.path}: {what} already exists")
        if what == "token":
            return {"full-tokenid": "pveplan@pve!pveplan", "info": {"privsep": 1}, "value": VALUE}
        return None


def ensure(pve: FakePve, known: str | None = None) -> str:
    driver = PveDriver(FakeChannel(), "pve1", transport=pve)  # type: ignore[arg-type]

    async def main() -> str:
        with trio.fail_after(5):
            return await ensure_token(driver, ARGS, known)

    return trio.run(main)


def test_the_planned_token_is_made_with_exactly_the_least_privilege_role() -> None:
    made = token_requests(ARGS)
    assert made == least_privilege_token("pveplan@pve", "pveplan")
    assert made[0].params == {"roleid": ROLE_ID, "privs": ",".join(ROLE)}
    assert [r.path for r in made].count(TOKEN_PATH) == 1
    token = next(r for r in made if r.path == TOKEN_PATH)
    assert token.params == {"privsep": True}
    # a token with its user's privileges (privsep 0) needs only the token
    assert [r.path for r in token_requests(ApiTokenArgs(user="a@pve", token="t", privsep=0))] == [
        TOKEN_PATH
    ]


@pytest.mark.parametrize("request_", token_requests(ARGS), ids=str)
def test_each_request_conforms_to_the_api_schema_and_to_pvesh(request_: PveRequest) -> None:
    assert (
        check_api_request(request_.method, request_.path, request_.path_params, request_.params)
        == []
    ), str(request_)
    assert check_call(pvesh_argv(request_)) == [], pvesh_argv(request_)


def test_a_fresh_host_gets_everything_and_the_token_as_secrets_yaml_holds_it() -> None:
    pve = FakePve()
    assert ensure(pve) == f"pveplan@pve!pveplan={VALUE}"
    assert pve.calls == token_requests(ARGS)


@pytest.mark.parametrize("existing", [("role",), ("role", "user"), ("role", "user", "token")])
def test_a_rerun_or_a_resume_adopts_what_exists(existing: tuple[str, ...]) -> None:
    """A run killed after the role, the user or the token was made: the next one goes on
    (the ACLs are set again: PVE takes that as it is)."""
    known = f"pveplan@pve!pveplan={VALUE}" if "token" in existing else None
    pve = FakePve(*existing)
    assert ensure(pve, known) == f"pveplan@pve!pveplan={VALUE}"
    assert pve.calls == token_requests(ARGS)  # the token's own ACL too, after it


def test_a_token_whose_value_the_store_lost_is_refused_saying_how_to_start_over() -> None:
    with pytest.raises(StepFailed) as caught:
        ensure(FakePve("role", "user", "token"))
    message = str(caught.value)
    assert "already has API token pveplan@pve!pveplan" in message
    assert "not in this store" in message
    assert "pveum user token remove pveplan@pve pveplan" in message


def test_another_failure_names_the_token_and_pve_s_message() -> None:
    with pytest.raises(StepFailed, match=r"API token pveplan@pve!pveplan on pve1: .*no realm"):
        ensure(FakePve(fail="no realm 'pve'"))


def test_the_pin_is_the_sha256_of_the_certificate_pve_serves() -> None:
    import ssl

    from pveplan.executor.pull import fingerprint, generate_certificate

    cert_pem, _ = generate_certificate("pve1")
    der = ssl.PEM_cert_to_DER_cert(cert_pem.decode())
    assert pem_fingerprint(b"junk before\n" + cert_pem) == cert_fingerprint(der)
    assert pem_fingerprint(cert_pem) == fingerprint(cert_pem)  # as the spec server pins
    with pytest.raises(ValueError):
        pem_fingerprint(b"not a certificate")
