"""What README and docs/ claim that can be checked against the repository: the code map and the
parts (docs/building.md), the test tiers (docs/tests.md), the commands of README's first lines,
one name for the label's build arg, the numbers docs/performance.md quotes."""

import fnmatch
import re

from sidecar import hub, logs, workers
from sidecar.config import Settings
from sidecar.heartbeat_slices import HeartbeatSlices
from sidecar.sources import engine, swarm
from tests.docker.engine import APP_DOCKERFILE
from tests.docs import read, section
from tests.sidecar_process import REPO

README = read("README.md")
TESTS = read("docs/tests.md")


def top_level_entries() -> set[str]:
    """What a checkout holds at its top (folders with a trailing /), less what .gitignore leaves out."""
    ignored = [line.rstrip("/") for line in (REPO / ".gitignore").read_text(encoding="utf-8").split() if line]
    return {
        path.name + ("/" if path.is_dir() else "")
        for path in REPO.iterdir()
        if path.name != ".git" and not any(fnmatch.fnmatch(path.name, pattern) for pattern in ignored)
    }


def test_the_code_map_has_a_line_for_every_top_level_entry() -> None:
    entries = top_level_entries()
    code_map = section(read("docs/building.md"), "Code map")
    named = set(re.findall(r"`([^`\s]+)`", "\n".join(re.findall(r"^- (.*?):", code_map, re.M))))
    named |= set(re.findall(r"`([^`\s]+)`: ", code_map))
    assert entries - named == set(), "top-level entries missing from the code map in docs/building.md"
    assert named - entries == set(), "the code map in docs/building.md names what is not in the repository"


def test_the_parts_name_every_file_of_the_server() -> None:
    files = {path.relative_to(REPO).as_posix() for path in (REPO / "sidecar").rglob("*.py")}
    named = set(re.findall(r"^- `(sidecar/[^`]+)`:", section(read("docs/building.md"), "The parts"), re.M))
    assert files - named == set(), "files of sidecar/ missing from 'The parts' in docs/building.md"
    assert named - files == set(), "'The parts' in docs/building.md names files that are not in sidecar/"


def test_the_tests_section_describes_every_tier() -> None:
    tiers = {f"tests/{folder.name}" for folder in (REPO / "tests").iterdir() if any(folder.glob("test_*.py"))}
    described = set(re.findall(r"^- `(tests/\w+)`:", TESTS, re.M))
    assert tiers - described == set(), "tiers missing from docs/tests.md"
    assert described - tiers == set(), "docs/tests.md describes tiers that do not exist"


def test_the_e2e_tier_deploys_as_often_as_the_docs_say() -> None:
    def said(test: str) -> str:
        deploys = len(re.findall(r"\b(?:start_)?deploy\(project, env", (REPO / "tests/e2e" / test).read_text()))
        return {2: "twice", 3: "three times", 4: "four times"}[deploys]

    assert f"`deploy.sh` {said('test_deploy.py')}" in TESTS
    assert f"deploys it {said('test_adoption.py')}" in section(README, "Adopting it in your app")
    assert f"deploys it {said('test_adoption.py')}" in TESTS


def test_what_ci_run_does_is_what_readme_says() -> None:
    ci_run = (REPO / ".ci/run").read_text(encoding="utf-8")
    top = README.split("\n## ", 1)[0]
    for package in ["nginx", "chromium", "docker.io", "docker-compose", "shellcheck", "debootstrap", "python3-venv"]:
        assert re.search(rf"^\s.*\b{re.escape(package)}\b", ci_run, re.M), package
    assert "python3-venv" in top  # the demo needs it on Debian's and Ubuntu's own Python
    assert "--stop" in (REPO / ".ci/start-dockerd").read_text(encoding="utf-8")
    assert "stop it with `.ci/start-dockerd --stop`" in top


