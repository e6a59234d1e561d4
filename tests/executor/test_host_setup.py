"""The host scenarios' steps (executor/kinds/_host_setup.py, _host_files.py).

Why: pve-setup and user-setup must be idempotent against a real host (a step checks
before it changes, so a re-run after a lost store changes nothing that is right), and
what pve-setup leaves in the local site config must not damage it: secrets.yaml keeps its
comments and other secrets, stays 0600, and a hand-written node file is never overwritten.
"""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import trio
import yaml

from pveplan.executor import StepFailed
from pveplan.executor.channels import CommandResult
from pveplan.executor.kinds._host_files import MARK, set_api_token, write_node_file
from pveplan.executor.kinds._host_setup import PART, AptSource, AuthorizedKeys, Download, HostUser
from pveplan.planner import HostDownloadArgs, HostFileArgs, HostKeysArgs, UserArgs

TOKEN = "pveplan@pve!pveplan=0b7c3c62-7e5d-4a0c-9a43-0d5b4b3f7a11"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ1XVVH9BDg2+4+2E2ijo0FDjdiSlkfpQ9ZCEZsiZfWx ops"


class FakeHost:
    """A host's files and the commands run on it; `answers` maps argv[0] to (status, out)."""

    name = "metal"

    def __init__(self, files: dict[str, bytes] | None = None, **answers: tuple[int, str]) -> None:
        self.files = dict(files or {})
        self.answers = answers
        self.ran: list[list[str]] = []

    async def run(self, argv: Any, *, timeout: float, **_: Any) -> CommandResult:
        self.ran.append(list(argv))
        status, out = self.answers.get(argv[0], (0, ""))
        return CommandResult(argv=list(argv), exit_status=status, stdout=out.encode(), stderr=b"")

    async def put_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        self.files[path] = data

    async def get_file(self, path: str) -> bytes | None:
        return self.files.get(path)


class Ctx:
    def __init__(self, host: FakeHost, args: Any, secrets: dict[str, str] | None = None) -> None:
        async def channel(_: str) -> FakeHost:
            return host

        self.host = "metal"
        self.args = args
        self.logged: list[str] = []
        self.services = SimpleNamespace(
            hosts=SimpleNamespace(channel=channel), reveal=(secrets or {}).__getitem__
        )

    def args_as(self, cls: type) -> Any:
        assert isinstance(self.args, cls)
        return self.args

    def log(self, message: str) -> None:
        self.logged.append(message)


def apply(kind: Any, ctx: Ctx) -> Any:
    async def main() -> Any:
        with trio.fail_after(5):
            return await kind.apply(ctx, None, {})

    return trio.run(main)


SOURCE = HostFileArgs(path="/etc/apt/sources.list.d/pve.sources", text="URIs: x\n", mode=0o644)


def test_an_apt_source_is_written_and_read_once_then_left_alone() -> None:
    host = FakeHost()
    apply(AptSource(), Ctx(host, SOURCE))
    assert host.files[SOURCE.path] == b"URIs: x\n"
    assert host.ran == [["apt-get", "update"]]
    apply(AptSource(), Ctx(host, SOURCE))  # a re-run (or one after a lost store)
    assert host.ran == [["apt-get", "update"]]


KEYRING = b"the keyring"
KEYRING_SHA = hashlib.sha256(KEYRING).hexdigest()
FETCH = HostDownloadArgs(
    url="https://x/k.gpg", path="/usr/share/keyrings/k.gpg", sha256=KEYRING_SHA, mode=0o644
)


def test_a_download_goes_into_place_only_with_its_pinned_sum() -> None:
    host = FakeHost({f"/root/{PART}": KEYRING})  # what wget leaves
    apply(Download(), Ctx(host, FETCH))
    assert host.files[FETCH.path] == KEYRING
    assert host.ran == [["wget", "-q", "-O", PART, FETCH.url]]
    host.ran.clear()
    apply(Download(), Ctx(host, FETCH))  # there with that sum: adopted, nothing fetched
    assert host.ran == []


def test_a_download_with_another_sum_is_refused_and_not_installed() -> None:
    host = FakeHost({f"/root/{PART}": b"something else"})
    with pytest.raises(StepFailed, match="not the pinned"):
        apply(Download(), Ctx(host, FETCH))
    assert FETCH.path not in host.files


