"""``async with`` for every role: start on entry, close on exit."""
from __future__ import annotations

from typing import TypeVar

R = TypeVar("R", bound="Lifetime")


class Lifetime:
    """A role that runs between ``start()`` and ``close()``; ``async with``
    does both.  Subclasses define the two."""

    async def start(self) -> object:
        raise NotImplementedError

    async def close(self) -> object:
        raise NotImplementedError

    async def __aenter__(self: R) -> R:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
