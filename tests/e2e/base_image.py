"""The local base image of the e2e tier: no registry can be reached, so a minimal Debian with
Python and nginx is made with debootstrap, cached as a tarball between runs, and imported."""

import os
import shutil
import subprocess
from pathlib import Path

CACHE = Path(os.environ.get("VERSION_SIDECAR_CACHE", "/var/cache/version-sidecar"))
SUITE = "bookworm"
PACKAGES = ["python3", "python3-venv", "nginx"]  # python for the sidecar and the app, nginx in front
TARBALL = CACHE / f"debian-{SUITE}-{'-'.join(PACKAGES)}.tar"
IMAGE = f"version-sidecar-e2e/debian:{SUITE}"
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")


def _remove(rootfs: Path) -> None:
    """Remove a partial root file system, first unmounting what a killed debootstrap left mounted
    in it (its /proc): rmtree cannot remove a mount, and the next debootstrap would then fail."""
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if Path(m).is_relative_to(rootfs)), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", mount], check=True)
    shutil.rmtree(rootfs, ignore_errors=True)


def _debootstrap() -> None:
    """Make TARBALL (a few minutes, once per machine)."""
    if shutil.which("debootstrap") is None and not Path("/usr/sbin/debootstrap").exists():
        raise AssertionError("debootstrap is not installed: apt-get install debootstrap")
    CACHE.mkdir(parents=True, exist_ok=True)
    rootfs = CACHE / "rootfs.partial"
    _remove(rootfs)
    subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(rootfs), MIRROR],
        check=True,
        capture_output=True,
    )
    # Debian's default site also claims `listen 80 default_server`; the example server replaces it.
    (rootfs / "etc/nginx/sites-enabled/default").unlink(missing_ok=True)
    for leftovers in ["var/cache/apt/archives", "var/lib/apt/lists"]:
        for path in (rootfs / leftovers).glob("*"):
            if path.is_file():
                path.unlink()
    partial = TARBALL.with_suffix(".partial")
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
    partial.rename(TARBALL)
    _remove(rootfs)


def ensure_base_image(docker: list[str]) -> str:
    """The tag of the base image in the engine `docker` talks to, made if missing."""
    if subprocess.run([*docker, "image", "inspect", IMAGE], capture_output=True).returncode == 0:
        return IMAGE
    if not TARBALL.exists():
        _debootstrap()
    subprocess.run(
        [*docker, "import", "--change", 'CMD ["/bin/bash"]', str(TARBALL), IMAGE], check=True, capture_output=True
    )
    return IMAGE
