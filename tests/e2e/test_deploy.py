"""End to end, as a user deploys: deploy.sh four times on four commits of a project holding the
example app (an app change, a sidecar change, a broken app), under a real Docker Engine, with a
Chromium tab open through nginx throughout."""

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import ARTIFACTS, wait_for_version
from tests.docker.engine import DOCKER_CLI as DOCKER
from tests.e2e.killed_runs import PROJECT_PREFIX, remove_killed_runs
from tests.e2e.project import compose, git, keep_logs_and_take_down, make_project, open_tab
from tests.sidecar_process import free_port
from tests.waiting import wait_until

pytestmark = [pytest.mark.docker, pytest.mark.browser]

DEPLOY_TIMEOUT = 900  # seconds; the first run on a fresh engine builds every layer (vfs is slow)


def deploy(project: Path, env: dict[str, str], *args: str, succeed: bool = True) -> str:
    """Run ./deploy.sh; returns its output (it must succeed, or with succeed=False fail)."""
    done = subprocess.run(
        ["./deploy.sh", *args], cwd=project, env=env, capture_output=True, text=True, timeout=DEPLOY_TIMEOUT
    )
    output = done.stdout + done.stderr
    assert (done.returncode == 0) == succeed, f"deploy.sh exited with {done.returncode}:\n{output[-6000:]}"
    return output


def build_step_cached(output: str, step: str) -> bool:
    """Whether BuildKit's plain progress in `output` shows the sidecar build step holding `step`
    as taken from the cache (the step fails the test when it is not in the output at all)."""
    found = re.search(rf"^#(\d+) \[build \d+/\d+\] .*{re.escape(step)}", output, re.MULTILINE)
    assert found, f"no build step with {step!r} in:\n{output}"
    return re.search(rf"^#{found.group(1)} CACHED$", output, re.MULTILINE) is not None


@pytest.fixture
def project_env(tmp_path: Path, docker_host: str, base_image: str) -> Iterator[tuple[Path, dict[str, str]]]:
    """The project and the environment deploy.sh runs in; the compose project is removed after
    (and what killed runs left, before)."""
    remove_killed_runs(docker_host)
    project = tmp_path / "shop"
    make_project(project)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "SIDECAR_"))}
    env.update(
        DOCKER=DOCKER,
        DOCKER_HOST=docker_host,
        BASE_IMAGE=base_image,  # the Dockerfiles' slim Python stands in for this local Debian
        NGINX_IMAGE=base_image,
        HAPROXY_IMAGE=base_image,  # Debian's haproxy runs the socket filter in place of the official image
        BUILD_NETWORK="none",
        DOCKER_BUILDKIT="1",  # the classic builder copies the whole image per step on vfs: minutes
        PIP_NO_INDEX="1",
        HTTP_ADDRESS="127.0.0.1",
        HTTP_PORT=str(free_port()),
        COMPOSE_PROJECT_NAME=f"{PROJECT_PREFIX}{os.getpid()}",
        APP_IMAGE=f"{PROJECT_PREFIX}{os.getpid()}-app",
        SIDECAR_IMAGE=f"{PROJECT_PREFIX}{os.getpid()}-sidecar",
    )
    try:
        yield project, env
    finally:
        keep_logs_and_take_down(project, env, tmp_path / "compose.log")
        # The images of this run (on vfs each is a full copy); the base image and build cache stay.
        for name in (env["APP_IMAGE"], env["SIDECAR_IMAGE"]):
            listed = [DOCKER, "images", "--format", "{{.Repository}}:{{.Tag}}", name]
            tags = subprocess.run(listed, env=env, capture_output=True, text=True).stdout.split()
            if tags:
                subprocess.run([DOCKER, "rmi", *tags], env=env, capture_output=True)


def inspect(env: dict[str, str], container: str) -> dict[str, Any]:
    """docker inspect of the container."""
    done = subprocess.run([DOCKER, "inspect", container], env=env, capture_output=True, text=True, check=True)
    found: dict[str, Any] = json.loads(done.stdout)[0]
    return found


