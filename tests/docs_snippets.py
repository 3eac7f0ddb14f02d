"""The Python examples of README.md, README.zh-CN.md and docs/*.md, as the
docs tests see them (tests/test_docs.py runs them, tests/test_typing.py
type-checks them).

The docs' convention: an example that needs a platform talks to
``127.0.0.1:5060``, and one that plays the platform listens on port 5060;
the tests put a free port in place of ``5060``.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "README.zh-CN.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


@dataclass(frozen=True)
class Snippet:
    doc: Path
    index: int  # 1-based, among the doc's Python blocks
    code: str

    @property
    def name(self) -> str:
        return f"{self.doc.relative_to(ROOT)}#{self.index}"

    @property
    def module(self) -> str:
        """A module name of its own (for files side by side)."""
        stem = re.sub(r"\W", "_", self.doc.stem).lower()
        return f"doc_{stem}_{self.index}"

    @property
    def kind(self) -> str:
        """How it runs: ``pytest`` (a test file), ``locust`` (a locustfile),
        ``platform`` (listens on 5060 until stopped), ``client`` (talks to a
        platform on 5060), ``program`` (runs alone)."""
        code = self.code
        if re.search(r"^(async )?def test_", code, re.M):
            return "pytest"
        if "gbsip.locust" in code:
            return "locust"
        if "Registrar(" in code and "5060" in code:
            return "platform"
        if "127.0.0.1:5060" in code:
            return "client"
        return "program"

    def with_port(self, port: int) -> str:
        return self.code.replace("5060", str(port))


def snippets() -> list[Snippet]:
    out = []
    for doc in DOCS:
        for i, m in enumerate(_BLOCK.finditer(doc.read_text(encoding="utf-8")), 1):
            out.append(Snippet(doc, i, m.group(1)))
    return out


# --------------------------------------------------------------------------
# The gbsip commands of the docs' shell blocks (tests/test_docs.py parses them)

_SH_BLOCK = re.compile(r"^```(?:sh|bash|shell|console)\n(.*?)^```", re.S | re.M)
_SEPARATORS = {"&&", "||", "|", ";", "&"}
_REDIRECTS = {">", ">>", "<", "2>", "2>&1"}


@dataclass(frozen=True)
class Command:
    """One ``gbsip ...`` command of a shell block: its arguments after
    ``gbsip`` and where it is written."""

    doc: Path
    line: int  # of the command's first line in the doc
    argv: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"

    def __str__(self) -> str:
        return f"{self.name}: gbsip {shlex.join(self.argv)}"


def _logical_lines(block: str, first: int) -> list[tuple[int, str]]:
    """The block's lines with backslash continuations joined, each with its
    first line's number."""
    out: list[tuple[int, str]] = []
    pending, start = "", None
    for i, raw in enumerate(block.splitlines()):
        start = first + i if start is None else start
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        out.append((start, pending + raw))
        pending, start = "", None
    if pending and start is not None:
        out.append((start, pending))
    return out


def _segments(line: str) -> list[list[str]]:
    """A shell line's simple commands, as words: split at ``&&``, ``|``,
    ``;``..., redirections and comments dropped."""
    lex = shlex.shlex(line, posix=True, punctuation_chars="|&;<>")
    lex.whitespace_split = True
    lex.commenters = "#"
    segments: list[list[str]] = [[]]
    skip = False
    for word in lex:
        if skip:
            skip = False
        elif word in _SEPARATORS:
            segments.append([])
        elif word in _REDIRECTS or word.rstrip("0123456789&") in (">", ">>", "<"):
            skip = not word.endswith("&1")
        else:
            segments[-1].append(word)
    return [s for s in segments if s]


def _gbsip_argv(words: list[str]) -> list[tuple[str, ...]]:
    """The gbsip commands in one simple command: itself when it runs gbsip
    (``gbsip``, ``python -m gbsip``, after ``exec`` or ``VAR=value``), and
    any quoted in its words (``--gb-device-cmd 'exec gbsip simulate ...'``,
    placeholders ``{host}``/``{port}`` filled in)."""
    found: list[tuple[str, ...]] = []
    for word in words[1:]:
        if re.search(r"(^|\s)gbsip\s", word):
            filled = word.replace("{host}", "127.0.0.1").replace("{port}", "5060")
            for seg in _segments(filled):
                found += _gbsip_argv(seg)
    while words and (words[0] == "exec" or re.match(r"^[A-Z_]+=", words[0])):
        words = words[1:]
    if words[:1] == ["gbsip"]:
        found.insert(0, tuple(words[1:]))
    elif len(words) >= 3 and re.match(r"^python(3(\.\d+)?)?$", words[0]) \
            and words[1:3] == ["-m", "gbsip"]:
        found.insert(0, tuple(words[3:]))
    return found


def gbsip_commands() -> list[Command]:
    """Every gbsip command of the sh blocks of README.md, README.zh-CN.md
    and docs/*.md."""
    out: list[Command] = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in _SH_BLOCK.finditer(text):
            first = text.count("\n", 0, m.start(1)) + 1
            for line_no, line in _logical_lines(m.group(1), first):
                for seg in _segments(line):
                    out += [Command(doc, line_no, argv) for argv in _gbsip_argv(seg)]
    return out
