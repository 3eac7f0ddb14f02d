"""gbsip.Device against the gbsip Registrar over loopback UDP and TCP."""
from __future__ import annotations

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
    assert history[0] == Challenged(401, False)
    assert isinstance(history[1], Registered) and history[1].expires == 2
    assert history[1].clock_offset is not None  # the registrar sends a GB Date
    assert any(isinstance(e, Refreshed) for e in history)
    assert history[-1] == Unregistered(200, "OK")
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