def container_config(env: dict[str, str], container: str) -> dict[str, Any]:
    """The container's Config (image labels, user, healthcheck), from docker inspect."""
    config: dict[str, Any] = inspect(env, container)["Config"]
    return config


def asked_from_the_sidecar(env: dict[str, str], container: str, method: str, path: str) -> str:
    """What the socket filter answers the sidecar's container to `method` `path`: "STATUS BODY"."""
    ask = (
        "import sys, urllib.request, urllib.error\n"
        "request = urllib.request.Request('http://docker-socket-filter:2375' + sys.argv[2], method=sys.argv[1])\n"
        "try:\n    reply = urllib.request.urlopen(request, timeout=10)\n"
        "except urllib.error.HTTPError as error:\n    reply = error\n"
        "print(reply.status, reply.read().decode())\n"
    )
    command = [DOCKER, "exec", container, "python3", "-c", ask, method, path]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout.strip()


def assert_locked_down(env: dict[str, str], sidecar: str) -> None:
    """The sidecar's container: no socket, nothing writable, no capability, no privilege to gain;
    the engine only through the socket filter, which refuses what an intruder would try."""
    found = inspect(env, sidecar)
    host = found["HostConfig"]
    assert found["Mounts"] == [], "no Docker socket, no volume"
    assert (host["ReadonlyRootfs"], host["CapDrop"], host["SecurityOpt"]) == (
        True,
        ["ALL"],
        ["no-new-privileges:true"],
    )
    assert not host.get("Tmpfs") and not host["Privileged"]
    assert found["State"]["Health"]["Status"] == "healthy"
    write = subprocess.run([DOCKER, "exec", sidecar, "touch", "/tmp/x"], env=env, capture_output=True, text=True)
    assert "Read-only file system" in write.stderr
    assert asked_from_the_sidecar(env, sidecar, "GET", "/version").startswith("200 ")
    refused = asked_from_the_sidecar(env, sidecar, "POST", "/v1.41/containers/create")
    assert refused.startswith("403 ") and "refused by the docker socket filter" in refused


