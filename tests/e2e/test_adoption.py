"""README's adoption steps, as a user follows them: a static site of their own (`python3 -m
http.server`, its own Dockerfile) in a git repository outside this tree gets the blocks of
README's "Adopting it in your app" section, read from README itself, and the offline build of
docs/deploying.md ("Without a registry"); deploy.sh deploys it twice under the real Docker Engine
while a Chromium tab is open through the nginx those steps add.

Two stand-ins, both the ones docs/deploying.md names: the engine reaches no registry, so the
tier's Debian image stands in for the registry's images, and the wheelhouse command builds this
repository's tree in place of the released `version-sidecar==X.Y.Z` from PyPI."""

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import Browser, expect

from tests.browser.conftest import wait_for_version
from tests.docker.engine import DOCKER_CLI as DOCKER
from tests.docs import blocks, read, section
from tests.e2e.killed_runs import ADOPTION_PREFIX, remove_killed_runs
from tests.e2e.project import git, keep_logs_and_take_down, open_tab
from tests.sidecar_process import REPO, free_port
from tests.waiting import wait_until

pytestmark = [pytest.mark.docker, pytest.mark.browser]

DEPLOY_TIMEOUT = 900  # seconds; the first run on a fresh engine builds every layer (vfs is slow)

# The user's app before adopting the sidecar: a page, a Dockerfile, a compose file. The health
# check is what README advises: without it, a container counts as ready once it runs, which may be
# before the server listens, and a tab reloaded at once could meet nginx's 502.
PAGE = """<!doctype html>
<html>
<head>
  <title>Shop</title>
</head>
<body>
  <h1>Shop</h1>
</body>
</html>
"""
APP_DOCKERFILE = """ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}
WORKDIR /site
COPY index.html ./
EXPOSE 8000
HEALTHCHECK --interval=2s --timeout=3s \\
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/', timeout=2)"]
CMD ["python3", "-m", "http.server", "8000"]
"""
# How this app fills in its version (README: "your app fills in its version"): at build time.
FILL_IN_VERSION = 'RUN sed -i "s/{{version}}/${VERSION}/" index.html\n'
COMPOSE = "services:\n  app:\n    build: .\n"


def steps() -> str:
    return section(read("README.md"), "Adopting it in your app")


def block(text: str, language: str, first_line: str = "") -> str:
    """The one block in `language` whose first line starts with `first_line`."""
    [found] = [text for text in blocks(text, language) if text.startswith(first_line)]
    return found


def with_script_tag(page: str, snippet: str) -> str:
    """The page with README's `<html ...>` line in place of its own and the script in its head."""
    html, head, script = (re.sub(r"\s*<!--.*?-->", "", line).strip() for line in snippet.strip().splitlines())
    assert head == "<head>", snippet
    return page.replace("<html>", html, 1).replace("<head>", f"<head>\n  {script}", 1)


def with_services(compose_file: str, snippet: str) -> str:
    """The compose file with README's services added, and its keys added to a service it has."""
    config: dict[str, Any] = yaml.safe_load(compose_file)
    added = yaml.safe_load(snippet)
    for name, service in added["services"].items():
        config["services"].setdefault(name, {}).update(service)
    for name, network in added.get("networks", {}).items():
        config.setdefault("networks", {})[name] = network
    return yaml.safe_dump(config, sort_keys=False)


