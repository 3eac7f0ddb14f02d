"""A role's events: kept, handed to listeners, iterated, awaited."""
from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

from gbsip.errors import LocalProtocolError
from gbsip.events import Event

E = TypeVar("E", bound=Event)
T = TypeVar("T", bound=Event)

Listener = Callable[[E], object]


class EventStream(Generic[E]):
    """The events of one role, in the order they happened.

    - :meth:`publish` (the role) appends to a bounded queue — the oldest
      event goes when it is full, counted in :attr:`dropped` — and calls
      every listener at once, in the loop's thread.  With ``minor``, events
      it weighs (peer-triggered ones: refusals, message bodies) go first,
      are bounded by ``max_bytes`` as well, and never push out the others;
      among them, those it calls unproven (sent by a peer that proved
      nothing) go before the proven ones and never push them out.
    - :meth:`__aiter__` takes events from the queue (each once) until the
      stream closes; :meth:`wait_for` takes them until one matches and
      returns it (the ones before it are taken too).  One consumer at a
      time is the intended use.
    - :meth:`add_listener` is the extension point for recorders, loggers
      and counters: a listener sees every event, consumed or not.
    - :meth:`watch` (for the role itself) resolves on the next *new* event
      that matches, without taking anything from the queue.
    """

    def __init__(self, maxlen: int = 65536, *, history: int = 0, max_bytes: int = 0,
                 minor: Callable[[E], tuple[int, bool] | None] | None = None) -> None:
        self._queue: collections.deque[E] = collections.deque()
        self._seqs: collections.deque[int] = collections.deque()  # of _queue's events
        # minor events, proven ones [0] and unproven ones [1]:
        # (sequence number, bytes, event), oldest first
        self._minor_qs: tuple[collections.deque[tuple[int, int, E]], ...] = (
            collections.deque(), collections.deque())
        self._minor = minor
        self._max_bytes = max_bytes
        self._bytes = 0
        self._seq = 0
        self._maxlen = max(1, maxlen)
        #: Events thrown away because the queue was full.
        self.dropped = 0
        #: The last ``history`` events, consumed or not (empty when 0).
        self.history: collections.deque[E] = collections.deque(maxlen=history or 0)
        self._listeners: list[Listener[E]] = []
        self._watchers: list[tuple[Callable[[E], bool], asyncio.Future[E]]] = []
        self._wakeups: list[asyncio.Future[None]] = []
        self.closed = False

    def __len__(self) -> int:
        return len(self._queue) + len(self._minor_qs[0]) + len(self._minor_qs[1])

    # -- the role's side ------------------------------------------------------

    def publish(self, ev: E) -> None:
        self._enqueue(ev)
        if self.history.maxlen:
            self.history.append(ev)
        for listener in self._listeners:
            try:
                listener(ev)
            except Exception as exc:  # a listener's bug must not stop the core
                asyncio.get_event_loop().call_exception_handler({
                    "message": f"gbsip event listener {listener!r} failed on {ev!r}",
                    "exception": exc,
                })
        if self._watchers:
            keep = []
            for pred, fut in self._watchers:
                if fut.done():
                    continue
                if pred(ev):
                    fut.set_result(ev)
                else:
                    keep.append((pred, fut))
            self._watchers = keep
        self._wake()

    def _enqueue(self, ev: E) -> None:
        minor = self._minor(ev) if self._minor is not None else None
        weight = minor[0] if minor is not None else 0
        # rank: 0 major, 1 proven minor, 2 unproven minor; room is made by
        # dropping the oldest event of the highest non-empty rank down to its own
        rank = 0 if minor is None else 2 if minor[1] else 1
        while len(self) >= self._maxlen or (
                minor is not None and self._max_bytes and self._bytes + weight > self._max_bytes):
            if self._minor_qs[1]:
                self._bytes -= self._minor_qs[1].popleft()[1]
            elif self._minor_qs[0] and rank <= 1:
                self._bytes -= self._minor_qs[0].popleft()[1]
            elif self._queue and rank == 0:
                self._queue.popleft()
                self._seqs.popleft()
            else:  # it would push out an event that outranks it: it goes itself
                self.dropped += 1
                return
            self.dropped += 1
        self._seq += 1
        if minor is None:
            self._queue.append(ev)
            self._seqs.append(self._seq)
        else:
            self._minor_qs[rank - 1].append((self._seq, weight, ev))
            self._bytes += weight

    def _take(self) -> E:
        """The oldest queued event (there is one)."""
        oldest: collections.deque[tuple[int, int, E]] | None = None
        for q in self._minor_qs:
            if q and (oldest is None or q[0][0] < oldest[0][0]):
                oldest = q
        if oldest is not None and (not self._queue or oldest[0][0] < self._seqs[0]):
            _seq, weight, ev = oldest.popleft()
            self._bytes -= weight
            return ev
        self._seqs.popleft()
        return self._queue.popleft()

    def watch(self, pred: Callable[[E], bool]) -> asyncio.Future[E]:
        """A future for the next new event ``pred`` accepts (queue untouched)."""
        fut: asyncio.Future[E] = asyncio.get_running_loop().create_future()
        if self.closed:
            fut.set_exception(LocalProtocolError("no more events: the role is closed"))
        else:
            self._watchers.append((pred, fut))
        return fut

    def close(self) -> None:
        """No more events: iterators end once the queue is empty, waits fail."""
        self.closed = True
        for _pred, fut in self._watchers:
            if not fut.done():
                fut.set_exception(LocalProtocolError("no more events: the role is closed"))
        self._watchers.clear()
        self._wake()

    def _wake(self) -> None:
        for fut in self._wakeups:
            if not fut.done():
                fut.set_result(None)
        self._wakeups.clear()

    # -- the user's side -----------------------------------------------------

    def add_listener(self, listener: Listener[E]) -> Callable[[], None]:
        """Call ``listener(event)`` for every event from now on; returns a
        function that removes it."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    async def __aiter__(self) -> AsyncIterator[E]:
        while True:
            while len(self):
                yield self._take()
            if self.closed:
                return
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._wakeups.append(fut)
            try:
                await fut
            finally:
                if fut in self._wakeups:
                    self._wakeups.remove(fut)

    async def wait_for(self, kind: type[T] | tuple[type[T], ...],
                       device_id: str | None = None,
                       timeout: float | None = 10.0) -> T:
        """The next event of that type (for that device) not yet taken from
        the queue; the events before it are taken too.  Raises
        ``TimeoutError`` after ``timeout`` seconds (None: no limit) and
        :class:`gbsip.LocalProtocolError` when the role closes first."""

        __tracebackhide__ = True  # a failing test's traceback ends in its own code

        async def find() -> T:
            async for ev in self:
                if isinstance(ev, kind) and (device_id is None or ev.device_id == device_id):
                    return ev
            raise LocalProtocolError(f"closed while waiting for {_names(kind)}")

        try:
            return await asyncio.wait_for(find(), timeout)
        except asyncio.TimeoutError:
            of = f" of device {device_id}" if device_id is not None else ""
            raise asyncio.TimeoutError(
                f"no {_names(kind)} event{of} within {timeout:g} s") from None


def _names(kind: type[Event] | tuple[type[Event], ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)
