"""The project's documents as tests read them: README.md and docs/*.md, their sections and fenced
blocks. Tests take what a user copies from the document itself, so a document that drifts fails."""

import re
from dataclasses import dataclass
from pathlib import Path

from tests.sidecar_process import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"


def documents() -> list[Path]:
    """README.md and every file under docs/."""
    return [README, *sorted(DOCS.glob("*.md"))]


def read(name: str) -> str:
    """A document by its path from the repository's top: "README.md", "docs/operations.md"."""
    return (REPO / name).read_text(encoding="utf-8")


def section(text: str, title: str, level: int = 2) -> str:
    """The text under the heading `title` at `level`, up to the next heading of that level or above
    (headings inside fenced blocks, such as a shell comment, do not count)."""
    lines = text.splitlines(keepends=True)
    start = lines.index(f"{'#' * level} {title}\n") + 1
    taken, fenced = [], False
    for line in lines[start:]:
        if line.strip().startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"(#{1,6}) ", line)) and len(match[1]) <= level:
            break
        taken.append(line)
    return "".join(taken)


@dataclass(frozen=True)
class Block:
    """A fenced code block: its info string (the language), its text, and the line its fence opens on."""

    language: str
    text: str
    line: int


class UnclosedFence(ValueError):
    pass


def fenced_blocks(text: str) -> list[Block]:
    """Every fenced block of a Markdown text, in order (a block indented in a list item loses that
    indent). An opening fence never closed, or one opened inside another block (a sure sign the one
    before was left open), raises UnclosedFence."""
    blocks: list[Block] = []
    opened: tuple[str, int, int] | None = None  # language, line, indent of the opening fence
    lines: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip(" "))
        if opened is None:
            if stripped.startswith("```"):
                opened, lines = (stripped[3:].strip(), number, indent), []
            continue
        language, start, fence_indent = opened
        if stripped == "```":
            blocks.append(Block(language, "".join(f"{kept}\n" for kept in lines), start))
            opened = None
        elif stripped.startswith("```"):
            raise UnclosedFence(f"line {start}: the ```{language} block is still open at line {number}")
        else:
            lines.append(line[min(indent, fence_indent) :])
    if opened is not None:
        raise UnclosedFence(f"line {opened[1]}: the ```{opened[0]} block is never closed")
    return blocks


def blocks(text: str, language: str) -> list[str]:
    """The texts of the fenced blocks in `language`, in order."""
    return [block.text for block in fenced_blocks(text) if block.language == language]


def headings(text: str) -> list[str]:
    """The headings of a Markdown text, outside fenced blocks."""
    found, fenced = [], False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"#{1,6} (.*)", line)):
            found.append(match[1].strip())
    return found


def anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor, with GitHub's -1, -2 ... for repeats."""
    seen: dict[str, int] = {}
    result = set()
    for heading in headings(text):
        base = anchor(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result
