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

import pytest

from gbsip.events import DeviceRegistered, Rejected
from gbsip.events import Registered as DeviceSideRegistered
from gbsip.registrar import Refuse, Registrar
from gbsip.simulator import Simulator

from device_helpers import run  # noqa: F401  (fixture: asyncio and uvloop)
from test_registrar_asyncio import PASSWORD, SERVER_ID, TcpUac, dev, register_request, registrar


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
# Simulator


def test_simulator_sources_trace_and_events(run) -> None:  # noqa: F811
    """Device i connects from local_hosts[i % n]; the traced device's TCP
    messages reach on_trace; on_events gets every device's Registered."""
    async def main() -> tuple[dict[str, Any], set[str], list[tuple[str, bytes]], int]:
        traced: list[tuple[str, bytes]] = []
        registered: list[Any] = []
        sources: set[str] = set()

        def on_registrar_event(ev: Any) -> None:
            if isinstance(ev, DeviceRegistered) and ev.source:
                sources.add(ev.source[0])

        def on_events(batch: list[Any]) -> None:
            registered.extend(e for e in batch if isinstance(e, DeviceSideRegistered))

        async with Registrar(SERVER_ID, port=0, transports=("tcp",), passwords=PASSWORD,
                             keepalive_events=False, on_event=on_registrar_event) as reg:
            host, port = reg.addresses["tcp"]
            async with Simulator(40, server=f"tcp://{host}:{port}", rate=400, duration=1,
                                 keepalive_interval=0.3, local_hosts=["127.0.0.1", "127.0.0.2"],
                                 trace="34020000001320000006",
                                 on_trace=lambda d, b: traced.append((d, b)),
                                 on_events=on_events) as sim:
                report = await sim.run()
        return report, sources, traced, len(registered)

    report, sources, traced, registered = run(main())
    assert report["ok"] and report["result"]["registered"] == 40
    assert sources == {"127.0.0.1", "127.0.0.2"}
    assert registered == 40
    sent = [b for d, b in traced if d == "send"]
    received = [b for d, b in traced if d == "recv"]
    assert sent[0].startswith(b"REGISTER ") and b"Via: SIP/2.0/TCP 127.0.0.2:" in sent[0]
    assert any(b.startswith(b"SIP/2.0 200") for b in received)
    assert any(b.startswith(b"MESSAGE ") for b in sent)  # keepalives on the same connection
    assert report["messages"]["tcp_connections_lost"] == 0


def test_simulator_reconnects_after_the_platform_closes(run) -> None:  # noqa: F811
    """The registrar closes idle connections; the devices' unregistrations
    later open new ones (the next message reconnects) and are answered."""
    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        async with Registrar(SERVER_ID, port=0, transports=("tcp",), passwords=PASSWORD,
                             keepalive_events=False, tcp_idle_timeout=0.3) as reg:
            host, port = reg.addresses["tcp"]
            async with Simulator(20, server=f"tcp://{host}:{port}", rate=200, duration=1.5,
                                 keepalive_interval=None) as sim:
                report = await sim.run()
                tcp = sim._fleet.tcp_stats()
        return report, tcp

    report, tcp = run(main())
    assert report["ok"]
    assert report["unregistration"]["unregistered"] == 20
    assert report["unregistration"]["by_reason"] == {}
    assert tcp["lost"] == 20 and tcp["opened"] == 40


def test_simulator_spreads_loopback_connections_over_sources() -> None:
    """Against a loopback server the devices connect from one 127.0.0.x per
    4,000 of them, so that no source has to search a crowded port range;
    elsewhere the kernel picks the source."""
    def sources(devices: int, server: str) -> list[str]:
        sim = Simulator(devices, server=server)
        ip = server.split("//")[1].rsplit(":", 1)[0].strip("[]")
        return sim._tcp_sources(ip, ":" in ip)

    assert sources(4000, "tcp://127.0.0.1:5060") == ["127.0.0.1"]
    assert sources(19000, "tcp://127.0.0.1:5060") == [f"127.0.0.{k}" for k in range(1, 6)]
    assert len(sources(100_000, "tcp://127.0.0.1:5060")) == 25
    assert sources(10, "tcp://[::1]:5060") == ["::1"]
    assert sources(10, "tcp://192.0.2.10:5060") == ["0.0.0.0"]


