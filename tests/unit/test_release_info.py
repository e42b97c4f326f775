"""What a deploy says beside its version: the release notes URL and the reload-required flag,
through the one gate (checks, the event's data, the announcer, the env variables, the labels)."""

import asyncio
import json
import re

import pytest
import yaml
from structlog.testing import capture_logs

from sidecar.announcer import Announcer
from sidecar.hub import Hub
from sidecar.sources import Found, SourceError
from sidecar.sources.engine import DEFAULT_LABELS, NOTES_LABEL, REQUIRED_LABEL, version_from_labels
from sidecar.sources.env import EnvSource
from sidecar.sources.swarm import service_version
from sidecar.sse import encode_version_event
from sidecar.version import InvalidReleaseInfo, Version, check_notes_url, check_required, check_version
from tests.docs import blocks, read, section
from tests.sse_parser import SSEParser
from tests.unit.test_announcer import ScriptedSource, make_hub

NOTES = "https://example.com/releases/v2"
VERSION_LABEL = DEFAULT_LABELS[0]


@pytest.mark.parametrize("url", [NOTES, "http://example.com", "HTTPS://example.com/a?b=c#d", "https://x/" + "a" * 2038])
def test_absolute_http_and_https_urls_up_to_2048_characters_pass(url: str) -> None:
    assert check_notes_url(url) == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("javascript:alert(1)", "absolute http"),
        ("/releases/v2", "absolute http"),
        ("ftp://example.com/notes", "absolute http"),
        ("https:///path", "absolute http"),
        ("https://", "absolute http"),
        ("https://example.com/a b", "space"),
        ("https://example.com/\nretry: 0", "non-printable"),
        ("https://x/" + "a" * 2039, "2049 characters long"),
    ],
)
def test_anything_else_is_refused_saying_why(url: str, why: str) -> None:
    with pytest.raises(InvalidReleaseInfo, match=why):
        check_notes_url(url)


def test_the_required_flag_is_true_false_1_or_0() -> None:
    assert [check_required(word) for word in ("true", "TRUE", "1", "false", "False", "0")] == [True] * 3 + [False] * 3
    for word in ("yes", "", "2", "required"):
        with pytest.raises(InvalidReleaseInfo, match="true, false, 1 or 0"):
            check_required(word)


def announced(hub: Hub) -> list[tuple[Version, str | None, bool]]:
    """What reaches the hub from here on (each publish call, its arguments)."""
    calls: list[tuple[Version, str | None, bool]] = []
    publish = hub.publish

    def recording(version: Version, notes: str | None = None, required: bool = False) -> bool:
        calls.append((version, notes, required))
        return publish(version, notes, required)

    hub.publish = recording  # type: ignore[method-assign]
    return calls


def data_of(event: bytes) -> object:
    [parsed] = SSEParser().feed(event.decode())
    return json.loads(parsed.data)


def test_the_event_carries_notes_and_required_only_when_set() -> None:
    v2 = check_version("v2")
    assert data_of(encode_version_event(v2)) == {"version": "v2"}
    assert data_of(encode_version_event(v2, NOTES, True)) == {"version": "v2", "notes": NOTES, "required": True}
    assert data_of(encode_version_event(v2, None, True)) == {"version": "v2", "required": True}
    assert data_of(encode_version_event(v2, NOTES, False)) == {"version": "v2", "notes": NOTES}


async def test_the_announcer_drops_a_bad_notes_url_with_one_log_line_and_announces_the_version() -> None:
    announcer = Announcer(ScriptedSource(None, [([], None)]), hub := make_hub())
    calls = announced(hub)
    with capture_logs() as logs:
        announcer.offer(Found("v2", "javascript:alert(1)", "true"))
        announcer.offer(Found("v2", "javascript:alert(1)", "true"))  # the next read: no second line
    assert calls == [("v2", None, True)] * 2
    dropped = [entry for entry in logs if entry["event"] == "release info dropped"]
    assert len(dropped) == 1 and "release notes URL javascript:alert(1)" in dropped[0]["reason"], logs
    assert dropped[0]["log_level"] == "warning"


