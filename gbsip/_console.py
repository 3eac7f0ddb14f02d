"""What the ``gbsip`` commands write, and where: one clock for people, lines
that fit the terminal, and a reader that went away (``| head``).
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TextIO

#: Exit status of a command whose output was closed under it (128 + SIGPIPE,
#: what the shell reports for a process SIGPIPE ended).
EXIT_BROKEN_PIPE = 141


def iso_time(unix: float) -> str:
    """Unix time as local ISO 8601 with milliseconds and the UTC offset
    (``2024-05-01T12:00:00.123+08:00``): the one clock users see."""
    return datetime.fromtimestamp(unix).astimezone().isoformat(timespec="milliseconds")


class Clock:
    """Fast wall-clock text for a stream of Unix times: the part that changes
    once a second is made once a second."""

    __slots__ = ("_second", "_hms", "_iso", "_zone")

    def __init__(self) -> None:
        self._second = -1
        self._hms = ""
        self._iso = ""
        self._zone = ""

    def _roll(self, second: int) -> None:
        local = datetime.fromtimestamp(second).astimezone()
        self._second = second
        self._hms = local.strftime("%H:%M:%S")
        self._iso = local.strftime("%Y-%m-%dT%H:%M:%S")
        zone = local.strftime("%z")
        self._zone = f"{zone[:3]}:{zone[3:]}" if zone else ""

    def hms(self, unix: float) -> str:
        """``12:00:00.123`` (local time)."""
        second = int(unix)
        if second != self._second:
            self._roll(second)
        return f"{self._hms}.{int((unix - second) * 1000):03d}"

    def iso(self, unix: float) -> str:
        """``2024-05-01T12:00:00.123+08:00`` (local time and its offset)."""
        second = int(unix)
        if second != self._second:
            self._roll(second)
        return f"{self._iso}.{int((unix - second) * 1000):03d}{self._zone}"


class Output:
    """A text stream that may be closed by its reader.

    When the reader goes away (``gbsip simulate | head -2``) the first
    failed write points the file descriptor at /dev/null (so nothing fails
    again, not even the interpreter's last flush), marks the output
    :attr:`closed` and calls ``on_closed`` once; later writes do nothing.
    """

    def __init__(self, stream: TextIO, on_closed: Callable[[], object] | None = None) -> None:
        self.stream = stream
        self.on_closed = on_closed
        self.closed = False

    def isatty(self) -> bool:
        try:
            return self.stream.isatty()
        except (ValueError, OSError):
            return False

    def width(self) -> int:
        """Columns of the terminal (80 when not known)."""
        try:
            return os.get_terminal_size(self.stream.fileno()).columns or 80
        except (OSError, ValueError, AttributeError):
            return shutil.get_terminal_size((80, 24)).columns

    def write(self, text: str, flush: bool = True) -> bool:
        """Write (and flush); False once the reader has gone."""
        if self.closed:
            return False
        try:
            self.stream.write(text)
            if flush:
                self.stream.flush()
        except BrokenPipeError:
            self.close_quietly()
            return False
        return True

    def line(self, text: str = "") -> bool:
        return self.write(text + "\n")

    def close_quietly(self) -> None:
        """The reader went away: stop writing, without another error."""
        if self.closed:
            return
        self.closed = True
        silence(self.stream)
        callback, self.on_closed = self.on_closed, None
        if callback is not None:
            callback()


def silence(stream: TextIO) -> None:
    """Point a stream's file descriptor at /dev/null (after EPIPE), so the
    data still buffered in it and the interpreter's final flush go nowhere
    instead of raising BrokenPipeError again."""
    try:
        fd = stream.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError, AttributeError):
        return
    try:
        os.dup2(null, fd)
    except OSError:
        pass
    finally:
        os.close(null)


def fit(segments: Sequence[tuple[int, str]], width: int, sep: str = "  ") -> str:
    """Join ``(priority, text)`` segments in their order, leaving out the
    least important (highest number) ones until the line fits ``width``
    columns; the first segment is always kept (cut if it must be)."""
    keep = list(range(len(segments)))

    def render(idx: list[int]) -> str:
        return sep.join(segments[i][1] for i in idx)

    while len(keep) > 1 and len(render(keep)) > width:
        drop = max(keep[1:], key=lambda i: (segments[i][0], i))
        keep.remove(drop)
    line = render(keep)
    return line if len(line) <= width else line[: max(0, width - 1)] + "…"
