"""The docs say what the code does: every setting, with its variable and default (docs/operations.md),
and README starts with the two commands."""

from sidecar.config import DEFAULTS, OPTIONS
from tests.docs import read, section
from tests.sidecar_process import REPO

README = read("README.md")
OPERATIONS = read("docs/operations.md")


def test_the_docs_list_every_setting_with_its_variable() -> None:
    for option in OPTIONS:
        assert f"`{option.flag}` | `{option.env}` |" in OPERATIONS, option.flag


def _settings_rows() -> dict[str, list[str]]:
    """docs/operations.md's Settings table: flag -> its cells (flag, variable, default, what), no backticks."""
    rows = {}
    for line in section(OPERATIONS, "Settings").splitlines():
        if line.startswith("| `--"):
            cells = [cell.strip().strip("`") for cell in line.strip("|").split(" | ")]
            rows[cells[0]] = cells
    return rows


def test_the_settings_table_is_what_help_shows_and_no_more() -> None:
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
    assert ".venv/bin/python -m pytest" in (REPO / ".ci" / "run").read_text()


def test_readmes_most_used_settings_match_the_full_table() -> None:
    full = _settings_rows()
    shown = 0
    for line in section(README, "Most used settings").splitlines():
        if line.startswith("| `--"):
            cells = [cell.strip().strip("`") for cell in line.strip("|").split(" | ")]
            assert cells[:3] == full[cells[0]][:3], cells[0]  # flag, variable, default
            shown += 1
    assert shown >= 5