# --------------------------------------------------------------------------
# File descriptors


def _python(code: str) -> subprocess.CompletedProcess[str]:
    # -P: never the source tree's unbuilt gbsip/ from the working directory
    return subprocess.run([sys.executable, "-P", "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=60)


def test_descriptor_limit_is_named_when_it_is_the_obstacle() -> None:
    """500 TCP devices under a soft limit of 200: start() says how many
    descriptors are needed, the limits and how to raise them, in one line;
    with raise_fd_limit the soft limit goes up to what is needed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1000:
        pytest.skip(f"the hard limit ({hard}) is too low to raise to")
    p = _python("""
        import asyncio, resource
        from gbsip.simulator import Simulator, SimulatorError
        resource.setrlimit(resource.RLIMIT_NOFILE, (200, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        async def main(raise_it):
            sim = Simulator(500, server="tcp://127.0.0.1:9", raise_fd_limit=raise_it)
            try:
                await sim.start()
                print("started", resource.getrlimit(resource.RLIMIT_NOFILE)[0])
            except SimulatorError as exc:
                print("error", exc)
            await sim.close()
        asyncio.run(main(False))
        asyncio.run(main(True))
    """)
    assert p.returncode == 0, p.stderr
    first, second = p.stdout.splitlines()
    assert first.startswith("error 500 TCP devices needs about ")
    assert "but the limit is 200 (hard limit" in first and "ulimit -n" in first
    assert second.startswith("started ") and int(second.split()[1]) >= 500


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


def test_serve_max_connections_flag() -> None:
    """gbsip serve --max-connections 1: a second connection is refused and
    counted in the stats printed at exit."""
    import json
    import os
    import socket
    import tempfile
    import time

    import gbsip
    from device_helpers import free_port

    port = free_port()
    home = os.path.dirname(os.path.dirname(os.path.abspath(gbsip.__file__)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "gbsip", "serve", "--port", str(port), "--transport", "tcp",
         "--max-connections", "1", "--duration", "3", "--json", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tempfile.gettempdir(),
        env=dict(os.environ, PYTHONPATH=home), stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["event"] == "Listening"
        first = socket.create_connection(("127.0.0.1", port), timeout=5)
        time.sleep(0.3)
        second = socket.create_connection(("127.0.0.1", port), timeout=5)
        assert second.recv(100) == b""  # closed at once: over the limit
        out, err = proc.communicate(timeout=20)
        first.close()
        second.close()
    finally:
        proc.kill()
        proc.wait()
    stats = json.loads(out.splitlines()[-1])["stats"]
    assert stats["tcp_max_connections"] == 1 and stats["tcp_refused_max"] == 1, err


# --------------------------------------------------------------------------
# A few thousand devices


@pytest.mark.timing
def test_three_thousand_tcp_devices(run) -> None:  # noqa: F811
    """3000 devices, each on its own connection from several 127.0.0.x
    sources, against the registrar in the same process (6000 descriptors):
    all register, keep alive on their connections and unregister."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 6500:
        pytest.skip(f"needs about 6500 file descriptors, the hard limit is {hard}")
    if soft != resource.RLIM_INFINITY and soft < 6500:  # both roles in this process
        resource.setrlimit(resource.RLIMIT_NOFILE, (6500, hard))

    async def main() -> tuple[dict[str, Any], dict[str, int]]:
        async with Registrar(SERVER_ID, port=0, transports=("tcp",), passwords=PASSWORD,
                             keepalive_events=False, max_connections=3100) as reg:
            host, port = reg.addresses["tcp"]
            async with Simulator(3000, server=f"tcp://{host}:{port}", rate=3000, duration=3,
                                 keepalive_interval=1.0,
                                 local_hosts=[f"127.0.0.{k}" for k in range(1, 5)]) as sim:
                report = await sim.run()
            return report, reg.stats()

    try:
        report, stats = run(main())
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert report["ok"] and report["result"]["registered"] == 3000
    assert report["totals"]["failures"] == 0
    assert report["totals"]["keepalives_answered"] >= 3000
    assert report["unregistration"]["unregistered"] == 3000
    assert stats["tcp_accepted"] == 3000 and stats["tcp_refused_max"] == 0
    assert stats["tcp_open_peak"] == 3000
