"""Loader for the readable SIP fixture corpus in tests/data/ (see its README).

Each ``*.sip`` file holds ``key: value`` expectations, a ``---`` line, then
the message.  The message is written with LF line ends and RFC 4475 §2's
escapes; :func:`load` turns it into the exact wire bytes.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).parent / "data"

#: Keys that describe the case rather than name a message property.
META_KEYS = frozenset({
    "source", "expect", "error", "error-status", "error-line", "error-header",
    "limits", "lenient", "newline", "note", "kind",
})

_ALL_ONE_LINE = re.compile(r"<allOneLine>(.*?)</allOneLine>", re.S)
_REPEAT = re.compile(r"<repeat count=(\d+)>(.*?)</repeat>", re.S)
_HEX = re.compile(rb"<hex>([0-9A-Fa-f\s]*)</hex>")


@dataclass(frozen=True)
class Case:
    """One fixture: its wire bytes and what a strict parser must make of it."""

    name: str
    path: Path
    data: bytes
    meta: dict[str, str]
    checks: list[tuple[str, str]] = field(default_factory=list)

    @property
    def expect(self) -> str:
        return self.meta["expect"]

    @property
    def valid(self) -> bool:
        return self.expect == "valid"

    def parse_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for gbsip.parse from the ``limits``/``lenient`` keys."""
        kwargs: dict[str, Any] = {}
        for item in self.meta.get("limits", "").split():
            key, _, value = item.partition("=")
            kwargs[key] = int(value)
        flags = self.meta.get("lenient", "").split()
        if flags:
            import gbsip

            value = 0
            for flag in flags:
                value |= int(getattr(gbsip.Lenient, flag))
            kwargs["lenient"] = value
        return kwargs

    def __repr__(self) -> str:  # pytest ids stay short
        return f"Case({self.name})"


def expand(text: str, newline: str = "crlf") -> bytes:
    """Turn the written form of a message into wire bytes.

    Order matters: <allOneLine> joins lines first, then LF becomes CRLF, then
    <repeat> and <hex> are expanded so that a <hex>0A</hex> stays a bare LF.
    """
    text = _ALL_ONE_LINE.sub(lambda m: m.group(1).replace("\n", ""), text)
    if newline == "crlf":
        text = text.replace("\n", "\r\n")
    elif newline != "lf":
        raise ValueError(f"newline must be crlf or lf, not {newline!r}")
    text = _REPEAT.sub(lambda m: m.group(2) * int(m.group(1)), text)
    raw = text.encode("utf-8")
    return _HEX.sub(lambda m: bytes.fromhex(m.group(1).decode("ascii")), raw)


def parse_value(value: str) -> str:
    """Expectation values are plain text (``<repeat>`` expanded); ``!py
    <literal>`` gives a Python string literal for values with control
    characters or edge spaces."""
    if value.startswith("!py "):
        result = ast.literal_eval(value[4:])
        if not isinstance(result, str):
            raise ValueError(f"!py value must be a string literal: {value!r}")
        return result
    return _REPEAT.sub(lambda m: m.group(2) * int(m.group(1)), value)


def load(path: Path) -> Case:
    text = path.read_text(encoding="utf-8")
    if "\r" in text:
        raise ValueError(f"{path.name}: write LF only; CR comes from the loader or <hex>")
    head, sep, message = text.partition("\n---\n")
    if not sep:
        raise ValueError(f"{path.name}: no '---' separator line")
    meta: dict[str, str] = {}
    checks: list[tuple[str, str]] = []
    for lineno, line in enumerate(head.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, colon, value = line.partition(":")
        if not colon:
            raise ValueError(f"{path.name}:{lineno}: expected 'key: value'")
        key, value = key.strip(), value.strip()
        if key in META_KEYS:
            meta[key] = f"{meta[key]} {value}" if key == "note" and key in meta else value
        else:
            checks.append((key, parse_value(value)))
    if meta.get("expect") not in ("valid", "error", "validate-error"):
        raise ValueError(f"{path.name}: expect must be valid, error or validate-error")
    data = expand(message, meta.get("newline", "crlf"))
    return Case(path.stem, path, data, meta, checks)


def load_all() -> list[Case]:
    return [load(p) for p in sorted(DATA_DIR.glob("*.sip"))]


def cases(expect: str | None = None) -> list[Case]:
    return [c for c in load_all() if expect is None or c.expect == expect]


_INDEX = re.compile(r"^\d+$")


def resolve(msg: Any, key: str) -> Any:
    """Evaluate a check key on a parsed message.

    ``header.<Name>`` is ``msg.headers.get(Name)``; otherwise the key is a
    dotted path of attributes, list indices and dict keys, where a final
    ``len`` means the length of what came before (``vias.len``).
    """
    if key.startswith("header."):
        return msg.headers.get(key[len("header."):])
    if key.startswith("headers."):  # all values of a header, in wire order
        return msg.headers.getall(key[len("headers."):])
    obj: Any = msg
    parts = key.split(".")
    for i, part in enumerate(parts):
        if part == "len" and i == len(parts) - 1:
            return len(obj)
        if _INDEX.match(part) and isinstance(obj, (list, tuple)):
            obj = obj[int(part)]
        elif isinstance(obj, dict):
            obj = obj[part]
        else:
            obj = getattr(obj, part)
    return obj


def render(value: Any) -> str:
    """The text form a fixture uses for a value: None is ``none``, booleans
    are ``true``/``false``, lists are joined with `` | ``."""
    if value is None:
        return "none"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return " | ".join(render(v) for v in value)
    return str(value)


_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:", re.I | re.M)


def has_content_length(case: Case) -> bool:
    """Whether the message's header section has a Content-Length line (found
    textually, so the answer does not depend on the parser under test)."""
    sep = b"\n\n" if case.meta.get("newline") == "lf" else b"\r\n\r\n"
    head = case.data.split(sep, 1)[0]
    return bool(_CONTENT_LENGTH.search(head))
