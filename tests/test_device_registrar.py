"""gbsip.Device against the gbsip Registrar over loopback UDP and TCP."""
from __future__ import annotations

import asyncio

import pytest

from gbsip.device import (
    Challenged,
    Device,
    DeviceState,
    KeepaliveAnswered,
    Refreshed,
    Registered,
    Unregistered,
)
from gbsip.errors import LocalProtocolError
from gbsip.registrar import Registrar

from device_helpers import run  # noqa: F401  (fixture)

DEVICE = "34020000001320000001"
SERVER = "34020000002000000001"


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_register_refresh_keepalive_unregister(run, transport: str) -> None:  # noqa: F811
    """GB/T 28181 §9.1 and §9.6.1 end to end: Digest with qop (nc/cnonce),
    every refresh challenged, keepalives answered, binding gone after the
    unregistration."""

    async def scenario() -> tuple[Device, bool, bool]:
        async with Registrar(SERVER, port=0, transports=(transport,), passwords="12345678",
                             min_expires=2, default_expires=2, qop="auth") as reg:
            host, port = reg.addresses[transport][:2]
            dev = Device(DEVICE, password="12345678", server=f"{transport}://{host}:{port}",
                         server_id=SERVER, expires=2, keepalive_interval=0.2, t1=0.05)
            async with dev:
                bound = reg.binding(DEVICE) is not None
                await dev.wait_for(Refreshed, timeout=5)
                assert isinstance(await dev.send_keepalive(), KeepaliveAnswered)
            gone = reg.binding(DEVICE) is None
        return dev, bound, gone

    dev, bound, gone = run(scenario())
    assert bound and gone
    history = list(dev.history)
    assert history[0] == Challenged(401, False, device_id=DEVICE)
    assert isinstance(history[1], Registered) and history[1].expires == 2
    assert history[1].clock_offset is not None  # the registrar sends a GB Date
    assert any(isinstance(e, Refreshed) for e in history)
    assert history[-1] == Unregistered(200, "OK", device_id=DEVICE)
    assert dev.state is DeviceState.UNREGISTERED
    assert dev.stats()["failures"] == 0


def test_too_brief_expiry_is_raised_to_min_expires(run) -> None:  # noqa: F811
    """RFC 3261 §10.2.8: asking for less than the registrar's minimum gets a
    423; the device asks again with Min-Expires."""

    async def scenario() -> Registered:
        async with Registrar(SERVER, port=0, transports=("udp",), passwords="12345678",
                             min_expires=5) as reg:
            host, port = reg.address[:2]
            async with Device(DEVICE, password="12345678", server=f"udp://{host}:{port}",
                              expires=1, keepalive_interval=None, t1=0.05) as dev:
                return next(e for e in dev.history if isinstance(e, Registered))

    registered = run(scenario())
    assert registered.expires == 5


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_abort_stops_at_once_without_unregistering(run, transport: str) -> None:  # noqa: F811
    """Device.abort(): the camera loses power. Nothing more is sent (the
    platform keeps the binding), events() ends, waits fail, and a closed
    device cannot start again."""

    async def scenario() -> tuple[bool, list[object], int, int]:
        async with Registrar(SERVER, port=0, transports=(transport,),
                             passwords="12345678") as reg:
            host, port = reg.addresses[transport][:2]
            dev = Device(DEVICE, password="12345678", server=f"{transport}://{host}:{port}",
                         server_id=SERVER, keepalive_interval=0.05, t1=0.05)
            await dev.start()
            seen: list[object] = []

            async def consume() -> None:
                async for ev in dev.events():
                    seen.append(ev)

            task = asyncio.ensure_future(consume())
            waiting = asyncio.ensure_future(dev.wait_for(Unregistered, timeout=5))
            await asyncio.sleep(0.02)
            dev.abort()
            await asyncio.wait_for(task, 2)  # iteration ended
            with pytest.raises(LocalProtocolError):
                await waiting
            sent = dev.stats()["requests_sent"]
            await asyncio.sleep(0.2)  # keepalives would have gone out by now
            with pytest.raises(LocalProtocolError, match="closed Device"):
                await dev.start()
            return (reg.binding(DEVICE) is not None, seen, sent,
                    dev.stats()["requests_sent"])

    still_bound, seen, sent_at_abort, sent_later = run(scenario())
    assert still_bound
    assert sent_later == sent_at_abort
    assert not any(isinstance(e, Unregistered) for e in seen)


def test_close_after_abort_is_harmless(run) -> None:  # noqa: F811
    async def scenario() -> object:
        async with Registrar(SERVER, port=0, transports=("udp",), passwords="12345678") as reg:
            host, port = reg.address[:2]
            dev = Device(DEVICE, password="12345678", server=f"udp://{host}:{port}",
                         keepalive_interval=None)
            await dev.start()
            dev.abort()
            dev.abort()
            return await dev.close()

    assert run(scenario()) is None
