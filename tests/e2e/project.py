"""A throwaway project as a user of the sidecar holds it: the project files committed to git once,
with a wheelhouse of the sidecar's dependencies so its image builds offline (no registry can be
reached from inside the engine)."""

import shutil
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import Browser, Page

from tests.sidecar_process import REPO

# What a project using the sidecar holds: the example app, the sidecar, the deploy files.
PROJECT_FILES = [
    "Dockerfile", ".dockerignore", "pyproject.toml", "LICENSE", "README.md", "sidecar", "client",
    "nginx", "haproxy", "examples", "docker-compose.yml", "deploy.sh", "build.sh",
]  # fmt: skip


def git(project: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=e2e", "-c", "user.email=e2e@example.test", *args]
    return subprocess.run(command, cwd=project, check=True, capture_output=True, text=True).stdout.strip()


def make_project(project: Path) -> None:
    """A git repository holding the project files, committed once, with the wheels for an offline build."""
    project.mkdir()
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, project / name)
    (project / ".gitignore").write_text("wheelhouse/\n", encoding="utf-8")
    git(project, "init", "-q")
    git(project, "add", ".")
    git(project, "commit", "-q", "-m", "the app, with the version sidecar")
    # No registry inside the engine: the sidecar's dependencies come from a wheelhouse made here.
    # Without the project's own wheel (the image builds it from source), the wheelhouse is the
    # same from run to run, and so is the build cache's key for it.
    wheelhouse = project / "wheelhouse"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "-w", str(wheelhouse), str(project), "hatchling"],
        check=True,
        capture_output=True,
    )
    for own in wheelhouse.glob("version_sidecar-*.whl"):
        own.unlink()


def compose(project: Path, env: dict[str, str], *args: str) -> str:
    """docker-compose ARGS in the project; its output, whether it succeeded or not."""
    done = subprocess.run(["docker-compose", *args], cwd=project, env=env, capture_output=True, text=True)
    return done.stdout + done.stderr


def keep_logs_and_take_down(project: Path, env: dict[str, str], log_file: Path) -> None:
    """End a deploy test: the services' last log lines go to `log_file`, then the project comes down."""
    log_file.write_text(compose(project, env, "logs", "--no-color", "--tail", "40"), encoding="utf-8")
    compose(project, env, "down", "--remove-orphans", "--timeout", "5")


def open_tab(browser: Browser, url: str) -> tuple[Page, list[str]]:
    """A new tab on `url`, and the list its console lines are appended to."""
    page = browser.new_context().new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(url)
    return page, console
