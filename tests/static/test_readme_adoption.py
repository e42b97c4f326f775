"""The README's "Adopting it in your app" section shows exactly what the e2e tier deploys."""

import yaml

from tests.docs import blocks, read, section
from tests.sidecar_process import REPO


def adoption_blocks(language: str) -> list[str]:
    return blocks(section(read("README.md"), "Adopting it in your app"), language)


def test_the_script_tag_is_the_example_apps() -> None:
    [block] = adoption_blocks("html")
    page = (REPO / "examples/app/index.html").read_text(encoding="utf-8")
    assert '<script src="/events/reload.js" defer></script>' in block
    assert '<script src="/events/reload.js" defer></script>' in page
    assert 'data-app-version="{{version}}"' in block
    assert 'data-app-version="{{version}}"' in page


def test_the_nginx_lines_are_the_example_servers() -> None:
    [block] = adoption_blocks("nginx")
    server = (REPO / "nginx/example-server.conf").read_text(encoding="utf-8")
    lines = [line.strip() for line in block.splitlines()]
    shown = [line for line in lines if line and not line.startswith("#") and line != "}"]
    assert "include /etc/nginx/snippets/version-sidecar.conf;" in shown
    for line in shown:
        assert line in server, line


def test_the_compose_service_is_the_compose_files() -> None:
    [block] = adoption_blocks("yaml")
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    assert yaml.safe_load(block)["services"]["sidecar"] == compose["services"]["sidecar"]


def test_the_label_lines_are_the_example_apps() -> None:
    [block] = adoption_blocks("dockerfile")
    dockerfile = (REPO / "examples/app/Dockerfile").read_text(encoding="utf-8")
    assert "ARG VERSION=dev" in block and "ARG VERSION=dev" in dockerfile
    assert 'org.opencontainers.image.version="${VERSION}"' in block
    assert 'org.opencontainers.image.version="${VERSION}"' in dockerfile
