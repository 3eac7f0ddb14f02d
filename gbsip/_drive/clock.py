"""Time for the cores and time for people."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Clock:
    """The loop's monotonic clock in whole milliseconds (what every core
    takes as ``now``), and the conversion of those instants to Unix time.

    Unix time is anchored once, so two instants keep exactly their
    monotonic distance; ``wall`` is the Unix clock to anchor on
    (:func:`time.time`, or a test's virtual clock).
    """

    __slots__ = ("loop", "wall", "_wall0", "_mono0")

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 wall: Callable[[], float] = time.time) -> None:
        self.loop = loop
        self.wall = wall
        self._mono0 = loop.time()
        self._wall0 = wall()

    def now_ms(self) -> int:
        """Now, for a core: milliseconds of ``loop.time()``."""
        return int(self.loop.time() * 1000)

    def unix(self, ms: int | float) -> float:
        """A core's instant (ms of the loop clock) as Unix time (s)."""
        return self._wall0 + (ms / 1000.0 - self._mono0)

    def unix_now(self) -> float:
        return self._wall0 + (self.loop.time() - self._mono0)
