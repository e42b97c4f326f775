"""Hardening: the version file can be anything an operator, or a mistake, puts there.

Each test is one fault, named for the promise it guards. The sidecar runs as a real process under
an address-space limit, so a regression that reads without bound fails here instead of eating
the machine. Each ends the same way: the last good version stayed announced, /healthz said why it
is degraded, and a good file was announced as soon as it came back.
"""

import os
import resource
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import StartSidecar
from tests.sidecar_process import SidecarProcess
from tests.sse_client import BlockingStream
from tests.waiting import wait_until

ADDRESS_SPACE = 768 << 20  # the sidecar needs about 220 MB of it


@dataclass
class Followed:
    sidecar: SidecarProcess
    version_file: Path
    stream: BlockingStream

    def degraded_with(self, words: str) -> dict[str, object]:
        """Wait until /healthz says degraded with `words` in the problem; the health it said."""

        def said() -> dict[str, object] | None:
            health = self.sidecar.health()
            return health if health["status"] == "degraded" and words in str(health["problem"]) else None

        return wait_until(said, f"/healthz to say degraded: ...{words}...")

    def replace_with_good_file(self, version: str) -> None:
        """Put a good version file in place (whatever is there now) and expect it on the stream."""
        staged = self.version_file.with_name("staged.txt")
        staged.write_text(version + "\n")
        if self.version_file.is_dir() and not self.version_file.is_symlink():
            self.version_file.rmdir()
        os.replace(staged, self.version_file)
        self.stream.wait_for_version(version)
        wait_until(lambda: self.sidecar.health()["status"] == "ok", "/healthz to say ok again")


@pytest.fixture
def followed(start_sidecar: StartSidecar, tmp_path: Path) -> Iterator[Followed]:
    version_file = tmp_path / "version.txt"
    version_file.write_text("v1\n")
    sidecar = start_sidecar(
        ["--source", "file", "--version-file", str(version_file), "--poll-interval", "0.05", "--heartbeat", "0.2"],
        rlimits={resource.RLIMIT_AS: (ADDRESS_SPACE, ADDRESS_SPACE)},
    )
    stream = BlockingStream(sidecar.port)
    assert stream.versions(1) == ["v1"]
    yield Followed(sidecar, version_file, stream)
    stream.close()


def test_a_fifo_in_place_of_the_version_file_never_freezes_the_sidecar(followed: Followed) -> None:
    # Opening a FIFO with no writer blocks; it once froze the event loop, /healthz and SIGTERM.
    followed.version_file.unlink()
    os.mkfifo(followed.version_file)
    health = followed.degraded_with("is a FIFO (named pipe), not a regular file")
    assert health["version"] == "v1"
    assert followed.stream.versions(2) == ["v1", "v1"]  # heartbeats still flow
    followed.replace_with_good_file("v2")


def test_a_link_to_dev_zero_cannot_eat_memory_or_stop_the_following(followed: Followed) -> None:
    # /dev/zero never ends: it once read until MemoryError, which ended following without a word.
    followed.version_file.unlink()
    followed.version_file.symlink_to("/dev/zero")
    followed.degraded_with("is a character device, not a regular file")
    followed.replace_with_good_file("v2")


def test_a_huge_version_file_is_refused_without_being_read(followed: Followed) -> None:
    # A 1 GB file once cost 1.7 GB and 6 s of blocked loop every poll.
    with followed.version_file.open("r+b") as huge:
        huge.truncate(1 << 30)
    followed.degraded_with("is 1073741824 bytes long; a version file holds at most 4096")
    assert followed.sidecar.health()["version"] == "v1"
    followed.replace_with_good_file("v2")


def _make_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _make_socket(path: Path) -> None:
    path.unlink()
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))  # left bound: the file stays a socket until the test replaces it


def _link_to_dev_null(path: Path) -> None:
    path.unlink()
    path.symlink_to("/dev/null")


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (_make_directory, "is a directory"),
        (_make_socket, "is a socket"),
        (_link_to_dev_null, "is a character device"),
    ],
    ids=["directory", "socket", "dev-null"],
)
def test_anything_but_a_regular_file_is_a_problem_said_on_healthz(
    followed: Followed, make: Callable[[Path], None], kind: str
) -> None:
    make(followed.version_file)
    followed.degraded_with(kind)
    followed.replace_with_good_file("v2")


def test_a_value_that_is_not_a_version_reads_degraded_until_a_good_one_arrives(followed: Followed) -> None:
    # README promised it; /healthz once stayed "ok" while a two-line file was being refused.
    followed.version_file.write_text("v2\nretry: 0\n")
    followed.degraded_with("contains the non-printable character '\\n'")
    assert followed.stream.versions(1) == ["v1"]
    followed.replace_with_good_file("v3")


def test_a_rejected_value_is_logged_escaped_and_cut_short(followed: Followed) -> None:
    # A version file linked to a secret must not copy the secret into the logs.
    secret = "password=" + "hunter2-" * 40
    followed.version_file.write_text(secret + "\nline two\n")
    followed.degraded_with("is 338 characters long")
    logs = followed.sidecar.logs()
    assert "hunter2-hunter2-hunter2-hunter2-" not in logs
    rejected = [event for event in followed.sidecar.log_events() if event["event"] == "version rejected"]
    assert [event["value"] for event in rejected] == ["password=hunter2-hunter2-hunter2... (338 characters)"]


def test_a_version_file_recreated_10000_times_in_a_second_is_summarised(followed: Followed) -> None:
    # Each flap was a warning and a recovery line: 1,300 lines for a second of this.
    for _ in range(10_000):
        followed.version_file.unlink()
        followed.version_file.write_text("v1\n")
    followed.replace_with_good_file("v2")
    about_the_file = [
        event
        for event in followed.sidecar.log_events()
        if str(event["event"]).startswith(("source error", "source recovered"))
    ]
    # The first of each kind at once; the rest counted in a summary line per 10 s.
    at_once = [event["event"] for event in about_the_file if "count" not in event]
    assert len(at_once) == len(set(at_once)) <= 2, about_the_file
