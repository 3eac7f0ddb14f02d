"""TCP in C at the roles' level (issue 12): gbsip.Registrar and
gbsip.Simulator over TCP through csrc/io/tcp_pump.h, on asyncio and uvloop.

The pump itself (framing, timers, limits) is specified in
csrc/tests/io/test_tcp_pump.c; here: what a user of the roles sees —
limits in stats(), the garbage and slow-sender policy as answers and
Rejected events, answers that come later on the right connection, the
simulator's connections from several sources, its trace and events, the
file-descriptor limit named when it is the obstacle, and a few thousand
devices over loopback.
"""
from __future__ import annotations

import asyncio
import resource
import subprocess
import sys
import textwrap
from typing import Any

from gbsip.events import DeviceRegistered, Rejected
from gbsip.registrar import Refuse, Registrar

from device_helpers import run  # noqa: F401  (fixture: asyncio and uvloop)
from test_registrar_asyncio import PASSWORD, TcpUac, dev, register_request, registrar


async def _eof(uac: TcpUac, timeout: float = 5) -> bool:
    """Whether the registrar closed the connection (whatever came first)."""
    async def until_closed() -> None:
        while await uac.reader.read(65536):
            pass
    try:
        await asyncio.wait_for(until_closed(), timeout)
    except ConnectionError:
        pass
    return True


# --------------------------------------------------------------------------
# Registrar


def test_max_connections_refuses_and_counts(run) -> None:  # noqa: F811
    """max_connections=2: a third connection is closed at once and counted;
    the two within the limit register."""
    async def main() -> None:
        async with registrar(transports=("tcp",), max_connections=2) as reg:
            addr = reg.addresses["tcp"]
            a, b = await TcpUac.open(addr), await TcpUac.open(addr)
            assert (await a.register(dev(1))).status == 200
            c = await TcpUac.open(addr)
            assert await _eof(c)
            assert (await b.register(dev(2))).status == 200
            s = reg.stats()
            assert s["tcp_max_connections"] == 2 and s["tcp_connections"] == 2
            assert s["tcp_refused_max"] == 1 and s["tcp_accepted"] == 2
            for u in (a, b, c):
                await u.close()
    run(main())


def test_slow_sender_is_answered_400_and_closed(run) -> None:  # noqa: F811
    """A body trickling in (a byte every 100 ms) never completes within
    tcp_incomplete_timeout of the message's first byte: 400 with the
    reason, a Rejected event, the connection closed."""
    async def main() -> None:
        async with registrar(transports=("tcp",), tcp_incomplete_timeout=0.5) as reg:
            uac = await TcpUac.open(reg.addresses["tcp"])
            request = register_request(dev(3), uac.local, transport="TCP")
            await uac.write(request.replace(b"Content-Length: 0", b"Content-Length: 40"))

            async def trickle() -> None:
                for _ in range(40):
                    await asyncio.sleep(0.1)
                    uac.writer.write(b"x")
            sender = asyncio.ensure_future(trickle())
            answer = await uac.recv(5)
            sender.cancel()
            assert answer.status == 400 and "ncomplete" in answer.reason
            assert answer.call_id == f"cid-{dev(3)}"
            assert await _eof(uac)
            ev = await reg.wait_for(Rejected, timeout=5)
            assert ev.status == 400 and ev.transport == "tcp" and ev.source == uac.local
            assert reg.stats()["tcp_closed_incomplete"] == 1
            await uac.close()
    run(main())


def test_idle_connection_is_closed(run) -> None:  # noqa: F811
    """A connection nothing arrives on for tcp_idle_timeout is closed; the
    binding stays (it lives until it expires)."""
    async def main() -> None:
        async with registrar(transports=("tcp",), tcp_idle_timeout=0.3) as reg:
            uac = await TcpUac.open(reg.addresses["tcp"])
            assert (await uac.register(dev(4))).status == 200
            assert await _eof(uac)
            s = reg.stats()
            assert s["tcp_closed_idle"] == 1 and s["tcp_connections"] == 0
            assert dev(4) in reg.bindings
            await uac.close()
    run(main())


def test_accept_hook_over_tcp(run) -> None:  # noqa: F811
    """With an accept hook each TCP request visits Python first (the pump
    keeps the framed messages); the answer goes back on its connection."""
    async def main() -> None:
        def accept(device_id: str, request: Any) -> Refuse | None:
            return Refuse(403, "Blocked device") if device_id == dev(70) else None

        async with registrar(transports=("tcp",), accept=accept) as reg:
            uac = await TcpUac.open(reg.addresses["tcp"])
            await uac.write(register_request(dev(70), uac.local, transport="TCP"))
            refused = await uac.recv()
            assert refused.status == 403 and refused.reason == "Blocked device"
            assert (await uac.register(dev(71))).status == 200
            ev = await reg.wait_for(DeviceRegistered, dev(71), timeout=5)
            assert ev.transport == "tcp"
            await uac.close()
    run(main())


def test_password_looked_up_later_is_answered_on_the_connection(run) -> None:  # noqa: F811
    """An async password lookup: the core answers later (resume), and the
    pump sends that answer on the connection the request came on."""
    async def main() -> None:
        async def lookup(device_id: str) -> str:
            await asyncio.sleep(0.05)
            return PASSWORD

        async with registrar(transports=("tcp",), passwords=lookup) as reg:
            uac = await TcpUac.open(reg.addresses["tcp"])
            assert (await uac.register(dev(5))).status == 200
            assert reg.bindings[dev(5)].transport == "tcp"
            await uac.close()
    run(main())


# --------------------------------------------------------------------------
# File descriptors


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=60)


def test_registrar_connections_follow_the_descriptor_limit() -> None:
    """max_connections=None: as many as the descriptor limit leaves room
    for; an explicit max_connections the limit cannot hold is said in one
    logged line at start."""
    p = _python("""
        import asyncio, logging, resource
        from gbsip.registrar import Registrar
        logging.basicConfig(format="%(message)s")
        resource.setrlimit(resource.RLIMIT_NOFILE, (300, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        async def main(limit):
            async with Registrar("34020000002000000001", port=0, transports=("tcp",),
                                 max_connections=limit) as reg:
                print(reg.stats()["tcp_max_connections"], flush=True)
        asyncio.run(main(None))
        asyncio.run(main(5000))
    """)
    assert p.returncode == 0, p.stderr
    derived, explicit = map(int, p.stdout.split())
    assert 100 < derived < 300 and explicit == 5000
    assert "TCP with max_connections=5000 needs about" in p.stderr
    assert "but the limit is 300" in p.stderr
