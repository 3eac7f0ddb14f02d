"""One TCP connection carrying SIP, the same for every role."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

from gbsip import _core
from gbsip._limits import Limits
from gbsip._stream import StreamParser

#: Seconds a message may stay incomplete on a stream before the connection
#: is refused (a Content-Length larger than what arrives would otherwise
#: hold the connection forever): Timer F's 64*T1.
INCOMPLETE_TIMEOUT = 32.0


class SIPStream(asyncio.Protocol):
    """A SIP connection (RFC 3261 §18.3): frames what arrives with
    :class:`gbsip.StreamParser` and hands the whole messages of each read to
    ``on_messages(stream, [bytes, ...])`` in one call; :meth:`write` sends
    (writes before the connection is up are queued).

    Garbage follows the parser's policy: on a framing error — or a message
    left incomplete for ``incomplete_timeout`` seconds — the request's
    answer (:meth:`StreamParser.refusal`) is written when there is one,
    ``on_refused(stream, error)`` is told, and the connection closes.
    ``on_closed(stream, exc)`` runs when it is gone, whoever closed it.
    """

    def __init__(
        self,
        on_messages: Callable[[SIPStream, list[bytes]], object],
        *,
        on_closed: Callable[[SIPStream, Exception | None], object] | None = None,
        on_refused: Callable[[SIPStream, _core.SIPParseError], object] | None = None,
        lenient: int = 0,
        limits: Limits | None = None,
        incomplete_timeout: float | None = INCOMPLETE_TIMEOUT,
    ) -> None:
        self._on_messages = on_messages
        self._on_closed = on_closed
        self._on_refused = on_refused
        self.parser = StreamParser(lenient=lenient, limits=limits)
        self.incomplete_timeout = incomplete_timeout
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)
        self.local: tuple[str, int] = ("", 0)
        self._pending: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None
        self.closed = False
        #: The role's own number for this connection.
        self.tag = 0

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses
        transport = cast(asyncio.Transport, transport)
        if self.closed:  # closed before it connected (refused)
            transport.close()
            return
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("", 0)
        local = transport.get_extra_info("sockname") or ("", 0)
        self.peer = (peer[0], peer[1])
        self.local = (local[0], local[1])
        if self._pending:
            transport.writelines(self._pending)
            self._pending.clear()

    def data_received(self, data: bytes) -> None:
        self.parser.feed(data)
        frames: list[bytes] = []
        try:
            while (frame := self.parser.next_frame()) is not None:
                frames.append(frame)
        except _core.SIPParseError as exc:
            if frames:
                self._on_messages(self, frames)
            self.refuse(exc)
            return
        self._watch_incomplete(progress=bool(frames))
        if frames:
            self._on_messages(self, frames)

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.transport = None
        self._pending.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._on_closed is not None:
            self._on_closed(self, exc)

    # -- the role's side ------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            if not self.transport.is_closing():
                self.transport.write(data)
        elif not self.closed:
            self._pending.append(data)

    def refuse(self, error: _core.SIPParseError) -> None:
        """Answer the bad request when possible, then close (the policy)."""
        answer = self.parser.refusal(error)
        if answer is not None:
            self.write(answer)
        if self._on_refused is not None:
            self._on_refused(self, error)
        self.close()

    def close(self, *, abort: bool = False) -> None:
        """Close after the queued writes (``abort``: at once, dropping them)."""
        if self.transport is not None:
            (self.transport.abort if abort else self.transport.close)()
        else:
            self.closed = True
            self._pending.clear()

    def abort(self) -> None:
        self.close(abort=True)

    def _watch_incomplete(self, progress: bool) -> None:
        """Time the message now waiting for the rest of its bytes (from its
        first byte: a completed message restarts the count)."""
        if self.incomplete_timeout is None or self.transport is None:
            return
        if self._timer is not None and (progress or self.parser.buffered == 0):
            self._timer.cancel()
            self._timer = None
        if self._timer is None and self.parser.buffered:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.incomplete_timeout, self._incomplete)

    def _incomplete(self) -> None:
        self._timer = None
        if self.parser.buffered and not self.closed:
            self.refuse(_incomplete_error(self.parser.buffered, self.incomplete_timeout or 0))


def _incomplete_error(buffered: int, waited: float) -> _core.SIPParseError:
    """The error for a message that never completed (RFC 3261 §18.3: the
    Content-Length promised more than arrived)."""
    err = _core.SIPParseError(
        f"incomplete message: {buffered} bytes waited {waited:g} s for the rest")
    err.code = "INCOMPLETE"
    err.reason = "Incomplete message (Content-Length larger than what arrived)"
    err.line = 0
    err.offset = buffered
    err.status = 400
    err.header = "Content-Length"
    return err
