"""Content-Length framing of SIP over a byte stream (TCP)."""
from __future__ import annotations

from collections.abc import Iterator

from gbsip import _core
from gbsip._limits import Lenient, Limits


class StreamParser:
    """Feed bytes as they arrive; iterate over the whole messages in them.

    RFC 3261 §18.3: on a stream, Content-Length delimits each message and
    CRLF keep-alives (RFC 5626 §3.5.1) may come between messages.  The
    buffer never grows past ``limits.max_message``: a peer that sends more
    without completing a message gets a ``SIPParseError`` (status 513).
    """

    __slots__ = ("_buf", "_lenient", "_limits", "_kwargs", "keepalives")

    def __init__(self, *, lenient: int = 0, limits: Limits | None = None) -> None:
        self._buf = bytearray()
        self._lenient = int(Lenient(lenient))
        self._limits = limits or Limits()
        self._kwargs = dict(self._limits.as_kwargs(), lenient=self._lenient)
        #: CRLF keep-alive bytes seen between messages.
        self.keepalives = 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes."""
        self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes held that are not yet a whole message."""
        return len(self._buf)

    def next_message(self) -> _core.Request | _core.Response | None:
        """The next whole message, or None until more bytes arrive."""
        framed = _core.frame(self._buf, **self._kwargs)
        if framed is None:
            # Only keep-alives so far: drop them so they don't accumulate.
            stripped = len(self._buf) - len(self._buf.lstrip(b"\r\n"))
            if stripped:
                self.keepalives += stripped
                del self._buf[:stripped]
            return None
        skip, length = framed
        self.keepalives += skip
        data = bytes(self._buf[skip : skip + length])
        del self._buf[: skip + length]
        return _core.parse(data, **self._kwargs)

    def __iter__(self) -> Iterator[_core.Request | _core.Response]:
        while (msg := self.next_message()) is not None:
            yield msg
