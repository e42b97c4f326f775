"""The README documents what the code does: every setting, with its variable and default."""

from pathlib import Path

from sidecar.config import OPTIONS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_lists_every_setting_with_its_variable() -> None:
    for option in OPTIONS:
        assert f"`{option.flag}` | `{option.env}` |" in README, option.flag


def test_readme_starts_with_the_two_commands() -> None:
    blocks = README.split("```sh\n")[1:3]
    commands = [block.split("\n```")[0] for block in blocks]
    assert commands[0].endswith("version-sidecar --demo")
    assert commands[1] == "bash .ci/run"
    assert "as root, or with sudo (`sudo bash .ci/run`)" in README
    assert ".venv/bin/python -m pytest" in README
    assert ".venv/bin/python -m pytest" in (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