async def test_a_bad_flag_is_dropped_too_and_a_change_of_notes_alone_is_announced() -> None:
    announcer = Announcer(ScriptedSource(None, [([], None)]), hub := make_hub())
    calls = announced(hub)
    with capture_logs() as logs:
        announcer.offer(Found("v2", NOTES, "maybe"))
    assert calls == [("v2", NOTES, False)]
    assert [entry["reason"] for entry in logs if entry["event"] == "release info dropped"] == [
        "reload-required flag maybe must be true, false, 1 or 0"
    ]
    assert hub.publish(check_version("v2"), NOTES + "-fixed")  # the same version with other notes goes out
    assert not hub.publish(check_version("v2"), NOTES + "-fixed")


async def test_the_env_source_reads_the_two_variables_beside_the_version() -> None:
    found = await EnvSource("APP_VERSION", {"APP_VERSION": "v2", "APP_RELEASE_NOTES_URL": NOTES}).read_initial()
    assert (found, found.notes, found.required) == ("v2", NOTES, None)
    found = await EnvSource("APP_VERSION", {"APP_VERSION": "v2", "APP_RELOAD_REQUIRED": "1"}).read_initial()
    assert (found.notes, found.required) == (None, "1")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("APP_RELEASE_NOTES_URL", "notes.html", "APP_RELEASE_NOTES_URL: must be an absolute http:// or https:// URL"),
        ("APP_RELOAD_REQUIRED", "yes", "APP_RELOAD_REQUIRED: must be true, false, 1 or 0, got 'yes'"),
    ],
)
async def test_a_bad_variable_stops_start_up_naming_it(variable: str, value: str, message: str) -> None:
    with pytest.raises(SourceError, match="^" + message):
        await EnvSource("APP_VERSION", {"APP_VERSION": "v2", variable: value}).read_initial()


def test_the_labels_beside_the_version_label_travel_with_the_version() -> None:
    labels = {VERSION_LABEL: "v2", NOTES_LABEL: NOTES, REQUIRED_LABEL: "true"}
    version, problem = version_from_labels(labels, DEFAULT_LABELS)
    assert isinstance(version, Found) and problem is None
    assert (version, version.notes, version.required) == ("v2", NOTES, "true")
    plain, _ = version_from_labels({VERSION_LABEL: "v2"}, DEFAULT_LABELS)
    assert isinstance(plain, Found) and (plain.notes, plain.required) == (None, None)


def test_on_swarm_they_come_from_where_the_version_comes_from() -> None:
    on_service = {VERSION_LABEL: "v2", NOTES_LABEL: NOTES, REQUIRED_LABEL: "1"}
    version, _ = service_version("app:2", {}, on_service, DEFAULT_LABELS)  # the image has no version label
    assert isinstance(version, Found) and (version.notes, version.required) == (NOTES, "1")
    version, _ = service_version("app:2", {VERSION_LABEL: "v2"}, on_service, DEFAULT_LABELS)
    assert isinstance(version, Found) and (version.notes, version.required) == (None, None)


# docs/client.md's example for each source, as a user copies it.
EXAMPLES = section(read("docs/client.md"), "What's new, and required reloads")


def test_the_env_example_gives_notes_and_a_required_reload() -> None:
    [shell] = blocks(EXAMPLES, "sh")
    environ = dict(line.split("=", 1) for line in shell.splitlines())
    announcer = Announcer(EnvSource("APP_VERSION", environ), hub := make_hub())
    calls = announced(hub)
    asyncio.run(announcer.read_initial())
    assert calls == [("v2", "https://example.com/releases/v2", True)]


def test_the_dockerfile_example_labels_the_image_with_both() -> None:
    [dockerfile] = blocks(EXAMPLES, "dockerfile")
    label = dockerfile.replace("\\\n", " ").split("LABEL", 1)[1]
    labels = {key: value.strip('"').replace("${VERSION}", "v2") for key, value in re.findall(r'(\S+)=("[^"]*")', label)}
    version, _ = version_from_labels(labels, DEFAULT_LABELS)
    assert isinstance(version, Found)
    assert (version, check_notes_url(version.notes or ""), check_required(version.required or "")) == (
        "v2",
        "https://example.com/releases/v2",
        True,
    )


def test_the_stack_example_labels_the_service_with_both() -> None:
    [stack] = blocks(EXAMPLES, "yaml")
    labels = yaml.safe_load(stack.replace("${APP_VERSION}", "v2"))["services"]["app"]["deploy"]["labels"]
    version, _ = service_version("shop-app:v2", None, labels, DEFAULT_LABELS)  # the manager lacks the image
    assert isinstance(version, Found)
    assert (version, check_notes_url(version.notes or ""), check_required(version.required or "")) == (
        "v2",
        "https://example.com/releases/v2",
        False,
    )