def shell(script: str, cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    """Run a README block in bash, as a user pastes it; returns its output (it must succeed)."""
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{script}\nexited with {done.returncode}:\n{output[-6000:]}"
    return output


def offline_settings(base_image: str) -> dict[str, str]:
    """docs/deploying.md's `export` lines, the local Debian image in place of the registry's images."""
    lines = block(section(read("docs/deploying.md"), "Without a registry"), "sh", "export ").splitlines()
    settings = dict(re.findall(r"^export (\w+)=(\S+)", "\n".join(lines), re.MULTILINE))
    assert len(settings) == len(lines), lines
    assert {"BASE_IMAGE", "NGINX_IMAGE", "HAPROXY_IMAGE", "PIP_NO_INDEX"} <= set(settings), settings
    return settings | {"BASE_IMAGE": base_image, "NGINX_IMAGE": base_image, "HAPROXY_IMAGE": base_image}


def make_wheelhouse(project: Path, env: dict[str, str]) -> None:
    """docs/deploying.md's wheelhouse command, with this tree for the package it names, run by the
    pip of the Python the tests run (the base image's: Debian bookworm's 3.11)."""
    command = block(section(read("docs/deploying.md"), "Without a registry"), "sh", "pip wheel")
    released = re.findall(r"version-sidecar==[\w.]+", command)
    assert len(released) == 1, command
    path = f"{Path(sys.executable).parent}:{env['PATH']}"
    shell(command.replace(released[0], str(REPO)), project, env | {"PATH": path})


@pytest.fixture
def shop(tmp_path: Path, docker_host: str, base_image: str) -> Iterator[tuple[Path, dict[str, str]]]:
    """The user's repository with README's steps applied and committed, and the environment a
    user deploys it in; its compose project and images are removed after (and what killed runs
    left, before)."""
    remove_killed_runs(docker_host)
    project = tmp_path / "shop"
    project.mkdir()
    text = steps()
    (project / "index.html").write_text(with_script_tag(PAGE, block(text, "html")), encoding="utf-8")
    labels = block(text, "dockerfile", "# your app's Dockerfile")
    (project / "Dockerfile").write_text(APP_DOCKERFILE + labels + FILL_IN_VERSION, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "SIDECAR_", "APP_", "COMPOSE_"))}
    shell(block(text, "sh", 'cp "$VS"'), project, env | {"VS": str(REPO)})
    sidecar = block(text, "dockerfile", "# version-sidecar/Dockerfile")
    (project / "version-sidecar/Dockerfile").write_text(sidecar, encoding="utf-8")
    (project / "docker-compose.yml").write_text(with_services(COMPOSE, block(text, "yaml")), encoding="utf-8")
    git(project, "init", "-q")
    git(project, "add", ".")
    git(project, "commit", "-q", "-m", "the shop, with the version sidecar")
    make_wheelhouse(project, env)

    env.update(
        offline_settings(base_image),
        DOCKER=DOCKER,
        DOCKER_HOST=docker_host,
        DOCKER_BUILDKIT="1",  # the classic builder copies the whole image per step on vfs: minutes
        HTTP_ADDRESS="127.0.0.1",
        HTTP_PORT=str(free_port()),
        COMPOSE_PROJECT_NAME=f"{ADOPTION_PREFIX}{os.getpid()}",
    )
    try:
        yield project, env
    finally:
        keep_logs_and_take_down(project, env, tmp_path / "compose.log")
        # This run's images (on vfs each is a full copy); the base image and build cache stay.
        sidecar_version = git(project, "log", "-1", "--format=%h", "--", "version-sidecar")
        listed = [DOCKER, "images", "--format", "{{.Repository}}:{{.Tag}}", "shop"]
        tags = subprocess.run(listed, env=env, capture_output=True, text=True).stdout.split()
        subprocess.run([DOCKER, "rmi", *tags, f"version-sidecar:{sidecar_version}"], env=env, capture_output=True)


def deploy(project: Path, env: dict[str, str]) -> str:
    """README's step 4, as written."""
    return shell(block(steps(), "sh", "APP_"), project, env, timeout=DEPLOY_TIMEOUT)


def start_deploy(project: Path, env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    """README's step 4 in the background, its output into `log`: the sidecar announces the new
    version once the new app container runs, while deploy.sh may still wait for compose to remove
    the old one (slow on vfs), so the tab is watched while it runs."""
    with log.open("w", encoding="utf-8") as output:
        command = ["bash", "-euo", "pipefail", "-c", block(steps(), "sh", "APP_")]
        return subprocess.Popen(command, cwd=project, env=env, stdout=output, stderr=subprocess.STDOUT, text=True)


def test_readmes_steps_bring_the_toast_to_an_app_of_ones_own(
    shop: tuple[Path, dict[str, str]], browser: Browser, tmp_path: Path
) -> None:
    project, env = shop
    assert not (project / "sidecar").exists()  # no copy of the sidecar's code: the image installs the package
    first = git(project, "rev-parse", "--short", "HEAD")
    assert f"deployed app {first}" in deploy(project, env)

    page, console = open_tab(browser, f"http://127.0.0.1:{env['HTTP_PORT']}/")
    expect(page.locator("html")).to_have_attribute("data-app-version", first)
    wait_for_version(page, first, timeout=30_000)

    index = project / "index.html"
    index.write_text(index.read_text(encoding="utf-8").replace("<h1>Shop</h1>", "<h1>Shop, now open</h1>"))
    git(project, "commit", "-q", "-am", "a better shop")
    second = git(project, "rev-parse", "--short", "HEAD")
    log = tmp_path / "deploy-2.log"
    deploying = start_deploy(project, env, log)
    try:
        # The toast comes while deploy.sh runs, or just after it ends (its 30 s countdown would
        # then reload the tab on its own: the test must see the toast before).
        toast = page.get_by_role("status")
        wait_until(
            lambda: deploying.poll() is not None or toast.count() > 0,
            "the toast, or the end of the deploy",
            timeout=DEPLOY_TIMEOUT,
            pause=lambda seconds: page.wait_for_timeout(seconds * 1000),
        )
        expect(toast).to_contain_text(f"A new version ({second}) is available.", timeout=30_000)
        assert f"[version-sidecar] Version update received: {second} (current: {first})" in console
        page.get_by_role("button", name="Reload").click()
        expect(page.locator("html")).to_have_attribute("data-app-version", second, timeout=15_000)
        expect(page.locator("h1")).to_have_text("Shop, now open")
        wait_for_version(page, second, timeout=30_000)
        expect(page.get_by_role("status")).to_have_count(0)
    finally:
        returncode = deploying.wait(timeout=DEPLOY_TIMEOUT)
    output = log.read_text(encoding="utf-8")
    assert returncode == 0 and f"deployed app {second}" in output, output[-6000:]
