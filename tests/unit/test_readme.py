"""The README documents what the code does: every setting, with its variable and default."""

from pathlib import Path

from sidecar.config import DEFAULTS, OPTIONS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_lists_every_setting_with_its_variable() -> None:
    for option in OPTIONS:
        assert f"`{option.flag}` | `{option.env}` |" in README, option.flag


def _settings_rows() -> dict[str, list[str]]:
    """The Settings table: flag -> its cells (flag, variable, default, what), backticks removed."""
    rows = {}
    for line in README.split("## Settings", 1)[1].split("\n## ", 1)[0].splitlines():
        if line.startswith("| `--"):
            cells = [cell.strip().strip("`") for cell in line.strip("|").split(" | ")]
            rows[cells[0]] = cells
    return rows


def test_readme_settings_are_what_help_shows_and_no_more() -> None:
    rows = _settings_rows()
    assert sorted(rows) == sorted(option.flag for option in OPTIONS)
    for option in OPTIONS:
        default = getattr(DEFAULTS, option.name)
        shown = rows[option.flag][2]
        if option.is_switch:
            assert shown == "off", option.flag
        elif default is None:
            assert shown == "unset", option.flag
        elif isinstance(default, int | float):
            assert float(shown) == default, option.flag
        else:
            assert shown == str(default), option.flag


def test_readme_starts_with_the_two_commands() -> None:
    blocks = README.split("```sh\n")[1:3]
    commands = [block.split("\n```")[0] for block in blocks]
    assert commands[0].endswith("version-sidecar --demo")
    assert commands[1] == "bash .ci/run"
    assert "as root, or with sudo (`sudo bash .ci/run`)" in README
    assert ".venv/bin/python -m pytest" in README
    assert ".venv/bin/python -m pytest" in (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
