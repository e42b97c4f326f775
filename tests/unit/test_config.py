"""Settings: flags over SIDECAR_* variables over defaults, and one clear line for a bad value."""

from pathlib import Path

import pytest

from sidecar.config import OPTIONS, SettingError, build_parser, load_settings


def test_defaults() -> None:
    settings = load_settings([], environ={})
    assert (settings.host, settings.port, settings.base_path) == ("127.0.0.1", 8080, "/events")
    assert settings.source == "env" and settings.version_env == "APP_VERSION"
    assert settings.heartbeat == 30.0
    assert settings.stream_path == "/events/version" and settings.script_path == "/events/reload.js"


def test_flag_wins_over_variable() -> None:
    settings = load_settings(["--heartbeat", "5"], environ={"SIDECAR_HEARTBEAT": "7", "SIDECAR_PORT": "9000"})
    assert settings.heartbeat == 5.0
    assert settings.port == 9000


def test_base_path_moves_both_paths_and_trailing_slash_is_dropped() -> None:
    settings = load_settings(["--base-path", "/_sidecar/"], environ={})
    assert settings.stream_path == "/_sidecar/version"
    assert settings.script_path == "/_sidecar/reload.js"


@pytest.mark.parametrize(
    ("argv", "environ", "named"),
    [
        (["--heartbeat", "0"], {}, "--heartbeat"),
        (["--heartbeat", "soon"], {}, "--heartbeat"),
        ([], {"SIDECAR_PORT": "http"}, "SIDECAR_PORT"),
        (["--port", "70000"], {}, "--port"),
        (["--base-path", "events"], {}, "--base-path"),
        (["--source", "git"], {}, "--source"),
        (["--version-env", "1X"], {}, "--version-env"),
        (["--max-clients", "-3"], {}, "--max-clients"),
        (["--log-level", "loud"], {}, "--log-level"),
        (["--source", "file"], {}, "--version-file"),
        ([], {"SIDECAR_DEMO": "maybe"}, "SIDECAR_DEMO"),
    ],
)
def test_bad_setting_names_itself(argv: list[str], environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingError, match=f"^{named}"):
        load_settings(argv, environ=environ)


def test_unknown_flag_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        load_settings(["--colour", "blue"], environ={})
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--colour" in err


def test_help_lists_every_setting_with_its_variable_and_default() -> None:
    text = " ".join(build_parser().format_help().split())
    for option in OPTIONS:
        assert option.flag in text
        assert option.env in text
    assert "default: 30.0" in text and "default: APP_VERSION" in text


def test_demo_uses_the_file_source_unless_told_otherwise() -> None:
    demo = load_settings(["--demo"], environ={})
    assert demo.source == "file" and demo.version_file == Path("demo-version.txt")
    assert load_settings(["--demo", "--source", "env"], environ={}).source == "env"
