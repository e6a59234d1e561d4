"""The two tiers of the test suite, and how many examples a property test draws in each.

`.venv/bin/pytest` runs the fast tier, every test not marked `slow` (pyproject's addopts
say `-m "not slow"`): unit, contract and property tests, a few minutes on two cores.
`.venv/bin/pytest -m slow` runs the slow tier: tests that start the simulator's daemon or
an SSH server, run applies, nested executors or pull nodes as real processes, SIGKILL
processes, or work at benchmark scale. CI runs both (.ci/run); `-m ""` runs both at once.
Every test is in exactly one tier, and a fast-tier run says how many slow tests it left
out. A test file or test named on the command line runs whatever its tier
(`pytest tests/sim/test_daemon.py`); a directory keeps to the tier asked for.

What is slow: the directories and modules in SLOW, and tests marked `@pytest.mark.slow`
where they stand. A new test that starts a daemon or a server process belongs there.

Property tests: the fast tier draws at most FAST_EXAMPLES examples per property (hypothesis
profile `fast`; a test's own count goes through `examples(n)`, which caps it the same way).
Every other run draws the full counts: the slow tier, a run of named test files, and CI,
which runs derandomized (profile `ci`) so that its result does not depend on the luck of
the draw. `--hypothesis-profile=dev` runs the fast tier at full counts.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

TESTS = Path(__file__).resolve().parent

SLOW = (
    "integration",  # real applies against the simulator's daemon, SIGKILL and Ctrl-C trials
    "sim",  # the simulator's daemon, its SSH server, guests and nested hosts
    "executor/test_channels.py",  # SSH channels against the simulator's daemon
    "pull/test_node.py",  # `config apply` as a process inside simulated VMs
    "pull/test_node_bootstrap.py",  # bundle download, install and first boot of a pull node
    "remote/test_bundle.py",  # builds, ships and installs bundles with real subprocesses
    "remote/test_warm.py",  # installs a bundle and starts its warm executor daemon
    "store/test_crash.py",  # SIGKILLs writers at random points
    "planner/test_markdown_scale.py",  # a 2,000-node plan, benchmark scale
)
"""Paths under tests/ whose every test is slow."""

FAST_EXAMPLES = 30
"""Examples per property in the fast tier: enough for the common shapes on every local run;
CI draws the full counts."""

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.register_profile("fast", max_examples=FAST_EXAMPLES, deadline=None, print_blob=True)


def examples(full: int) -> int:
    """`max_examples` for a property test whose full count is `full` (capped in the fast tier)."""
    if settings.get_current_profile_name() == "fast":
        return min(full, FAST_EXAMPLES)
    return full


def _names_tests(config: pytest.Config) -> bool:
    """Whether the command line names test files or tests (not only directories)."""
    return any("::" in arg or arg.endswith(".py") for arg in config.invocation_params.args)


def _chose_markers(config: pytest.Config) -> bool:
    """Whether the command line (not addopts) has a `-m`."""
    return any(arg.startswith("-m") for arg in config.invocation_params.args)


def configure(config: pytest.Config) -> None:
    """Pick the tier's mark expression and hypothesis profile (before test modules import)."""
    missing = [path for path in SLOW if not (TESTS / path).exists()]
    if missing:
        raise pytest.UsageError(f"tests/_tiers.py: SLOW names missing paths: {missing}")
    if config.option.markexpr == "not slow" and _names_tests(config) and not _chose_markers(config):
        config.option.markexpr = ""  # what the user named runs, whatever its tier
    if config.getoption("--hypothesis-profile", None):
        return  # hypothesis's plugin loads the profile asked for
    if os.environ.get("CI"):
        settings.load_profile("ci")
    else:
        settings.load_profile("fast" if config.option.markexpr == "not slow" else "dev")


def mark_slow(items: list[pytest.Item]) -> None:
    """Mark every test under a SLOW path (before -m deselects anything)."""
    for item in items:
        path = Path(item.path).resolve()
        if not path.is_relative_to(TESTS):
            continue
        relative = path.relative_to(TESTS).as_posix()
        if any(relative == path or relative.startswith(f"{path}/") for path in SLOW):
            item.add_marker(pytest.mark.slow)


class LeftOut:
    """Counts the slow tests a fast-tier run deselected, to say so at its end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.count = 0

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.count += sum(1 for item in items if item.get_closest_marker("slow") is not None)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.count and self.config.option.markexpr == "not slow":
            terminalreporter.write_line(
                f"{self.count} slow tests deselected: `pytest -m slow` runs the slow tier"
            )
