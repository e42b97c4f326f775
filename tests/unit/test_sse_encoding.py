"""The version event on the wire, read back by a spec-conforming parser."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.sse import encode_retry, encode_version_event
from sidecar.version import MAX_VERSION_LENGTH, InvalidVersion, check_version, shorten
from tests.sse_parser import SSEParser

printable = st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp", "Cf", "Co", "Cn", "Zs"), include_characters=" ")
valid_versions = st.text(printable, min_size=1, max_size=MAX_VERSION_LENGTH).filter(str.isprintable)
invalid_versions = st.one_of(
    st.just(""),
    st.text(printable, min_size=MAX_VERSION_LENGTH + 1, max_size=MAX_VERSION_LENGTH + 40),
    st.builds(
        lambda head, bad, tail: head + bad + tail,
        st.text(max_size=20),
        st.sampled_from(["\r", "\n", "\0", "\r\n", "\u2028", "\x85", "\x1b", "\ufeff"]),
        st.text(max_size=20),
    ),
)


@given(valid_versions)
def test_any_valid_version_round_trips_through_a_spec_parser(version: str) -> None:
    parser = SSEParser()
    events = parser.feed(encode_version_event(check_version(version)).decode())
    assert len(events) == 1
    (event,) = events
    assert event.type == "version"
    assert event.last_event_id == version
    assert json.loads(event.data) == {"version": version}


@given(invalid_versions)
def test_any_invalid_version_is_refused(version: str) -> None:
    # check_version is the only way to a Version, and encode_version_event takes nothing else.
    with pytest.raises(InvalidVersion):
        check_version(version)


@given(st.lists(valid_versions, min_size=1, max_size=5), st.integers(0, 10**7))
def test_events_stay_separate_in_one_stream(versions: list[str], retry: int) -> None:
    """No version can merge into its neighbour or add a field: framing holds across events."""
    parser = SSEParser()
    parser.feed((encode_retry(retry) + b"".join(encode_version_event(check_version(v)) for v in versions)).decode())
    assert [json.loads(e.data)["version"] for e in parser.events] == versions
    assert parser.retry == retry


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        ("v" * 129, "129 characters"),
        ("v1\nretry: 1", "'\\n'"),
        ("v1\rx", "'\\r'"),
        ("v1\0", "'\\x00'"),
    ],
)
def test_check_version_says_why(value: str, reason: str) -> None:
    with pytest.raises(InvalidVersion, match=reason.replace("\\", "\\\\")):
        check_version(value)


def test_longest_and_odd_but_valid_versions_pass() -> None:
    for value in ["v" * 128, "1.2.3+build.7", "<img src=x onerror=alert(1)>", "versión ✓", "a b"]:
        assert check_version(value) == value


def test_event_shape_is_the_contract() -> None:
    assert encode_version_event(check_version("v1")) == b'event: version\nid: v1\ndata: {"version": "v1"}\n\n'
    assert encode_retry(3000) == b"retry: 3000\n\n"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("v1", "v1"),
        ("two\nlines", "two\\nlines"),
        ("s3cr3t-" + "x" * 100, "s3cr3t-" + "x" * 25 + "... (107 characters)"),
        ("\x1b[31m" + "é" * 40, "\\x1b[31m" + "\\xe9" * 27 + "... (45 characters)"),
    ],
)
def test_a_rejected_value_is_shown_escaped_and_cut(value: str, shown: str) -> None:
    assert shorten(value) == shown
