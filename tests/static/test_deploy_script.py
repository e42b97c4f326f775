"""deploy.sh and build.sh without an engine: help, argument errors, missing tools, the version
taken from git (with -dirty), and a dry run that prints what it would do."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.sidecar_process import REPO

SCRIPTS = ["deploy.sh", "build.sh"]


def run(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("APP_VERSION", "SIDECAR_VERSION")}
    full_env.setdefault("DOCKER", "/usr/bin/docker")
    full_env.update(env)
    return subprocess.run(["./deploy.sh", *args], cwd=project, env=full_env, capture_output=True, text=True, timeout=60)


def git(project: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@example.test", *args]
    return subprocess.run(command, cwd=project, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The deploy scripts, the example app and a sidecar file in a fresh git repository."""
    project = tmp_path / "shop"
    (project / "examples").mkdir(parents=True)
    for name in [*SCRIPTS, "docker-compose.yml", "Dockerfile"]:
        shutil.copy2(REPO / name, project / name)
    shutil.copytree(REPO / "examples/app", project / "examples/app")
    git(project, "init", "-q")
    git(project, "add", ".")
    git(project, "commit", "-q", "-m", "first")
    return project


def test_help_says_how_to_use_it(project: Path) -> None:
    done = run(project, "--help")
    assert done.returncode == 0
    for words in ["Usage: ./deploy.sh", "--version VERSION", "--dry-run", "git rev-parse --short HEAD", "-dirty"]:
        assert words in done.stdout


def test_an_unknown_argument_is_refused(project: Path) -> None:
    done = run(project, "--verison", "1")
    assert done.returncode == 1
    assert "deploy.sh: error: unknown argument: --verison" in done.stderr


def test_no_docker_is_a_clear_error(project: Path) -> None:
    done = run(project, "--dry-run", DOCKER="/nonexistent/docker")
    assert done.returncode == 1
    assert "deploy.sh: error: docker not found (/nonexistent/docker)" in done.stderr


def test_outside_a_git_checkout_it_asks_for_a_version(project: Path) -> None:
    shutil.rmtree(project / ".git")
    done = run(project, "--dry-run")
    assert done.returncode == 1
    assert "is not a git checkout with a commit: commit first or pass --version" in done.stderr
    assert run(project, "--dry-run", "--version", "v7").returncode == 0


def test_without_git_installed_it_says_so(tmp_path: Path, project: Path) -> None:
    tools = tmp_path / "bin"  # every command the scripts use, except git
    tools.mkdir()
    for name in ["bash", "dirname", "basename", "tr", "sed", "stat", "date", "docker-compose", "python3"]:
        found = shutil.which(name)
        assert found is not None, name
        (tools / name).symlink_to(found)
    done = run(project, "--dry-run", PATH=str(tools))
    assert done.returncode == 1
    assert "build.sh: error: git not found: install git or pass --version" in done.stderr


