"""The README's code blocks, as a new user copies them.

Every fenced block (including those indented inside a list item) is a :class:`Block`; a test
finds its block by a marker, a piece of text only that block contains, so editing a snippet
changes what its test runs, and a block no test claims fails ``test_readme.py``.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
#: What the snippets import from ``yourapp`` without defining it.
TEMPLATE = ROOT / "tests" / "apps" / "readme_project"

_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)\s*$")
#: A block whose first line is ``# some/path.py`` (and maybe ``: why``) is that file.
_FILE_LINE = re.compile(r"^# (?P<path>[\w/]+\.py)\b")


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language, its text (dedented) and its first line number."""

    lang: str
    text: str
    line: int

    @property
    def path(self) -> str | None:
        """The file the block says it is (``# yourapp/tasks.py`` on its first line)."""
        match = _FILE_LINE.match(self.text)
        return match.group("path") if match else None

    @property
    def module(self) -> str | None:
        """That file's dotted module name."""
        return self.path.removesuffix(".py").replace("/", ".") if self.path else None

    def commands(self) -> list[list[str]]:
        """A shell block's commands, split as the shell would, comments dropped."""
        return [words for line in self.text.splitlines() if (words := shlex.split(line, True))]

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.lang or 'text'})"


def blocks(text: str | None = None) -> list[Block]:
    """Every fenced block of the README (or of ``text``), in order."""
    lines = (README.read_text(encoding="utf-8") if text is None else text).splitlines()
    found: list[Block] = []
    opened: tuple[int, str, str] | None = None  # line index, indent, language
    body: list[str] = []
    for index, line in enumerate(lines):
        fence = _FENCE.match(line)
        if opened is None:
            if fence:
                opened, body = (index, fence.group("indent"), fence.group("lang")), []
        elif fence and fence.group("indent") == opened[1] and not fence.group("lang"):
            found.append(Block(opened[2], textwrap.dedent("\n".join(body)) + "\n", opened[0] + 1))
            opened = None
        else:
            body.append(line)
    if opened is not None:
        msg = f"README.md:{opened[0] + 1}: a code block is never closed"
        raise ValueError(msg)
    return found


def block(marker: str) -> Block:
    """The one block containing ``marker`` (a line of it, or an exact whole text)."""
    matches = [found for found in blocks() if claims(marker, found)]
    if len(matches) != 1:
        msg = f"{len(matches)} README blocks match {marker!r}: {[str(m) for m in matches]}"
        raise LookupError(msg)
    return matches[0]


def claims(marker: str, found: Block) -> bool:
    """A marker ending in a newline must be the whole block; otherwise any part of it."""
    return found.text == marker if marker.endswith("\n") else marker in found.text


def write_file(directory: Path, found: Block, *, prefix: str = "", suffix: str = "") -> Path:
    """Write a file block where it says it lives under ``directory`` (packages created)."""
    if found.path is None:
        msg = f"{found} names no file on its first line"
        raise ValueError(msg)
    target = directory / found.path
    for package in [target.parent, *target.parent.parents]:
        if package == directory or directory not in package.parents:
            break
        package.mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").touch()
    target.write_text(prefix + found.text + suffix, encoding="utf-8")
    return target


class ScratchProject:
    """A directory holding a copy of ``yourapp`` and the snippets written beside it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        shutil.copytree(TEMPLATE / "yourapp", root / "yourapp")
        self.record = root / "record.jsonl"
        self._written: set[str] = {"yourapp"}

    def write(self, found: Block, *, prefix: str = "", suffix: str = "") -> Path:
        """Write a file block where it says it lives (``# yourapp/views.py``)."""
        path = write_file(self.root, found, prefix=prefix, suffix=suffix)
        self._written.add(path.relative_to(self.root).parts[0].removesuffix(".py"))
        return path

    def write_module(self, name: str, source: str) -> Path:
        """Write a top-level module ``name`` (a snippet that names no file of its own)."""
        path = self.root / f"{name}.py"
        path.write_text(source, encoding="utf-8")
        self._written.add(name)
        return path

    def ran(self) -> list[dict[str, object]]:
        """What ``yourapp.tasks`` recorded, in order."""
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def forget(self) -> None:
        """Drop the modules imported from here, so the next project starts clean."""
        for name in list(sys.modules):
            if name.split(".")[0] in self._written:
                del sys.modules[name]
