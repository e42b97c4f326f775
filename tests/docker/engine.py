"""A real Docker Engine for tests, driven with Debian's docker client, and tiny app images.

For the docker and e2e tiers:
- `shared_engine()`: the engine `.ci/start-dockerd` started (DOCKER_HOST, else the address it
  wrote); fails with a clear message when none answers.
- `PrivateEngine(state_dir)`: an engine of the test's own (start, stop, restart under a test).
- `Engine.build_app_image(tag, version)`: a FROM-scratch image holding a static busybox (also as
  /bin/sh, so shell healthchecks work) whose version arrives as the build arg VERSION and
  becomes the label org.opencontainers.image.version, exactly as the project's Dockerfile does.
- `Engine.run_app(name, image, ...)`: runs one (sleeping) app container.
- `Engine.cleanup()`: removes every container and image this object created.
`Engine.cli` is the command prefix for anything else (`[*engine.cli, "ps"]`).
"""

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.sidecar_process import REPO

# Debian's client, matching Debian's engine; a newer one may come first on PATH.
DOCKER_CLI = "/usr/bin/docker"
START_DOCKERD = REPO / ".ci" / "start-dockerd"
SHARED_STATE_DIR = Path("/tmp/version-sidecar-dockerd")  # .ci/start-dockerd's default
BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static: one static binary, every tool
VERSION_LABEL = "org.opencontainers.image.version"

APP_DOCKERFILE = f"""\
FROM scratch
COPY busybox /bin/busybox
COPY busybox /bin/sh
ARG VERSION
LABEL {VERSION_LABEL}="${{VERSION}}"
ENTRYPOINT ["/bin/busybox"]
# A shell as PID 1 that ends on SIGTERM, so `docker stop` (and an engine shutdown) is quick.
CMD ["sh", "-c", "trap 'exit 0' TERM; sleep 2147483647 & wait"]
"""


class Engine:
    """A Docker Engine at `host` (a DOCKER_HOST value); remembers what it creates, for cleanup()."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.cli = [DOCKER_CLI, "--host", host]
        self.containers: list[str] = []
        self.images: list[str] = []

    def docker(self, *args: str, timeout: float = 120) -> str:
        """Run the docker client; returns its stripped output, fails the test on an error."""
        # BuildKit: a cached build of the app image takes under a second (the classic builder, 3 s).
        env = {**os.environ, "DOCKER_BUILDKIT": "1"}
        result = subprocess.run([*self.cli, *args], capture_output=True, text=True, timeout=timeout, env=env)
        if result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)[:300]} failed ({result.returncode}): {result.stderr}")
        return result.stdout.strip()

    def answers(self) -> bool:
        try:
            result = subprocess.run([*self.cli, "version"], capture_output=True, timeout=10)
        except subprocess.TimeoutExpired:
            return False
        return result.returncode == 0

    def build_app_image(self, tag: str, version: str, labels: Mapping[str, str] | None = None) -> str:
        """Build the tiny app image labelled with `version` (any text, even invalid) and `labels`;
        returns `tag`."""
        if not BUSYBOX.exists():
            raise AssertionError(f"{BUSYBOX} is missing: install Debian's busybox-static")
        with tempfile.TemporaryDirectory(prefix="app-image-") as context:
            shutil.copy(BUSYBOX, Path(context) / "busybox")
            (Path(context) / "Dockerfile").write_text(APP_DOCKERFILE)
            self.images.append(tag)
            more = [f"--label={key}={value}" for key, value in (labels or {}).items()]
            self.docker("build", "--quiet", "--tag", tag, "--build-arg", f"VERSION={version}", *more, context)
        return tag

    def run_app(
        self,
        name: str,
        image: str,
        *,
        labels: Mapping[str, str] | None = None,
        healthcheck: str | None = None,
        restart: str | None = None,
        extra: Sequence[str] = (),
    ) -> str:
        """Start a container of `image` named `name`; returns its id.

        `healthcheck` is a shell command run every second (one failure makes it unhealthy);
        `labels` are container labels (e.g. com.docker.compose.service to act as a compose replica).
        """
        args = ["run", "--detach", "--name", name, "--network", "none"]
        for key, value in (labels or {}).items():
            args += ["--label", f"{key}={value}"]
        if healthcheck is not None:
            args += ["--health-cmd", healthcheck, "--health-interval", "1s", "--health-timeout", "5s"]
            args += ["--health-retries", "1"]
        if restart is not None:
            args += ["--restart", restart]
        self.containers.append(name)
        return self.docker(*args, *extra, image)

    def remove(self, *names: str) -> None:
        """Remove containers at once (SIGKILL)."""
        self.docker("rm", "--force", *names)

    def health(self, name: str) -> str:
        """The container's health status (starting, healthy, unhealthy), or "" without a healthcheck."""
        return self.docker("inspect", "--format", "{{if .State.Health}}{{.State.Health.Status}}{{end}}", name)

    def cleanup(self) -> None:
        """Remove what this object created; quiet about what is already gone."""
        for args in (["rm", "--force", *self.containers], ["rmi", "--force", *self.images]):
            if len(args) > 2:
                subprocess.run([*self.cli, *args], capture_output=True, timeout=120)
        self.containers.clear()
        self.images.clear()


def shared_engine() -> Engine:
    """The engine at DOCKER_HOST, else the one .ci/start-dockerd started; fails if none answers."""
    if not Path(DOCKER_CLI).exists():
        raise AssertionError(f"{DOCKER_CLI} is missing: install Debian's docker.io")
    state_file = SHARED_STATE_DIR / "docker-host"
    host = os.environ.get("DOCKER_HOST") or (state_file.read_text().strip() if state_file.exists() else "")
    if not host:
        raise AssertionError(
            "no Docker Engine: DOCKER_HOST is not set and .ci/start-dockerd has not run "
            "(run `export DOCKER_HOST=$(.ci/start-dockerd)` as root)"
        )
    engine = Engine(host)
    if not engine.answers():
        raise AssertionError(f"no Docker Engine answers at {host} (start one with .ci/start-dockerd)")
    return engine


class PrivateEngine(Engine):
    """A second engine of the test's own (no bridge network), to stop and restart under a test."""

    def __init__(self, state_dir: Path, wrapper: Sequence[str] = ()) -> None:
        """`wrapper`: a command prefix that starts the engine elsewhere, e.g. in namespaces of its own."""
        self.state_dir = state_dir
        self.wrapper = list(wrapper)
        super().__init__(f"unix://{state_dir}/docker.sock")

    def start(self) -> None:
        result = subprocess.run(
            [*self.wrapper, str(START_DOCKERD), str(self.state_dir), "--bridge=none"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise AssertionError(f"cannot start a private Docker Engine: {result.stderr}")

    def stop(self) -> None:
        subprocess.run([str(START_DOCKERD), "--stop", str(self.state_dir)], capture_output=True, timeout=60)

    def destroy(self) -> None:
        """Stop the engine and delete its data."""
        self.stop()
        shutil.rmtree(self.state_dir, ignore_errors=True)
