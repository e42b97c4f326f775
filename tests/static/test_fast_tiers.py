"""The command docs/tests.md gives for the fast tiers (README names it too) takes every test of the
unit, http and process tiers but those that need a system package, and an unprivileged user can
run it."""

import os
import re
import shlex
import subprocess
import sys
import tomllib

from tests.docs import blocks, read, section
from tests.sidecar_process import REPO

FAST_TIERS = ["tests/unit", "tests/http", "tests/process"]
NOBODY = 65534


def fast_commands() -> list[str]:
    (block,) = blocks(section(read("docs/tests.md"), "Only the fast tiers"), "sh")
    return block.splitlines()


def system_markers() -> list[str]:
    """Every marker pyproject.toml declares: each names what a tier needs from the system."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return [line.split(":")[0] for line in pyproject["tool"]["pytest"]["ini_options"]["markers"]]


def collected(args: list[str], unprivileged: bool = False) -> set[str]:
    """The test ids `pytest ARGS --collect-only` lists; as the user nobody with `unprivileged`."""
    command = [sys.executable, "-m", "pytest", *args, "--collect-only", "-q", "-p", "no:cacheprovider"]
    as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    if unprivileged and os.geteuid() == 0:
        command = as_nobody + command
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, f"{shlex.join(command)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return {line for line in done.stdout.splitlines() if "::" in line}


def test_the_fast_command_sets_up_the_venv_and_runs_the_three_tiers() -> None:
    setup, run = fast_commands()
    assert setup == "python3 -m venv .venv && .venv/bin/pip install -e '.[test]'"
    assert run.startswith(".venv/bin/python -m pytest ")
    assert [word for word in shlex.split(run) if word.startswith("tests/")] == FAST_TIERS
    readme = read("README.md")
    for command in (setup, run):
        assert f"`{command}`" in readme, "README gives the same command"


def test_the_fast_command_takes_every_test_of_the_three_tiers_that_needs_nothing_from_the_system() -> None:
    args = shlex.split(fast_commands()[1])[3:]  # what follows `.venv/bin/python -m pytest`
    fast = collected(args, unprivileged=True)
    every = collected(FAST_TIERS)
    needing_the_system = collected([*FAST_TIERS, "-m", " or ".join(system_markers())])
    assert needing_the_system, "the demo's browser test and the pids cgroup's, at least, are marked"
    assert fast == every - needing_the_system
    assert all(re.match(r"tests/(unit|http|process)/", test) for test in fast)