def test_dry_run_builds_and_starts_the_git_version_and_changes_nothing(project: Path) -> None:
    sha = git(project, "rev-parse", "--short", "HEAD")
    done = run(project, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert f"--build-arg VERSION={sha} " in done.stderr
    assert f"--tag version-sidecar-example-app:{sha} examples/app" in done.stderr
    assert f"--build-arg REVISION={git(project, 'rev-parse', 'HEAD')} " in done.stderr
    assert "up -d --no-build" in done.stderr
    assert "deploy.sh: dry run: nothing was changed" in done.stderr


def test_a_dirty_tree_is_marked_and_an_explicit_version_wins(project: Path) -> None:
    sha = git(project, "rev-parse", "--short", "HEAD")
    (project / "examples/app/index.html").write_text("changed\n", encoding="utf-8")
    assert f"--tag version-sidecar-example-app:{sha}-dirty " in run(project, "--dry-run").stderr
    assert "--tag version-sidecar-example-app:2.0.1 " in run(project, "--dry-run", "--version", "2.0.1").stderr
    refused = run(project, "--dry-run", "--version", "bad version")
    assert refused.returncode == 1
    assert "is not usable as an image tag" in refused.stderr


def test_an_app_only_commit_keeps_the_sidecar_version(project: Path) -> None:
    def versions() -> list[str]:
        done = subprocess.run(["./build.sh", "--print-versions"], cwd=project, capture_output=True, text=True)
        return done.stdout.splitlines()

    first_app, first_sidecar = versions()
    (project / "examples/app/index.html").write_text("changed\n", encoding="utf-8")
    git(project, "commit", "-q", "-am", "app only")
    second_app, second_sidecar = versions()
    assert first_app != second_app
    assert first_sidecar == second_sidecar


def build(project: Path, *args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("APP_VERSION", "SIDECAR_VERSION")}
    env.update(variables)
    return subprocess.run(["./build.sh", *args], cwd=project, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("remote", "label", "secret"),
    [
        ("https://deploy:hunter2@git.example.test/shop.git", "https://git.example.test/shop.git", "hunter2"),
        ("https://ghp_s3cr3tT0ken@github.com/o/shop.git", "https://github.com/o/shop.git", "ghp_s3cr3tT0ken"),
        ("https://x-access-token:ghs_abc@github.com/o/shop", "https://github.com/o/shop", "ghs_abc"),
        ("https://u:p%40ss@host.test:8443/o/shop.git", "https://host.test:8443/o/shop.git", "p%40ss"),
        ("https://gitlab.test/o/shop.git?private_token=glpat-xyz", "https://gitlab.test/o/shop.git", "glpat-xyz"),
        ("ssh://git@github.com/o/shop.git", "ssh://github.com/o/shop.git", "git@"),
        ("tok3n@github.com:o/shop.git", "github.com:o/shop.git", "tok3n"),
        ("https://github.com/o/shop.git", "https://github.com/o/shop.git", None),
        ("https://host.test/o/shop@v1.git", "https://host.test/o/shop@v1.git", None),
    ],
)
def test_the_source_label_carries_the_remote_without_credentials(
    project: Path, remote: str, label: str, secret: str | None
) -> None:
    git(project, "remote", "add", "origin", remote)
    done = build(project, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count(f"--build-arg SOURCE={label} ") == 2, done.stderr  # the app and the sidecar
    if secret is not None:
        assert secret not in done.stdout + done.stderr


def image_inputs() -> list[str]:
    """What the sidecar image is built from: the Dockerfile, .dockerignore and what that lets in
    (wheelhouse/ aside: a local, untracked folder of wheels for offline builds)."""
    ignore = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    let_in = [line[1:].strip("/") for line in ignore if line.startswith("!")]
    return ["Dockerfile", ".dockerignore", *(name for name in let_in if name != "wheelhouse")]


def test_only_what_goes_into_the_image_versions_the_sidecar(project: Path) -> None:
    for name in [*image_inputs(), "README.md"]:
        source, target = REPO / name, project / name
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    git(project, "add", ".")
    git(project, "commit", "-q", "-m", "the sidecar's files")

    def sidecar_version() -> str:
        done = build(project, "--print-versions")
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()[1].removeprefix("SIDECAR_VERSION=")

    def change(name: str) -> None:
        path = project / name
        edited = min(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else path
        with edited.open("a", encoding="utf-8") as file:
            file.write("\n# edited\n")

    before = sidecar_version()
    for name in ["README.md", "docker-compose.yml", "deploy.sh", "examples/app/index.html"]:
        change(name)
        assert sidecar_version() == before, f"an uncommitted change to {name} marks the sidecar dirty"
        git(project, "commit", "-q", "-am", f"edit {name}")
        assert sidecar_version() == before, f"a commit to {name} changes the sidecar's version"
    for name in image_inputs():
        change(name)
        assert sidecar_version() == before + "-dirty", name
        git(project, "add", ".")
        git(project, "commit", "-q", "-m", f"edit {name}")
        after = sidecar_version()
        assert after not in (before, before + "-dirty"), f"a commit to {name} keeps the sidecar's version"
        before = after


def test_the_dependencies_are_installed_before_the_code_is_copied() -> None:
    """A change to the code must not make the image install aiohttp again: the step that installs
    the dependencies sees only pyproject.toml (and the optional wheelhouse)."""
    text = (REPO / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.split(None, 1) for line in text.splitlines() if line.strip() and not line.startswith("#")]
    instructions = [(line[0], line[1] if len(line) > 1 else "") for line in lines]
    build_stage = instructions[[kind for kind, _ in instructions].index("FROM") :]
    copies = [(i, arguments) for i, (kind, arguments) in enumerate(build_stage) if kind == "COPY"]
    runs = [(i, arguments) for i, (kind, arguments) in enumerate(build_stage) if kind == "RUN"]
    install = next(i for i, arguments in runs if "-r requirements" in arguments)
    assert [arguments for i, arguments in copies if i < install] == ["pyproject.toml wheelhouse* ./"]
    code = [i for i, arguments in copies if arguments.startswith(("sidecar/", "client/"))]
    assert len(code) == 2 and min(code) > install


FAKE_DOCKER = r"""#!/usr/bin/env bash
# A stand-in docker client. `compose ps -q SERVICE` prints $FAKE/ps-SERVICE (after `up`, once,
# $FAKE/ps-SERVICE.after-up replaces it); `compose exec` is logged to $FAKE/exec; `inspect ID` prints
# $FAKE/inspect-ID, or when $FAKE/gone-ID exists, prints its first line as docker's error and
# replaces ps-app with its other lines (the container went away; compose may have made another).
fake="$FAKE_DOCKER_STATE"
case "$1" in
    build) exit 0 ;;
    inspect)
        id="${*: -1}"
        if [[ -e "$fake/gone-$id" ]]; then
            head -n 1 "$fake/gone-$id" >&2
            tail -n +2 "$fake/gone-$id" >"$fake/ps-app"
            exit 1
        fi
        cat "$fake/inspect-$id"
        ;;
    compose)
        if [[ "$2" == ps ]]; then
            # A container replaced by `up`: ps lists its successor from then on.
            if [[ -e "$fake/up" && -e "$fake/ps-${*: -1}.after-up" ]]; then
                mv "$fake/ps-${*: -1}.after-up" "$fake/ps-${*: -1}"
            fi
            cat "$fake/ps-${*: -1}" 2>/dev/null
        elif [[ "$2" == up ]]; then
            touch "$fake/up"
        elif [[ "$2" == exec ]]; then
            echo "${*:3}" >>"$fake/exec"
        fi
        ;;
esac
exit 0
"""


@pytest.fixture
def fake_docker(tmp_path: Path, project: Path) -> Path:
    """A docker client that knows one healthy app container, `aaa`, at the project's version."""
    state = tmp_path / "fake-docker"
    state.mkdir()
    client = state / "docker"
    client.write_text(FAKE_DOCKER, encoding="utf-8")
    client.chmod(0o755)
    (state / "ps-app").write_text("aaa\n", encoding="utf-8")
    (state / "ps-sidecar").write_text("sss\n", encoding="utf-8")
    (state / "inspect-aaa").write_text(f"healthy 0 {git(project, 'rev-parse', '--short', 'HEAD')}\n", encoding="utf-8")
    return state


def deploy_with(project: Path, fake: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    return run(project, "--timeout", "20", DOCKER=str(fake / "docker"), FAKE_DOCKER_STATE=str(fake), **variables)


def test_a_container_replaced_while_being_checked_is_looked_up_again(project: Path, fake_docker: Path) -> None:
    (fake_docker / "gone-old").write_text("Error: No such object: old\naaa\n", encoding="utf-8")
    (fake_docker / "ps-app").write_text("old\n", encoding="utf-8")
    done = deploy_with(project, fake_docker)
    assert done.returncode == 0, done.stderr
    assert "deploy.sh: the app container old went away while being checked; looking again\n" in done.stderr
    assert "No such object" not in done.stderr
    assert f"deploy.sh: deployed app {git(project, 'rev-parse', '--short', 'HEAD')}: 1 healthy" in done.stderr


def test_a_container_gone_for_good_is_a_one_line_error(project: Path, fake_docker: Path) -> None:
    (fake_docker / "gone-aaa").write_text("Error: No such object: aaa\n", encoding="utf-8")
    done = deploy_with(project, fake_docker)
    assert done.returncode == 1
    assert "No such object" not in done.stderr
    assert done.stderr.endswith(
        "deploy.sh: the app container aaa went away while being checked; looking again\n"
        "deploy.sh: error: no container of the service app is running\n"
    ), done.stderr


def test_another_inspect_failure_is_named_in_one_line(project: Path, fake_docker: Path) -> None:
    error = "Cannot connect to the Docker daemon at unix:///x.sock"
    (fake_docker / "gone-aaa").write_text(f"{error}\naaa\n", encoding="utf-8")
    done = deploy_with(project, fake_docker)
    assert done.returncode == 1
    assert done.stderr.endswith(f"deploy.sh: error: reading the app container aaa failed: {error}\n"), done.stderr


def test_help_says_what_the_scripts_need(project: Path) -> None:
    assert "Needs bash 4.4 or newer and Linux" in run(project, "--help").stdout
    assert "Needs bash 4.4 or newer and Linux" in build(project, "--help").stdout


def variables_read(script: str) -> set[str]:
    """The environment variables a script reads: each is read as ${NAME:-default}, ${NAME-...},
    ${NAME:+...} or ${NAME:-} (a variable of its own is set first and read as $name)."""
    text = (REPO / script).read_text(encoding="utf-8")
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):?[-+]", text))


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_lists_every_variable_the_script_reads(project: Path, script: str) -> None:
    read = variables_read(script) | (variables_read("build.sh") if script == "deploy.sh" else set())
    assert {"APP_CONTEXT", "SIDECAR_CONTEXT", "BASE_IMAGE", "PIP_NO_INDEX"} <= read  # build.sh's, read by both
    if script == "deploy.sh":
        assert {"APP_SERVICE", "DOCKER_SOCKET", "DOCKER_SOCKET_GID", "NGINX_SERVICE"} <= read
    done = subprocess.run([f"./{script}", "--help"], cwd=project, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    listed = set(re.findall(r"^  ([A-Z][A-Z0-9_]*)", done.stdout, re.MULTILINE))
    listed |= set(re.findall(r"^  [A-Z_]+, ([A-Z][A-Z0-9_]*)", done.stdout, re.MULTILINE))
    assert read <= listed, f"--help of {script} does not list {sorted(read - listed)}"
    if script == "deploy.sh":
        assert "SIDECAR_DOCKER_PROJECT" in done.stdout and "COMPOSE_FILE" in listed


@pytest.fixture
def foreign_project(tmp_path: Path) -> Path:
    """A user's repository: their app in web/, the sidecar's Dockerfile in version-sidecar/, and
    the two scripts copied in; one commit."""
    project = tmp_path / "shop"
    (project / "web").mkdir(parents=True)
    (project / "web/Dockerfile").write_text("FROM scratch\n", encoding="utf-8")
    (project / "version-sidecar").mkdir()
    (project / "version-sidecar/Dockerfile").write_text("FROM scratch\n", encoding="utf-8")
    (project / "compose.yaml").write_text("services: {}\n", encoding="utf-8")
    for name in SCRIPTS:
        shutil.copy2(REPO / name, project / name)
    git(project, "init", "-q")
    git(project, "add", ".")
    git(project, "commit", "-q", "-m", "first")
    return project


FOREIGN = {"APP_SERVICE": "web", "APP_CONTEXT": "web", "APP_IMAGE": "shop", "SIDECAR_CONTEXT": "version-sidecar"}


def test_another_app_is_built_from_its_own_contexts(foreign_project: Path) -> None:
    sha = git(foreign_project, "rev-parse", "--short", "HEAD")
    done = run(foreign_project, "--dry-run", **FOREIGN)
    assert done.returncode == 0, done.stderr
    assert f"--tag shop:{sha} web\n" in done.stderr
    assert f"--tag version-sidecar:{sha} version-sidecar\n" in done.stderr
    named = run(foreign_project, "--dry-run", **FOREIGN, APP_DOCKERFILE="web/Dockerfile")
    assert f"--tag shop:{sha} --file web/Dockerfile web\n" in named.stderr


def test_a_missing_build_context_is_a_clear_error(foreign_project: Path) -> None:
    done = run(foreign_project, "--dry-run", **{**FOREIGN, "SIDECAR_CONTEXT": "sidecar"})
    assert done.returncode == 1
    assert "build.sh: error: build context sidecar is not a folder in" in done.stderr
    # The example's defaults do not fit this repository: said, not built.
    assert "build context examples/app is not a folder" in run(foreign_project, "--dry-run").stderr


def test_another_apps_sidecar_is_versioned_by_its_own_folder(foreign_project: Path) -> None:
    def sidecar_version() -> str:
        done = build(foreign_project, "--print-versions", **FOREIGN)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()[1].removeprefix("SIDECAR_VERSION=")

    before = sidecar_version()
    (foreign_project / "web/index.html").write_text("v2\n", encoding="utf-8")
    git(foreign_project, "add", ".")
    git(foreign_project, "commit", "-q", "-m", "the app only")
    assert sidecar_version() == before
    with (foreign_project / "version-sidecar/Dockerfile").open("a", encoding="utf-8") as dockerfile:
        dockerfile.write("# a new release\n")
    git(foreign_project, "commit", "-q", "-am", "a new sidecar")
    assert sidecar_version() != before


def test_another_apps_services_are_waited_for_and_its_proxy_reloaded(foreign_project: Path, fake_docker: Path) -> None:
    sha = git(foreign_project, "rev-parse", "--short", "HEAD")
    (fake_docker / "ps-app").unlink()  # the app's service is web: waiting on `app` would fail
    (fake_docker / "ps-web").write_text("www\n", encoding="utf-8")
    (fake_docker / "inspect-www").write_text(f"healthy 0 {sha}\n", encoding="utf-8")
    (fake_docker / "ps-vs").write_text("old-sidecar\n", encoding="utf-8")
    (fake_docker / "ps-vs.after-up").write_text("new-sidecar\n", encoding="utf-8")
    (fake_docker / "ps-proxy").write_text("proxy-1\n", encoding="utf-8")  # the user's nginx runs
    done = deploy_with(foreign_project, fake_docker, **FOREIGN, SIDECAR_SERVICE="vs", NGINX_SERVICE="proxy")
    assert done.returncode == 0, done.stderr
    assert f"deploy.sh: deployed app {sha}: 1 healthy container(s) of shop:{sha}\n" in done.stderr
    assert (fake_docker / "exec").read_text(encoding="utf-8") == "-T proxy nginx -s reload\n"
    assert "deploy.sh: the sidecar was replaced: nginx reloaded to reach the new one" in done.stderr


def test_without_a_proxy_service_the_user_is_told_to_reload_theirs(foreign_project: Path, fake_docker: Path) -> None:
    sha = git(foreign_project, "rev-parse", "--short", "HEAD")
    (fake_docker / "ps-web").write_text("www\n", encoding="utf-8")
    (fake_docker / "inspect-www").write_text(f"healthy 0 {sha}\n", encoding="utf-8")
    (fake_docker / "ps-sidecar.after-up").write_text("new-sidecar\n", encoding="utf-8")
    done = deploy_with(foreign_project, fake_docker, **FOREIGN, NGINX_SERVICE="")
    assert done.returncode == 0, done.stderr
    assert not (fake_docker / "exec").exists()
    assert "deploy.sh: the sidecar was replaced: reload your proxy so it reaches the new one" in done.stderr