def test_a_user_that_exists_is_adopted_and_a_missing_one_created_with_sudo() -> None:
    there = FakeHost(id=(0, "uid=1000(homestak)"))
    apply(HostUser(), Ctx(there, UserArgs(name="homestak", sudo=True)))
    assert [argv[0] for argv in there.ran] == ["id"]
    missing = FakeHost(id=(1, ""))
    apply(HostUser(), Ctx(missing, UserArgs(name="homestak", sudo=True)))
    assert missing.ran[-1] == ["useradd", "-m", "-s", "/bin/bash", "-G", "sudo", "homestak"]


def test_a_users_keys_land_in_its_own_ssh_directory_once() -> None:
    host = FakeHost(getent=(0, "homestak:x:1000:1000::/home/homestak:/bin/bash\n"))
    args = HostKeysArgs(user="homestak", keys=(), secret_keys=("ssh_keys.ops",))
    ctx = Ctx(host, args, {"ssh_keys.ops": KEY})
    apply(AuthorizedKeys(), ctx)
    assert host.files["/home/homestak/.ssh/authorized_keys"] == (KEY + "\n").encode()
    made = [argv for argv in host.ran if argv[0] in ("mkdir", "chown")]
    assert made == [
        ["mkdir", "-p", "-m", "700", "../home/homestak/.ssh"],  # relative to root's home
        ["chown", "-R", "homestak:", "/home/homestak/.ssh"],
    ]
    host.ran.clear()
    apply(AuthorizedKeys(), ctx)
    assert [argv[0] for argv in host.ran] == ["getent"]  # present already: nothing written


def test_keys_for_a_user_the_host_lacks_fail_naming_the_user() -> None:
    host = FakeHost(getent=(2, ""))
    args = HostKeysArgs(user="nobody2", keys=(KEY,), secret_keys=())
    with pytest.raises(StepFailed, match="user nobody2 does not exist"):
        apply(AuthorizedKeys(), Ctx(host, args))


# -- the site config pve-setup writes into ---------------------------------------------


def test_the_token_joins_api_tokens_keeping_comments_and_other_secrets(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text(
        '# my secrets\napi_tokens:\n  pve1: "a@pam!t=1"  # the old host\n\nssh_keys:\n  ops: x\n'
    )
    secrets.chmod(0o644)
    assert set_api_token(tmp_path, "metal", TOKEN) is True
    text = secrets.read_text()
    assert "# my secrets" in text and "# the old host" in text
    data = yaml.safe_load(text)
    assert data == {"api_tokens": {"pve1": "a@pam!t=1", "metal": TOKEN}, "ssh_keys": {"ops": "x"}}
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert set_api_token(tmp_path, "metal", TOKEN) is False  # already so: untouched


@pytest.mark.parametrize(
    "before",
    ["", "ssh_keys:\n  ops: x\n", "api_tokens: {}\nssh_keys: {}\n", "api_tokens:\n  metal: old\n"],
)
def test_the_token_is_set_whatever_the_file_looked_like(tmp_path: Path, before: str) -> None:
    (tmp_path / "secrets.yaml").write_text(before)
    assert set_api_token(tmp_path, "metal", TOKEN) is True
    data = yaml.safe_load((tmp_path / "secrets.yaml").read_text())
    assert data["api_tokens"]["metal"] == TOKEN
    old = yaml.safe_load(before) or {}
    assert {k: v for k, v in data.items() if k != "api_tokens"} == {
        k: v for k, v in old.items() if k != "api_tokens"
    }


def test_an_encrypted_only_site_config_says_to_decrypt_first(tmp_path: Path) -> None:
    (tmp_path / "secrets.yaml.enc").write_text("sops")
    with pytest.raises(StepFailed, match="decrypt it first"):
        set_api_token(tmp_path, "metal", TOKEN)


def test_a_hand_written_node_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "nodes" / "metal.yaml"
    path.parent.mkdir()
    path.write_text("node: metal  # mine\n")
    with pytest.raises(StepFailed, match="not written by pveplan"):
        write_node_file(tmp_path, "metal", {"node": "metal"})
    assert path.read_text() == "node: metal  # mine\n"


def test_pveplans_own_node_file_is_rewritten_only_when_it_differs(tmp_path: Path) -> None:
    assert write_node_file(tmp_path, "metal", {"node": "metal", "ip": "192.0.2.7"}) is not None
    text = (tmp_path / "nodes" / "metal.yaml").read_text()
    assert text.startswith(MARK) and yaml.safe_load(text)["ip"] == "192.0.2.7"
    assert write_node_file(tmp_path, "metal", {"node": "metal", "ip": "192.0.2.7"}) is None
    assert write_node_file(tmp_path, "metal", {"node": "metal", "ip": "192.0.2.8"}) is not None
