"""README.md and docs/ hold together: every fence closed, every block in a known language parses,
every relative link (and its #anchor) resolves, and README stays one page that leads to the steps."""

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.docs import README, anchors, documents, fenced_blocks, headings
from tests.sidecar_process import REPO

LINK = re.compile(r"\]\(([^)\s]+)\)")


def _name(path: Path) -> str:
    return str(path.relative_to(REPO))


@pytest.mark.parametrize("document", documents(), ids=_name)
def test_every_fence_is_closed_and_every_block_parses(document: Path) -> None:
    for block in fenced_blocks(document.read_text(encoding="utf-8")):
        where = f"{_name(document)} line {block.line}"
        if block.language == "yaml":
            list(yaml.safe_load_all(block.text))
        elif block.language == "json":
            json.loads(block.text)
        elif block.language == "nginx":
            _nginx_parses(block.text, where)
        elif block.language in {"sh", "console"}:
            assert block.text.strip(), where


def _nginx_parses(text: str, where: str) -> None:
    """A whole config goes through `nginx -t`; a part (what goes into http { } or server { }) must at
    least have balanced braces and statements ended by `;`."""
    if re.search(r"^\s*(events|http)\s*\{", text, re.M):
        done = subprocess.run(["nginx", "-t", "-c", "/dev/stdin"], input=text, capture_output=True, text=True)
        assert done.returncode == 0, f"{where}: {done.stderr}"
        return
    depth = 0
    for line in text.splitlines():
        code = line.split("#", 1)[0].strip()
        if not code:
            continue
        depth += code.count("{") - code.count("}")
        assert depth >= 0, f"{where}: an unmatched }} in {line!r}"
        assert code.endswith(("{", "}", ";")), f"{where}: {line!r} does not end its statement"
    assert depth == 0, f"{where}: a {{ is never closed"


@pytest.mark.parametrize("document", documents(), ids=_name)
def test_every_relative_link_resolves(document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for target in LINK.findall(prose):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto: ...
        path, _, fragment = target.partition("#")
        linked = (document.parent / path).resolve() if path else document
        assert linked.exists(), f"{_name(document)} links to {target}, which does not exist"
        if fragment:
            assert linked.suffix == ".md", f"{_name(document)}: #{fragment} on {path}, which is no document"
            have = anchors(linked.read_text(encoding="utf-8"))
            assert fragment in have, f"{_name(document)} links to {target}: no such heading in {_name(linked)}"


def test_readme_is_one_page_that_leads_to_the_adoption_steps() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.encode()) < 12 * 1024, "README.md has grown past 12 KB: move the detail into docs/"
    assert "Adopting it in your app" in headings(text)
    first_screen = "\n".join(text.splitlines()[:12])
    assert "](#adopting-it-in-your-app)" in first_screen, "the first screen does not lead to the adoption steps"


def test_every_document_in_docs_is_linked_from_readme() -> None:
    text = README.read_text(encoding="utf-8")
    for document in documents()[1:]:
        assert f"]({_name(document)})" in text, f"README does not link to {_name(document)}"
