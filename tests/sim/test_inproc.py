"""The daemon answers a host's own tools in-process (`sim._inproc`): the same answer as the
tool run as a process, for exactly the commands where nothing else could differ."""

from __future__ import annotations

import shlex
from collections.abc import Iterator

import pytest

from pveplan.executor.channels import CommandResult
from pveplan.sim import start_daemon, write_config
from pveplan.sim._inproc import plain_words
from pveplan.sim._setup import write_host_launchers
from tests.executor import NODE, Sim, make_sim, run_trio, stop_sim
from tests.sim.test_daemon import run_on


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    sim = make_sim(tmp_path_factory.mktemp("sim"), start=False)
    write_host_launchers(sim.root, NODE)
    write_config(sim.root, {"inproc": True})  # off by default (sim/_state.py DEFAULT_CONFIG)
    sim.info = start_daemon(sim.root)
    yield sim
    stop_sim(sim)


def test_plain_words_are_only_commands_sh_would_run_as_bare_words() -> None:
    assert plain_words("pvesh get /version --output-format json") == [
        "pvesh",
        "get",
        "/version",
        "--output-format",
        "json",
    ]
    quoted = shlex.join(["pvesh", "create", "/x", "--tags", "a;b", "--d", 'it\'s "q"'])
    assert plain_words(quoted) == ["pvesh", "create", "/x", "--tags", "a;b", "--d", 'it\'s "q"']
    for shell in (
        "pvesh get /version; rm -rf x",
        "pvesh get $HOME",
        'pvesh get "$HOME"',
        "pvesh get `id`",
        "pvesh get /version > out",
        "pvesh get /version | cat",
        "pvesh get /version &",
        "pvesh get /nodes/*",
        "pvesh get ~",
        "pvesh get 'unterminated",
        "pvesh get /version # comment",
    ):
        assert plain_words(shell) is None, shell


def run(sim: Sim, argv: list[str]) -> CommandResult:
    return run_trio(lambda: run_on(sim, sim.host_target(), argv))


@pytest.mark.parametrize(
    "argv",
    [
        ["pvesh", "get", "/version", "--output-format", "json"],
        ["pvesh", "get", "/nodes/sim/qemu/9999/config"],  # no such VM: 500, exit 255
        ["pvesh", "create", "/nodes/sim/qemu", "--vmid", "x"],  # 400 parameter errors
        ["pvesh", "get", "/no/such/path"],  # exit 1
        ["pvesh", "frobnicate"],
        ["qm", "config", "9999"],
        ["qm", "importdisk", "100", "relative.qcow2", "local"],  # a path from the cwd
        ["pveum", "user", "permissions", "root@pam"],
        ["pveversion", "-v"],
    ],
)
def test_in_process_answer_is_the_spawned_tools(sim: Sim, argv: list[str]) -> None:
    before = len(sim.processes())
    inline = run(sim, argv)
    spawned = run(sim, ["sh", "-c", shlex.join(argv)])  # not plain words: a real process
    assert (inline.exit_status, inline.stdout, inline.stderr) == (
        spawned.exit_status,
        spawned.stdout,
        spawned.stderr,
    )
    first, second = [p for p in sim.processes()[before:] if p["command"] != "true"]
    assert "pid" not in first and first["command"] == shlex.join(argv)  # no process to kill
    assert "pid" in second


def test_a_launcher_that_is_not_the_simulators_runs_as_a_process(sim: Sim) -> None:
    launcher = sim.root.host_dir(NODE) / "bin" / "pveum"
    original = launcher.read_text()
    try:
        launcher.write_text("#!/bin/sh\necho replaced by the test\n")
        result = run(sim, ["pveum", "user", "list"])
        assert result.stdout == b"replaced by the test\n"
        assert "pid" in sim.processes()[-1]
    finally:
        launcher.write_text(original)
    assert run(sim, ["pveum", "user", "list"]).stdout != b"replaced by the test\n"
    assert "pid" not in sim.processes()[-1]
