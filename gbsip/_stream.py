"""Content-Length framing of SIP over a byte stream (TCP)."""
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from gbsip import _core
from gbsip._limits import Lenient, Limits

# Content-Length (or its compact form "l") header lines, to be dropped from
# the head of a message whose framing failed before it is parsed to be answered.
_LENGTH_LINE = re.compile(rb"(?im)^(?:content-length|l)[ \t]*:[^\r\n]*\r?\n")


class StreamParser:
    """Feed bytes as they arrive; take whole messages out.

    RFC 3261 §18.3: on a stream, Content-Length delimits each message and
    CRLF keep-alives (RFC 5626 §3.5.1) may come between messages.  The
    buffer never grows past ``limits.max_message``: a peer that sends more
    without completing a message gets a ``SIPParseError`` (status 513).

    Garbage policy (every gbsip role uses it): a framing error — a missing
    or bad Content-Length, a message over the limit, bytes that are not SIP
    — means the stream cannot find the next message boundary again, so the
    connection is closed; before that, when the head of the bad message is
    a request, :meth:`refusal` gives the answer to send (400/513 with the
    reason).  A message that frames but does not parse is not garbage: its
    end is known, the stream goes on, and the receiver answers it as it
    would a bad datagram.
    """

    __slots__ = ("_buf", "_lenient", "_limits", "_kwargs", "keepalives")

    _kwargs: dict[str, Any]

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

    def next_frame(self) -> bytes | None:
        """The bytes of the next whole message (unparsed), or None until
        more arrive.  Raises ``SIPParseError`` when the stream is garbage."""
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
        return data

    def next_message(self) -> _core.Request | _core.Response | None:
        """The next whole message, parsed, or None until more bytes arrive."""
        data = self.next_frame()
        return None if data is None else _core.parse(data, **self._kwargs)

    def __iter__(self) -> Iterator[_core.Request | _core.Response]:
        while (msg := self.next_message()) is not None:
            yield msg

    def refusal(self, error: _core.SIPParseError) -> bytes | None:
        """The answer to the request whose framing failed with ``error``, or
        None when its head is not a request that can be answered (a
        response, an ACK, no Via...).  Reads only the head of the buffer."""
        head = bytes(self._buf[: self._limits.max_message]).lstrip(b"\r\n")
        end = head.find(b"\r\n\r\n")
        if end < 0:
            end = head.rfind(b"\r\n")
            if end < 0:
                return None
        head = _LENGTH_LINE.sub(b"", head[: end + 2]) + b"Content-Length: 0\r\n\r\n"
        try:
            msg = _core.parse(head, lenient=int(Lenient.ALL))
        except _core.SIPParseError:
            return None
        if not isinstance(msg, _core.Request) or msg.method == "ACK":
            return None
        try:
            return bytes(msg.reply(error.status, error.reason))
        except _core.GBSIPError:
            return None  # the headers needed to answer are missing