def test_each_deploy_reaches_the_open_tab_and_a_broken_one_fails(
    project_env: tuple[Path, dict[str, str]], browser: Browser
) -> None:
    project, env = project_env
    first = git(project, "rev-parse", "--short", "HEAD")
    output = deploy(project, env)
    assert f"deployed app {first}" in output
    sidecar_before = compose(project, env, "ps", "-q", "sidecar").strip()
    assert_locked_down(env, sidecar_before)
    sidecar = container_config(env, sidecar_before)
    assert sidecar["User"] == "10001:10001"
    assert "/healthz" in " ".join(sidecar["Healthcheck"]["Test"])
    app = container_config(env, compose(project, env, "ps", "-q", "app").strip())
    for config in (sidecar, app):  # one commit so far: the sidecar's version is the app's
        labels = config["Labels"]
        assert labels["org.opencontainers.image.version"] == first
        assert labels["org.opencontainers.image.revision"] == git(project, "rev-parse", "HEAD")
        assert labels["org.opencontainers.image.created"].startswith("20")

    page, console = open_tab(browser, f"http://127.0.0.1:{env['HTTP_PORT']}/")
    expect(page.locator("#version")).to_have_text(first)
    wait_for_version(page, first, timeout=30_000)

    index = project / "examples/app/index.html"
    index.write_text(index.read_text(encoding="utf-8").replace("Example app</h1>", "Example app, now better</h1>"))
    git(project, "commit", "-q", "-am", "a better app")
    second = git(project, "rev-parse", "--short", "HEAD")
    output = deploy(project, env)
    assert f"deployed app {second}" in output

    toast = page.get_by_role("status")
    expect(toast).to_contain_text(f"A new version ({second}) is available.", timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "e2e-toast.png")
    assert f"[version-sidecar] Version update received: {second} (current: {first})" in console
    # The sidecar followed the app through the engine: the same container, still running.
    assert compose(project, env, "ps", "-q", "sidecar").strip() == sidecar_before

    page.get_by_role("button", name="Reload").click()
    expect(page.locator("html")).to_have_attribute("data-app-version", second, timeout=15_000)
    expect(page.locator("#version")).to_have_text(second)
    expect(page.locator("h1")).to_have_text("Example app, now better")
    wait_for_version(page, second, timeout=30_000)
    expect(page.get_by_role("status")).to_have_count(0)

    # A commit that changes the sidecar's code too: a new sidecar image that reuses the layer of
    # its dependencies, a new sidecar container, nginx reloads to reach it, and the tab,
    # reconnected through nginx, hears of the new version.
    code = project / "sidecar/__init__.py"
    # Unique to this run, so the engine's build cache (kept between runs) cannot hold this code.
    code.write_text(code.read_text(encoding="utf-8") + f"# A change to the sidecar's code: {time.time_ns()}\n")
    git(project, "commit", "-q", "-am", "a new sidecar")
    third = git(project, "rev-parse", "--short", "HEAD")
    output = deploy(project, env)
    assert "deploy.sh: the sidecar was replaced: nginx reloaded to reach the new one" in output
    assert build_step_cached(output, "-r requirements.txt"), f"the dependencies were installed again:\n{output}"
    assert not build_step_cached(output, "COPY sidecar/"), f"the new code was not copied:\n{output}"
    assert compose(project, env, "ps", "-q", "sidecar").strip() != sidecar_before
    # The new sidecar container may take the old one's address and answer the tab before nginx
    # reloads, while deploy.sh still waits: by the time it returns, the toast's 30 s countdown may
    # already have reloaded the tab onto the new version. Either way the toast was shown first.
    # While the sidecar was away, the tab's own retries backed off (each 502 doubles the delay, up
    # to 60 s): the next one may come up to a minute after deploy.sh returns.
    told = "v => document.documentElement.dataset.appVersion === v || window.versionSidecar?.latestVersion === v"
    page.wait_for_function(told, arg=third, timeout=90_000)
    if page.locator("html").get_attribute("data-app-version") != third:
        expect(toast).to_contain_text(f"A new version ({third}) is available.", timeout=30_000)
        page.get_by_role("button", name="Reload").click()
    expect(page.locator("html")).to_have_attribute("data-app-version", third, timeout=15_000)
    wait_for_version(page, third, timeout=30_000)
    assert f"[version-sidecar] New version {third} available; toast shown" in console, console

    # A deploy whose app never becomes healthy fails, and the open tab is not told about it.
    server = project / "examples/app/server.py"
    server.write_text(server.read_text(encoding="utf-8").replace("if __name__", "raise SystemExit(3)\nif __name__"))
    git(project, "commit", "-q", "-am", "a broken app")
    fourth = git(project, "rev-parse", "--short", "HEAD")
    output = deploy(project, env, "--timeout", "60", succeed=False)
    failed = rf"deploy.sh: error: the app container \w+ is (unhealthy|restarting|exited) \(version {fourth}\)"
    assert re.search(failed, output), output

    # The sidecar has read the broken app (it logs each read whose containers changed) and kept
    # the last version: an announcement would have been logged right after that read.
    def sidecar_log() -> list[str]:
        return compose(project, env, "logs", "--no-color", "sidecar").splitlines()

    wait_until(
        lambda: any('"target read"' in line and fourth in line for line in sidecar_log()),
        f"the sidecar to read the broken app {fourth}",
        timeout=60,
        pause=lambda seconds: page.wait_for_timeout(seconds * 1000),
    )
    assert not [line for line in sidecar_log() if '"version changed"' in line and fourth in line]
    assert page.evaluate("window.versionSidecar.latestVersion") == third
    expect(page.get_by_role("status")).to_have_count(0)