def test_the_version_labels_build_arg_has_one_name() -> None:
    texts = {
        name: (REPO / name).read_text(encoding="utf-8")
        for name in [
            "README.md",
            "docs/sources.md",
            "Dockerfile",
            "examples/app/Dockerfile",
            "tests/docker/engine.py",
            "build.sh",
        ]
    }
    texts["the docker tier's app image"] = APP_DOCKERFILE
    label_args = {
        (name, arg)
        for name, text in texts.items()
        for arg in re.findall(r'org\.opencontainers\.image\.version="\$\{?(\w+)\}?"', text)
    }
    assert {arg for _, arg in label_args} == {"VERSION"}, label_args
    labelled = {"README.md", "docs/sources.md", "Dockerfile", "examples/app/Dockerfile", "the docker tier's app image"}
    assert {name for name, _ in label_args} == labelled
    passed = {arg for text in texts.values() for arg in re.findall(r"--build-arg[\s\"',f]+(\w*VERSION)=", text)}
    assert passed == {"VERSION"}, passed
    compose = (REPO / "docker-compose.yml").read_text(encoding="utf-8")
    assert re.findall(r"^\s+(\w*VERSION): ", compose, re.M) == ["VERSION", "VERSION"]


def test_quoted_client_numbers_say_how_max_clients_was_set() -> None:
    default = Settings.__dataclass_fields__["max_clients"].default
    # Per worker: the cap is the host's, so bench/servers.py multiplies it by --workers.
    bench = (REPO / "bench/servers.py").read_text(encoding="utf-8")
    [raised] = re.findall(r'"--max-clients", str\((\d+) \* self\.workers\)', bench)
    performance = read("docs/performance.md")
    assert f"`--max-clients` raised to {int(raised):,} for the run; the default is {default:,}" in performance


def test_the_bounds_in_faults_and_limits_are_the_codes() -> None:
    """Each bound the faults table promises is the constant that keeps it."""
    faults = section(read("docs/operations.md"), "Faults and limits")

    def row(starting: str) -> str:
        found = [line for line in faults.splitlines() if line.startswith(f"| {starting}")]
        assert len(found) == 1, f"one row starting {starting!r}"
        return found[0]

    silent = row("a Docker Engine or socket proxy that goes silent")
    bound = Settings().docker_timeout + engine.REQUEST_TIMEOUT
    assert f"noticed within {bound:g} s (`--docker-timeout` {Settings().docker_timeout:g} s" in silent
    assert f"no answer within {engine.REQUEST_TIMEOUT:g} s" in silent
    assert f"after {engine.RETRY_FIRST:g} s doubling to {engine.RETRY_LAST:g} s" in silent
    busy = row("a busy Swarm manager")
    assert f"every {swarm.WAITING_REREAD:g} s while it converges and every {swarm.SETTLED_REREAD:g} s" in busy
    fork = row("the host cannot start a process")
    assert f"after {workers.RESTART_FIRST:g} s, doubling up to {workers.RESTART_LAST:g} s" in fork
    assert f"toward the {workers.START_ATTEMPTS} above" in fork
    stuck = row("a client that stops reading")
    assert f"within {hub.SEND_TIMEOUT_CHECK:g} s after `--send-timeout` ({Settings().send_timeout:g} s)" in stuck
    restart = row("a restart of a host holding many streams")
    heartbeat = Settings().heartbeat
    cycle = HeartbeatSlices(heartbeat).count * hub.HEARTBEAT_GROUPS
    assert f"in {hub.HEARTBEAT_GROUPS} groups a heartbeat tick ({cycle} delays a worker each {heartbeat:g}-s" in restart
    fan_out = row("a version change to a worker holding many streams")
    assert f"in chunks of {hub.FANOUT_CHUNK:,} streams" in fan_out
    flapping = row("a version file deleted and recreated")
    assert f"a summary line per {logs.NOISE_PERIOD:g} s" in flapping


def test_readme_quotes_the_final_benchmark_run() -> None:
    """README's Performance figures are those of the last recorded run in bench/RESULTS.md."""
    final = section(read("bench/RESULTS.md"), "Issue 23: the final run on the quiet machine (session 8)")
    scale_table = final.split("```mermaid", 1)[0]  # the plots and the other tables follow it
    rows = [[cell.strip() for cell in line.split("|")] for line in scale_table.splitlines() if line.startswith("| ")]
    pss = [float(row[7]) for row in rows if row[2] == "sidecar"]
    p99 = [float(row[10].strip("*")) for row in rows if row[2] == "**sidecar / nchan**"]
    assert len(pss) == len(p99) == 4, (pss, p99)
    quoted = section(README, "Performance")
    assert f"{max(pss):.1f} KB per open tab" in quoted
    assert f"at {min(p99):.2f}-{max(p99):.2f} of nchan's p99" in quoted
