"""The installed set against PyPI's published advisories (tests/static/advisories.py says how,
and why not pip-audit): a new advisory against what the suite runs fails the build."""

import warnings

from tests.static.advisories import PROJECT, audit, installed, runtime_closure


def test_the_installed_set_has_no_published_advisory() -> None:
    versions = installed()
    runtime = runtime_closure(PROJECT)
    assert {"aiohttp", "aiohttp-sse", "structlog", "aiodocker", "multidict"} <= runtime
    findings = audit(versions, runtime)
    if findings.unchecked:
        warnings.warn("not checked against PyPI's advisories: " + "; ".join(findings.unchecked), stacklevel=1)
    assert not findings.problems, "\n".join(findings.problems)


def test_a_release_with_a_published_advisory_fails() -> None:
    # pycrypto's last release (2013) carries advisories with no fixed release: a fixed point.
    findings = audit({"pycrypto": "2.6.1"}, runtime=set())
    assert any("CVE-2013-7459" in problem for problem in findings.problems), findings


def test_an_image_dependency_behind_pypis_newest_fails() -> None:
    # aiohttp 3.9.0 has published advisories, but PyPI serves advisories here only for the newest release.
    findings = audit({"aiohttp": "3.9.0"}, runtime={"aiohttp"})
    [problem] = findings.problems
    assert problem.startswith("aiohttp 3.9.0 is in the image but PyPI's newest is "), problem
    assert audit({"aiohttp": "3.9.0"}, runtime=set()).unchecked[0].startswith("aiohttp 3.9.0 (newest ")
