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
    assert load_settings(["--demo", "--version-file", "v.txt"], environ={}).version_file == Path("v.txt")


@pytest.mark.parametrize(
    ("source", "needs"),
    [
        ("file", "--version-file (SIDECAR_VERSION_FILE)"),
        ("docker", "--docker-target (SIDECAR_DOCKER_TARGET)"),
        ("swarm", "--swarm-service (SIDECAR_SWARM_SERVICE)"),
    ],
)
def test_each_source_names_the_setting_it_needs(source: str, needs: str) -> None:
    with pytest.raises(SettingError) as refused:
        load_settings(["--source", source], environ={})
    assert str(refused.value) == f"{needs}: required with --source {source}"


# Each setting as users write it, and what it becomes; each refused one with the reason said.
ACCEPTED = [
    ("--port", "0", "port", 0),
    ("--port", "65535", "port", 65535),
    ("--max-clients", "1", "max_clients", 1),
    ("--retry", "0", "retry", 0),
    ("--reconnect-rate", "1", "reconnect_rate", 1),
    ("--heartbeat", "0.01", "heartbeat", 0.01),
    ("--heartbeat", "0.5", "heartbeat", 0.5),
    ("--base-path", "/v/", "base_path", "/v"),
    ("--base-path", "/", "base_path", ""),
    ("--version-env", "SPOT_VERSION", "version_env", "SPOT_VERSION"),
    ("--version-env", "_V", "version_env", "_V"),
    ("--version-env", "v2", "version_env", "v2"),
    ("--log-level", "WARNING", "log_level", "warning"),
    ("--log-format", "Json", "log_format", "json"),
    ("--docker-target", "App.web-1_x", "docker_target", "App.web-1_x"),
    ("--docker-host", "unix:///run/docker.sock", "docker_host", "unix:///run/docker.sock"),
    ("--docker-host", "tcp://proxy:2375", "docker_host", "tcp://proxy:2375"),
    ("--docker-host", "http://proxy:2375", "docker_host", "http://proxy:2375"),
    ("--docker-host", "https://proxy:2376", "docker_host", "https://proxy:2376"),
    ("--fallback-version", "1.0", "fallback_version", "1.0"),
    ("--docker-timeout", "2.5", "docker_timeout", 2.5),
]
REFUSED = [
    ("--port", "-1", "must be between 0 and 65535"),
    ("--port", "65536", "must be between 0 and 65535"),
    ("--max-clients", "0", "must be a positive whole number"),
    ("--retry", "-1", "must be zero or a positive whole number"),
    ("--reconnect-rate", "0", "must be a positive whole number"),
    ("--reconnect-rate", "fast", "is not valid"),
    ("--heartbeat", "0", "must be a positive number of seconds"),
    ("--heartbeat", "inf", "must be a positive number of seconds"),
    ("--heartbeat", "nan", "must be a positive number of seconds"),
    ("--heartbeat", "soon", "is not valid"),
    ("--port", "http", "is not valid"),
    ("--base-path", "v", "must start with / and hold no spaces, ? or #"),
    ("--base-path", "/a b", "must start with / and hold no spaces, ? or #"),
    ("--base-path", "/a?b", "must start with / and hold no spaces, ? or #"),
    ("--base-path", "/a#b", "must start with / and hold no spaces, ? or #"),
    ("--version-env", "", "must be an environment variable name such as APP_VERSION"),
    ("--version-env", "9LIVES", "must be an environment variable name such as APP_VERSION"),
    ("--version-env", "APP-VERSION", "must be an environment variable name such as APP_VERSION"),
    ("--log-level", "loud", "must be one of debug, info, warning, error"),
    ("--docker-target", "-app", "must be a container, service or project name (letters, digits, _ . -)"),
    ("--docker-target", "Ä", "must be a container, service or project name (letters, digits, _ . -)"),
    ("--docker-host", "/var/run/docker.sock", "must be a unix://, tcp://, http:// or https:// address"),
    ("--docker-label", "a b", "must be a label key such as org.opencontainers.image.version"),
    ("--docker-timeout", "0", "must be a positive number of seconds"),
    ("--fallback-version", "a\nb", "must be a valid version, but it contains the non-printable character '\\n'"),
]


@pytest.mark.parametrize(("flag", "text", "field", "value"), ACCEPTED)
def test_each_setting_accepts_what_users_write(flag: str, text: str, field: str, value: object) -> None:
    assert getattr(load_settings([flag, text], environ={}), field) == value


@pytest.mark.parametrize(("flag", "text", "reason"), REFUSED)
def test_each_setting_refuses_with_the_reason(flag: str, text: str, reason: str) -> None:
    with pytest.raises(SettingError) as refused:
        load_settings([f"{flag}={text}"], environ={})
    assert str(refused.value) == f"{flag}: {reason}, got {text!r}"


@pytest.mark.parametrize(
    ("text", "on"),
    [(t, True) for t in ["1", "true", "YES", "on", "On"]]
    + [(t, False) for t in ["0", "false", "No", "off", "OFF", ""]],
)
def test_a_switch_variable_reads_the_usual_words(text: str, on: bool) -> None:
    assert load_settings([], environ={"SIDECAR_DEMO": text}).demo is on


def test_a_switch_variable_refuses_other_words() -> None:
    with pytest.raises(SettingError) as refused:
        load_settings([], environ={"SIDECAR_DEMO": "maybe"})
    assert str(refused.value) == "SIDECAR_DEMO: must be true or false, got 'maybe'"


def test_version_and_help_name_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        load_settings(["--version"], environ={})
    assert capsys.readouterr().out.startswith("version-sidecar ")
    text = " ".join(build_parser().format_help().split())
    assert text.startswith("usage: version-sidecar ")
    assert "Tells every open browser tab when a new version of the app is out, over SSE." in text
    assert "Every flag can also be set by its SIDECAR_* variable; the flag wins." in text
    assert "[SIDECAR_DEMO; default: off]" in text and "[SIDECAR_VERSION_FILE; default: unset]" in text
