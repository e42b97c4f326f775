"""docs/sources.md's section on the Docker socket says what the shipped files do: its compose
block is docker-compose.yml's filter, its table lists exactly the requests the docker tier sends
through the real filter, and its block without Docker is a sidecar that starts on those settings."""

import re
from typing import Any

import yaml

from sidecar.config import load_settings
from tests.docker.test_socket_filter import allowed_requests
from tests.docs import blocks, read, section
from tests.sidecar_process import REPO

TITLE = "The Docker socket: risk and the safer alternative"


def socket_section() -> str:
    return section(section(read("docs/sources.md"), "Docker label source"), TITLE, level=3)


def compose_file() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    return compose


def test_the_filter_block_is_the_compose_files() -> None:
    shown = yaml.safe_load(blocks(socket_section(), "yaml")[0])
    compose = compose_file()
    assert shown["services"]["docker-socket-filter"] == compose["services"]["docker-socket-filter"]
    assert shown["networks"]["docker-api"] == compose["networks"]["docker-api"]


def shape(request: str) -> str:
    """A request with its names and query values left out: /images/{}/json, /events?since=&stream=."""
    path, _, query = request.partition("?")
    path = re.sub(r"\{[^}]*\}", "{}", path)
    path = re.sub(r"^/(images|services)/(?!\{\}).+?(/json)?$", r"/\1/{}\2", path)
    names = [pair.split("=")[0] for pair in query.split("&") if pair]
    return path + ("?" + "&".join(f"{name}=" for name in names) if names else "")


def test_the_table_lists_the_requests_the_filter_is_tested_to_pass() -> None:
    rows = re.findall(r"^\| `GET ([^`]+)` \|", socket_section(), re.MULTILINE)
    assert sorted(shape(row) for row in rows) == sorted(shape(path) for path in allowed_requests("app:1"))
    config = (REPO / "haproxy/docker-socket-filter.cfg").read_text(encoding="utf-8")
    allow_lines = re.findall(r"^\s*http-request set-var\(txn\.allowed\) bool\(true\) if get ", config, re.MULTILINE)
    assert len(allow_lines) == len(rows), "one allowing line in the filter per request in the table"


def test_the_sidecar_without_docker_starts_on_its_settings_locked_down_like_the_default() -> None:
    service = yaml.safe_load(blocks(socket_section(), "yaml")[1])["services"]["sidecar"]
    settings = load_settings(service["command"], environ={})
    assert (settings.source, str(settings.version_file)) == ("file", "/srv/version/VERSION")
    default = compose_file()["services"]["sidecar"]
    for key in ("read_only", "cap_drop", "security_opt"):
        assert service[key] == default[key]
    assert "docker" not in str(service["volumes"])
