"""Helpers shared by the device (UAC) tests: both event loops, free ports,
replies built with the gbsip parser."""
from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

import gbsip

T = TypeVar("T")
Runner = Callable[[Coroutine[Any, Any, T]], T]

LOOPS = ["asyncio", "uvloop"]


@pytest.fixture(params=LOOPS)
def run(request: pytest.FixtureRequest) -> Iterator[Runner[Any]]:
    """Run a coroutine on a fresh loop of each kind, in debug mode; any
    exception the loop's handler sees fails the test (uvloop's own tests do
    the same)."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop
    errors: list[dict[str, Any]] = []

    def runner(coro: Coroutine[Any, Any, T]) -> T:
        with asyncio.Runner(loop_factory=factory, debug=True) as r:
            r.get_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
            result = r.run(coro)
        assert not errors, errors
        return result

    yield runner


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (at the time asked)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


def reply(request: bytes, status: int, headers: list[tuple[str, str]] | None = None) -> bytes:
    """The platform's answer to one of the device's requests."""
    req = gbsip.parse(request)
    assert isinstance(req, gbsip.Request)
    return bytes(req.reply(status, to_tag="platform", headers=headers or []))
