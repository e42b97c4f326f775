"""The installed Python distributions against the advisory data PyPI publishes.

What this machine (and CI, on the same kind of machine) can reach is PyPI's project JSON,
https://pypi.org/pypi/NAME/json, whose `vulnerabilities` lists the advisories against the
project's newest release. pip-audit cannot be used here: its default service reads the
per-release JSON (/pypi/NAME/VERSION/json), which answers 404 from here, so it skips every
package and still prints "No known vulnerabilities found" (exit 0); its OSV service is not
reachable at all. So the rule is:

- a distribution at PyPI's newest release: any advisory PyPI lists for it is a problem;
- a distribution the image runs (the sidecar's requirements, followed through their own) that is
  older than PyPI's newest: a problem too, since advisories against it cannot be read from here
  (an upper bound holds it back: prove the new release with the suite and raise the bound);
- any other older distribution (a test tool held back by a bound): reported as not checked.

Audit another environment: python -m tests.static.advisories --path .../site-packages
"""

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

PYPI_JSON = "https://pypi.org/pypi/{name}/json"
PROJECT = "version-sidecar"  # ours: not on PyPI, and its requirements are what the image runs


@dataclass(frozen=True)
class Newest:
    """PyPI's newest release of a project and the advisories PyPI lists against it."""

    version: str
    advisories: list[str]


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)


def newest_release(name: str, timeout: float = 60.0) -> Newest | None:
    """None when PyPI has no such project; any other failure raises (a check that cannot run
    must not pass)."""
    try:
        with urllib.request.urlopen(PYPI_JSON.format(name=name), timeout=timeout) as response:
            project: dict[str, Any] = json.load(response)
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise
    advisories = [
        f"{entry['id']} ({', '.join(entry.get('aliases') or []) or 'no alias'}; "
        f"fixed in {', '.join(entry.get('fixed_in') or []) or 'no release yet'})"
        for entry in project.get("vulnerabilities") or []
        if not entry.get("withdrawn")
    ]
    return Newest(str(project["info"]["version"]), advisories)


def installed(paths: list[str] | None = None) -> dict[str, str]:
    """Canonical name -> version of every distribution in sys.path (or in `paths`)."""
    found = metadata.distributions(path=paths) if paths is not None else metadata.distributions()
    return {canonicalize_name(dist.metadata["Name"]): dist.version for dist in found}


def runtime_closure(root: str, paths: list[str] | None = None) -> set[str]:
    """The distributions `root` needs at run time (no extras), by their own requirements."""
    found = {
        canonicalize_name(dist.metadata["Name"]): dist
        for dist in (metadata.distributions(path=paths) if paths is not None else metadata.distributions())
    }
    needed: set[str] = set()
    todo = [canonicalize_name(root)]
    while todo:
        name = todo.pop()
        if name in needed or name not in found:
            continue
        needed.add(name)
        for line in found[name].requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return needed


def _same(version: str, other: str) -> bool:
    try:
        return Version(version) == Version(other)
    except InvalidVersion:
        return version == other


def _older(version: str, than: str) -> bool:
    try:
        return Version(version) < Version(than)
    except InvalidVersion:
        return True  # not comparable: treat as behind, so it is never taken as checked


def audit(versions: Mapping[str, str], runtime: Iterable[str]) -> Findings:
    """Check each distribution (canonical name -> installed version) against PyPI's data."""
    runtime = set(runtime)
    names = sorted(name for name in versions if name != PROJECT)
    with ThreadPoolExecutor(max_workers=8) as pool:
        newest = dict(zip(names, pool.map(newest_release, names), strict=True))
    findings = Findings()
    for name in names:
        have, release = versions[name], newest[name]
        if release is None:
            (findings.problems if name in runtime else findings.unchecked).append(f"{name} {have}: not on PyPI")
        elif _same(have, release.version):
            findings.problems.extend(f"{name} {have}: {advisory}" for advisory in release.advisories)
        elif not _older(have, release.version):
            findings.unchecked.append(f"{name} {have} (newer than PyPI's newest, {release.version})")
        elif name in runtime:
            findings.problems.append(
                f"{name} {have} is in the image but PyPI's newest is {release.version}: advisories against "
                f"{have} cannot be read from here (PyPI publishes them per project for its newest release "
                "only); run the suite on the newest and raise the bound that holds it back"
            )
        else:
            findings.unchecked.append(f"{name} {have} (newest {release.version})")
    return findings


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.static.advisories", description=__doc__.splitlines()[0])
    parser.add_argument("--path", action="append", help="site-packages to audit (default: this interpreter's)")
    parser.add_argument("--runtime", action="append", help=f"a distribution the image runs (default: {PROJECT}'s)")
    args = parser.parse_args()
    versions = installed(args.path)
    runtime = set(map(canonicalize_name, args.runtime)) if args.runtime else runtime_closure(PROJECT, args.path)
    findings = audit(versions, runtime)
    for line in findings.unchecked:
        print(f"not checked (older than PyPI's newest, not in the image): {line}")
    for line in findings.problems:
        print(f"PROBLEM: {line}")
    print(f"{len(versions)} distributions, {len(runtime)} in the image, {len(findings.problems)} problems")
    return 1 if findings.problems else 0


if __name__ == "__main__":
    sys.exit(main())
