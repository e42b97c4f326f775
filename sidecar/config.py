"""Settings: each one a CLI flag and a SIDECAR_* variable (the flag wins), checked at start-up."""

import argparse
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from .version import InvalidVersion, check_version


class SettingError(ValueError):
    """A setting with a value we cannot run with; the message names the setting."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    base_path: str = "/events"
    source: str = "env"
    version_env: str = "APP_VERSION"
    version_file: Path | None = None
    docker_target: str | None = None
    docker_project: str | None = None
    swarm_service: str | None = None
    docker_label: str | None = None
    docker_host: str | None = None
    docker_timeout: float = 30.0
    fallback_version: str | None = None
    poll_interval: float = 0.2
    heartbeat: float = 30.0
    retry: int = 3000
    retry_jitter: int = 2000
    reconnect_rate: int = 1000
    max_clients: int = 10000
    max_buffer: int = 65536
    send_timeout: float = 10.0
    shutdown_timeout: float = 3.0
    log_format: str = "auto"
    log_level: str = "info"
    demo: bool = False
    workers: int = 1

    @property
    def stream_path(self) -> str:
        return f"{self.base_path}/version"

    @property
    def script_path(self) -> str:
        return f"{self.base_path}/reload.js"


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a positive whole number")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be zero or a positive whole number")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a positive number of seconds")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("must be between 0 and 65535")
    return value


def _base_path(text: str) -> str:
    if not text.startswith("/") or any(c in text for c in " ?#\t\r\n"):
        raise ValueError("must start with / and hold no spaces, ? or #")
    return text.rstrip("/")  # "/" itself: the two paths at the root


def _env_name(text: str) -> str:
    if not text or not text.replace("_", "a").isalnum() or text[0].isdigit():
        raise ValueError("must be an environment variable name such as APP_VERSION")
    return text


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.lower()
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value

    return parse


def _flag(text: str) -> bool:
    value = text.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def _docker_name(text: str) -> str:
    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", text):
        raise ValueError("must be a container, service or project name (letters, digits, _ . -)")
    return text


def _label_key(text: str) -> str:
    if not text or any(c.isspace() or c == "=" for c in text):
        raise ValueError("must be a label key such as org.opencontainers.image.version")
    return text


def _docker_host(text: str) -> str:
    if not text.startswith(("unix://", "tcp://", "http://", "https://")):
        raise ValueError("must be a unix://, tcp://, http:// or https:// address")
    return text


def _version(text: str) -> str:
    try:
        return check_version(text)
    except InvalidVersion as error:
        raise ValueError(f"must be a valid version, but it {error}") from None


@dataclass(frozen=True)
class Option:
    name: str  # the Settings field
    parse: Callable[[str], Any]
    help: str
    metavar: str = "VALUE"
    is_switch: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "SIDECAR_" + self.name.upper()


OPTIONS: list[Option] = [
    Option("host", str, "address to listen on", "ADDR"),
    Option("port", _port, "TCP port to listen on", "PORT"),
    Option("base_path", _base_path, "path prefix of the stream and the script", "PATH"),
    Option(
        "source",
        _choice("env", "file", "docker", "swarm"),
        "where the app's version comes from",
        "env|file|docker|swarm",
    ),
    Option("version_env", _env_name, "variable holding the version (source env)", "NAME"),
    Option("version_file", Path, "file holding the version, watched live (source file)", "PATH"),
    Option("docker_target", _docker_name, "container name or compose service to follow (source docker)", "NAME"),
    Option("docker_project", _docker_name, "compose project the service must belong to (source docker)", "NAME"),
    Option(
        "swarm_service", _docker_name, "Swarm service to follow, <stack>_<service> in a stack (source swarm)", "NAME"
    ),
    Option("docker_label", _label_key, "image label holding the version (unset: OCI version, else revision)", "KEY"),
    Option(
        "docker_host",
        _docker_host,
        "Docker Engine or Swarm manager address (unset: DOCKER_HOST, else the local socket)",
        "URL",
    ),
    Option(
        "docker_timeout",
        _positive_float,
        "seconds the engine's event stream may stay quiet before it is reopened and read again",
        "SECONDS",
    ),
    Option(
        "fallback_version",
        _version,
        "version served until the docker target or swarm service is first ready",
        "VERSION",
    ),
    Option("poll_interval", _positive_float, "seconds between reads of the version file (source file)", "SECONDS"),
    Option("heartbeat", _positive_float, "seconds between re-sends of the current version", "SECONDS"),
    Option("retry", _non_negative_int, "reconnect delay sent to browsers, in ms", "MS"),
    Option("retry_jitter", _non_negative_int, "random extra reconnect delay per client, up to this many ms", "MS"),
    Option(
        "reconnect_rate",
        _positive_int,
        "new streams a second one worker takes back after a restart; the jitter window widens to fit",
        "N",
    ),
    Option("max_clients", _positive_int, "most streams at once, over all workers; more get 503 with Retry-After", "N"),
    Option("max_buffer", _positive_int, "bytes a slow client may leave unsent before it is dropped", "BYTES"),
    Option("send_timeout", _positive_float, "seconds a client may leave data unsent or unacknowledged", "SECONDS"),
    Option("shutdown_timeout", _positive_float, "seconds to wait for streams to end on SIGTERM", "SECONDS"),
    Option("log_format", _choice("auto", "console", "json"), "auto: console on a terminal, else JSON", "FORMAT"),
    Option("log_level", _choice("debug", "info", "warning", "error"), "lowest level logged", "LEVEL"),
    Option("demo", _flag, "also serve a demo page at / (file source on demo-version.txt unless set)", is_switch=True),
    Option("workers", _positive_int, "processes sharing the port (SO_REUSEPORT), supervised and restarted", "N"),
]

DEFAULTS = Settings()
DEMO_VERSION_FILE = Path("demo-version.txt")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrorParser(
        prog="version-sidecar",
        description="Tells every open browser tab when a new version of the app is out, over SSE.",
        epilog="Every flag can also be set by its SIDECAR_* variable; the flag wins.",
    )
    parser.add_argument("--version", action="version", version=f"version-sidecar {__version__}")
    for option in OPTIONS:
        default = getattr(DEFAULTS, option.name)
        shown = "off" if option.is_switch else ("unset" if default is None else default)
        helptext = f"{option.help} [{option.env}; default: {shown}]"
        if option.is_switch:
            parser.add_argument(option.flag, dest=option.name, action="store_const", const="true", help=helptext)
        else:
            parser.add_argument(option.flag, dest=option.name, metavar=option.metavar, help=helptext)
    return parser


class _OneLineErrorParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        fail(message)


def fail(message: str) -> NoReturn:
    """Stop start-up: exit status 2 and one line that names what is wrong."""
    print(f"version-sidecar: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def load_settings(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from flags, then SIDECAR_* variables, then defaults; raises SettingError."""
    environ = os.environ if environ is None else environ
    args = build_parser().parse_args(argv)
    values: dict[str, Any] = {}
    for option in OPTIONS:
        raw = getattr(args, option.name)
        where = option.flag
        if raw is None and option.env in environ:
            raw, where = environ[option.env], option.env
        if raw is None:
            continue
        try:
            values[option.name] = option.parse(raw)
        except ValueError as error:
            reason = str(error) if "must" in str(error) else "is not valid"
            raise SettingError(f"{where}: {reason}, got {raw!r}") from None
    if values.get("demo") and "source" not in values:
        values.update(source="file", version_file=values.get("version_file", DEMO_VERSION_FILE))
    settings = Settings(**values)
    return _check_combination(settings)


def _check_combination(settings: Settings) -> Settings:
    if settings.source == "file" and settings.version_file is None:
        raise SettingError("--version-file (SIDECAR_VERSION_FILE): required with --source file")
    if settings.source == "docker" and settings.docker_target is None:
        raise SettingError("--docker-target (SIDECAR_DOCKER_TARGET): required with --source docker")
    if settings.source == "swarm" and settings.swarm_service is None:
        raise SettingError("--swarm-service (SIDECAR_SWARM_SERVICE): required with --source swarm")
    return settings


def describe(settings: Settings) -> dict[str, Any]:
    """The settings as plain values, for the start-up log line."""
    return {f.name: str(v) if isinstance(v := getattr(settings, f.name), Path) else v for f in fields(settings)}
