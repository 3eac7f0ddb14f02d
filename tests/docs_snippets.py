"""The Python examples of README.md, README.zh-CN.md and docs/*.md, as the
docs tests see them (tests/test_docs.py runs them, tests/test_typing.py
type-checks them).

The docs' convention: an example that needs a platform talks to
``127.0.0.1:5060``, and one that plays the platform listens on port 5060;
the tests put a free port in place of ``5060``.
"""
from __future__ import annotations

import re
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
