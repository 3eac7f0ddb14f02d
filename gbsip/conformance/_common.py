"""Pieces shared by the pytest plugin and the conformance suites: where a
peer is (``udp://HOST:PORT``), the options, and the SIP trace that failure
messages show."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from gbsip._address import Target, parse_target

__all__ = ["GBOptions", "Target", "Trace", "CheckFailed", "parse_target", "unknown_device_id"]


def unknown_device_id(device_id: str) -> str:
    """A device ID next to ``device_id`` that a platform should not know
    (same centre, industry and type codes, serial 999999 or 999998)."""
    serial = "999999" if not device_id.endswith("999999") else "999998"
    if len(device_id) == 20 and device_id.isdigit():
        return device_id[:14] + serial
    return device_id + "x"


@dataclass(frozen=True)
class GBOptions:
    """The ``--gb-*`` command-line options, parsed (see docs/pytest.md)."""

    platform: Target | None
    listen: Target | None
    server_id: str
    domain: str
    device_id: str
    password: str
    timeout: float
    # conformance suites
    expires: int = 3600
    grant_expires: int = 60
    keepalive_interval: float = 60.0
    keepalive_timeout_count: int = 3
    unknown_device_id: str | None = None
    any_device: bool = False
    nonce_lifetime: float | None = None
    offline_cmd: str | None = None
    utc_offset: float = 8.0
    date_tolerance: float = 5.0
    device_cmd: str | None = None
    register_timeout: float = 60.0
    unregister_cmd: str | None = None
    queries: bool = False
    no_queries: bool = False
    query_wait: float = 10.0
    extra: dict[str, Any] = field(default_factory=dict)


class CheckFailed(AssertionError):
    """A conformance check failed; the message ends with the SIP exchange."""


def _describe(data: bytes, limit: int) -> str:
    text = data.decode("utf-8", "replace")
    if len(text) > limit:
        text = text[:limit] + f"\n... ({len(data) - limit} more bytes)"
    return "\n".join("    " + line for line in text.replace("\r\n", "\n").rstrip("\n").split("\n"))


class Trace:
    """Every SIP message a rig sent or received, in order, with times.

    ``render()`` is what a failing check prints: who sent what to whom.
    Bounded: past ``limit`` entries the oldest are dropped (and counted).
    """

    def __init__(self, me: str = "gbsip", limit: int = 400) -> None:
        self.me = me
        self.limit = limit
        self.start = time.monotonic()
        self.entries: list[tuple[float, str, str, bytes]] = []
        self.dropped = 0
        self.shown = False

    def _add(self, kind: str, peer: str, data: bytes) -> None:
        if len(self.entries) >= self.limit:
            del self.entries[0]
            self.dropped += 1
        self.entries.append((time.monotonic() - self.start, kind, peer, bytes(data)))

    def sent(self, data: bytes, peer: object = "peer") -> None:
        self._add("sent", str(peer), data)

    def received(self, data: bytes, peer: object = "peer") -> None:
        self._add("recv", str(peer), data)

    def note(self, text: str) -> None:
        self._add("note", "", text.encode())

    def clear(self) -> None:
        self.entries.clear()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self.entries)

    def render(self, per_message: int = 2000) -> str:
        self.shown = True
        if not self.entries:
            return "(no SIP messages were exchanged)"
        out = []
        if self.dropped:
            out.append(f"({self.dropped} earlier entries not kept)")
        for at, kind, peer, data in self.entries:
            if kind == "note":
                out.append(f"[{at:8.3f}s] -- {data.decode()}")
                continue
            first = data.split(b"\r\n", 1)[0].decode("utf-8", "replace")
            arrow = f"{self.me} -> {peer}" if kind == "sent" else f"{peer} -> {self.me}"
            out.append(f"[{at:8.3f}s] {arrow}: {first}")
            out.append(_describe(data, per_message))
        return "\n".join(out)

    def fail(self, message: str) -> CheckFailed:
        """An AssertionError whose text is ``message`` plus the exchange."""
        return CheckFailed(f"{message}\n\nSIP exchange ({self.me}'s view):\n{self.render()}")
