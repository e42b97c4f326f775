"""The package as PyPI would get it: `python -m build` makes the sdist and, from it, the wheel;
both hold the client script, carry the one version (sidecar/__init__.py) and pass `twine check`.
README's adoption step installs this package by that version."""

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import sidecar
from tests.sidecar_process import REPO

NAME = f"version_sidecar-{sidecar.__version__}"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel built from it (build's default), in a folder of their own."""
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(REPO)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_the_sdist_holds_what_the_wheel_is_built_from_and_nothing_else(dist: Path) -> None:
    with tarfile.open(dist / f"{NAME}.tar.gz") as sdist:
        names = {name.removeprefix(f"{NAME}/") for name in sdist.getnames()}
        script = sdist.extractfile(f"{NAME}/client/reload.js")
        assert script is not None and script.read() == (REPO / "client/reload.js").read_bytes()
    assert {"pyproject.toml", "README.md", "LICENSE", "PKG-INFO", "sidecar/__init__.py", "sidecar/__main__.py"} <= names
    assert not [name for name in names if name.startswith(("tests/", "bench/", ".ci/", "examples/"))]


def test_the_wheel_serves_the_client_script_and_runs_as_the_command(dist: Path) -> None:
    with zipfile.ZipFile(dist / f"{NAME}-py3-none-any.whl") as wheel:
        names = set(wheel.namelist())
        assert wheel.read("sidecar/static/reload.js") == (REPO / "client/reload.js").read_bytes()
        assert "version-sidecar = sidecar.__main__:main" in wheel.read(f"{NAME}.dist-info/entry_points.txt").decode()
        metadata = wheel.read(f"{NAME}.dist-info/METADATA").decode()
    assert f"Version: {sidecar.__version__}\n" in metadata
    assert {"sidecar/sources/docker.py", "sidecar/demo.html"} <= names
    assert not [name for name in names if name.startswith(("tests/", "client/"))]


def test_twine_check_passes(dist: Path) -> None:
    files = sorted(str(path) for path in dist.iterdir())
    assert len(files) == 2, files
    done = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *files], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2, done.stdout
