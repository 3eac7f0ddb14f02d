"""The timer and the after-input step of a sans-IO core, for every role."""
from __future__ import annotations

import asyncio
from collections.abc import Callable

from gbsip._drive.clock import Clock


class Driver:
    """Runs one sans-IO core on an asyncio loop.

    The core says when it next needs to run (``deadline()``: ms of the loop
    clock, or ``None``) and is woken with ``fire(now_ms)``.  After every
    input the role calls :meth:`settle`, which calls the role's ``flush``
    (send what the core queued, turn its events into Python events) and
    re-arms the timer.  The rule, the same for every role:

    - one timer at a time, armed with ``loop.call_at`` at the deadline;
    - an armed timer due no later than the new deadline is kept (it fires,
      the core finds nothing due, and the timer is re-armed for the real
      deadline), so a busy core does not create a timer per input;
    - when it fires the core is given ``max(now, armed deadline)``: the
      loop may wake a hair early, or ``loop.time()`` may floor to the
      millisecond before; the deadline has passed, so the core must see it
      has, or the same timer would fire again at once (forever, under a
      virtual test clock).
    """

    __slots__ = ("clock", "_deadline", "_fire", "_flush", "_timer", "_at", "closed")

    def __init__(self, clock: Clock, *, deadline: Callable[[], int | None],
                 fire: Callable[[int], object], flush: Callable[[], object]) -> None:
        self.clock = clock
        self._deadline = deadline
        self._fire = fire
        self._flush = flush
        self._timer: asyncio.TimerHandle | None = None
        self._at = 0
        self.closed = False

    def now(self) -> int:
        """Now for the core (ms of the loop clock)."""
        return self.clock.now_ms()

    def settle(self) -> None:
        """After input reached the core: flush its output and events, then
        re-arm the timer for its next deadline."""
        self._flush()
        self.arm()

    def arm(self) -> None:
        if self.closed:
            return
        deadline = self._deadline()
        if deadline is None:
            return
        if self._timer is not None:
            if self._at <= deadline:
                return
            self._timer.cancel()
        self._at = deadline
        self._timer = self.clock.loop.call_at(deadline / 1000.0, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.closed:
            return
        self._fire(max(self.now(), self._at))
        self.settle()

    def close(self) -> None:
        """No more timers; flushing and firing stop."""
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
