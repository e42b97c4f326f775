"""House rules a reader relies on, checked over sidecar/: each file opens with a docstring that
says its job, and no file reaches into another's private names (`thing._name` on anything but
self or cls, or `from module import _name`), except where a file fences a library's internals,
each name declared here."""

import ast
from pathlib import Path

from tests.sidecar_process import REPO

# The uses of aiohttp's internals, each in the one file that fences it (the others are class
# attributes that stream.py overrides, which this rule does not see); tests/http/
# test_aiohttp_internals.py fails when an upgrade changes one of them.
FENCED = {
    ("sidecar/connections.py", "_connections"),  # aiohttp's web.Server: its connections, not copied
    ("sidecar/connections.py", "_request_in_progress"),  # aiohttp's RequestHandler
    ("sidecar/stream.py", "_manager"),  # aiohttp's RequestHandler: its web.Server
    ("sidecar/stream.py", "_connections"),  # ... which forgets a handed-over connection at once
}
# Public despite the underscore: the standard library's own documented names.
DOCUMENTED = {"os._exit"}


def server_files() -> list[Path]:
    return sorted((REPO / "sidecar").rglob("*.py"))


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")  # dunders are public protocols


def private_reaches(source: str) -> set[str]:
    """The private names `source` reaches for on objects other than self and cls."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and _private(node.attr) and ast.unparse(node) not in DOCUMENTED:
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.add(node.attr)
        elif isinstance(node, ast.ImportFrom):
            found |= {alias.name for alias in node.names if _private(alias.name)}
    return found


def test_no_file_reaches_into_another_files_private_names() -> None:
    reaches = {
        (path.relative_to(REPO).as_posix(), name)
        for path in server_files()
        for name in private_reaches(path.read_text(encoding="utf-8"))
    }
    assert reaches - FENCED == set(), "use a public name, or fence a library's internal here and in its guard test"


def test_the_rule_sees_each_way_of_reaching_in() -> None:
    assert private_reaches("table._rows[0]\nfrom .host import _state\nself._row.x = cls._n\nos._exit(0)") == {
        "_rows",
        "_state",
    }


def test_every_file_opens_with_its_job() -> None:
    silent = [path.name for path in server_files() if not ast.get_docstring(ast.parse(path.read_text()))]
    assert silent == [], "say in a docstring at its top what the file is for"
