"""The asyncio ``gbsip.registrar.Registrar`` over real loopback sockets.

Each test runs on the standard asyncio loop and on uvloop, with loop debug
on; any exception the loop reports (an exception in a callback, a task that
died unobserved) fails the test.  Devices are a small raw-socket UAC written
here (requests built with :class:`gbsip.Request`, Digest from hashlib), so
nothing depends on gbsip's own Device role.
"""
from __future__ import annotations

import asyncio
import hashlib
import itertools
import re
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

import gbsip
from gbsip.errors import ConfigurationError, LocalProtocolError
from gbsip.events import (
    AuthFailed,
    DeviceRedirected,
    DeviceRefreshed,
    DeviceRegistered,
    DeviceUnregistered,
    Expired,
    Keepalive,
    Offline,
    Online,
    Rejected,
)
from gbsip.registrar import HA1, Redirect, Refuse, Registrar, RegistrarError

SERVER_ID = "34020000002000000001"
REALM = "3402000000"
RURI = f"sip:{SERVER_ID}@{REALM}"
PASSWORD = "12345678"
GB_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}$")


def dev(n: int) -> str:
    return f"340200000013200{n:05d}"


# --------------------------------------------------------------------------
# Loops: asyncio and uvloop, debug on, loop errors fail the test


def _loop_factories() -> list[Any]:
    params = [pytest.param(asyncio.new_event_loop, id="asyncio")]
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in requirements-test.txt
        params.append(pytest.param(None, id="uvloop",
                                   marks=pytest.mark.skip(reason="uvloop not installed")))
    else:
        params.append(pytest.param(uvloop.new_event_loop, id="uvloop"))
    return params


Runner = Callable[[Callable[[], Awaitable[None]]], None]


@pytest.fixture(params=_loop_factories())
def run(request: pytest.FixtureRequest) -> Iterator[Runner]:
    """run(async_fn): run it to completion on a fresh debug loop of the param's kind."""
    factory = request.param
    loop = factory()
    loop.set_debug(True)
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))

    def runner(fn: Callable[[], Awaitable[None]]) -> None:
        loop.run_until_complete(asyncio.wait_for(fn(), 30))  # type: ignore[arg-type]

    try:
        yield runner
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
    assert errors == [], f"the event loop reported errors: {errors}"


def has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not has_ipv6(), reason="no IPv6 loopback (::1) on this machine")


# --------------------------------------------------------------------------
# A small UAC


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def authorization(user: str, password: str, challenge: str, uri: str = RURI) -> str:
    """Answer a WWW-Authenticate value (RFC 2617, MD5, qop=auth when offered)."""
    params = {}
    for part in challenge[len("Digest "):].split(","):
        name, _, value = part.strip().partition("=")
        params[name.lower()] = value.strip('"')
    realm, nonce = params["realm"], params["nonce"]
    ha1 = md5(f"{user}:{realm}:{password}")
    ha2 = md5(f"REGISTER:{uri}")
    value = f'Digest username="{user}",realm="{realm}",nonce="{nonce}",uri="{uri}",'
    if params.get("qop") == "auth":
        resp = md5(f"{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}")
        return value + f'response="{resp}",algorithm=MD5,qop=auth,nc=00000001,cnonce="c0ffee"'
    return value + f'response="{md5(f"{ha1}:{nonce}:{ha2}")}",algorithm=MD5'


_branch = itertools.count(1)


def register_request(device: str, local: tuple[str, int], *, transport: str = "UDP",
                     call_id: str | None = None, cseq: int = 1, expires: int = 3600,
                     auth: str | None = None) -> bytes:
    host = f"[{local[0]}]" if ":" in local[0] else local[0]
    headers = [
        ("Via", f"SIP/2.0/{transport} {host}:{local[1]};rport;branch=z9hG4bKa{next(_branch)}"),
        ("From", f"<sip:{device}@{REALM}>;tag=t{device[-5:]}"),
        ("To", f"<sip:{device}@{REALM}>"),
        ("Call-ID", call_id or f"cid-{device}"),
        ("CSeq", f"{cseq} REGISTER"),
        ("Contact", f"<sip:{device}@{host}:{local[1]}>"),
        ("Max-Forwards", "70"),
        ("User-Agent", "test-uac/1"),
        ("Expires", str(expires)),
    ]
    if auth:
        headers.append(("Authorization", auth))
    return bytes(gbsip.Request("REGISTER", RURI, headers))


def keepalive_request(device: str, local: tuple[str, int], sn: int, *,
                      transport: str = "UDP") -> bytes:
    host = f"[{local[0]}]" if ":" in local[0] else local[0]
    body = (f'<?xml version="1.0" encoding="GB2312"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>'
            f"\r\n<SN>{sn}</SN>\r\n<DeviceID>{device}</DeviceID>\r\n<Status>OK</Status>\r\n"
            f"</Notify>\r\n").encode()
    headers = [
        ("Via", f"SIP/2.0/{transport} {host}:{local[1]};rport;branch=z9hG4bKk{next(_branch)}"),
        ("From", f"<sip:{device}@{REALM}>;tag=k{device[-5:]}"),
        ("To", f"<sip:{SERVER_ID}@{REALM}>"),
        ("Call-ID", f"ka-{device}-{sn}"),
        ("CSeq", f"{sn} MESSAGE"),
        ("Max-Forwards", "70"),
        ("Content-Type", "Application/MANSCDP+xml"),
    ]
    return bytes(gbsip.Request("MESSAGE", RURI, headers, body))


class _Collect(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait(data)


class UdpUac:
    """One UDP socket that sends requests and reads parsed answers."""

    def __init__(self, transport: asyncio.DatagramTransport, proto: _Collect,
                 server: tuple[str, int]) -> None:
        self.transport, self.proto, self.server = transport, proto, server
        self.local: tuple[str, int] = transport.get_extra_info("sockname")[:2]

    @classmethod
    async def open(cls, server: tuple[str, int]) -> UdpUac:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
        transport, proto = await loop.create_datagram_endpoint(
            _Collect, local_addr=(server[0], 0), family=family)
        return cls(transport, proto, server)  # type: ignore[arg-type]

    def send(self, data: bytes) -> None:
        self.transport.sendto(data, self.server)

    async def recv(self, timeout: float = 5) -> gbsip.Response:
        msg = gbsip.parse(await asyncio.wait_for(self.proto.queue.get(), timeout))
        assert isinstance(msg, gbsip.Response)
        return msg

    async def nothing(self, wait: float = 0.3) -> bool:
        """True when no answer arrives within `wait` seconds."""
        try:
            await asyncio.wait_for(self.proto.queue.get(), wait)
        except asyncio.TimeoutError:
            return True
        return False

    async def ask(self, data: bytes) -> gbsip.Response:
        self.send(data)
        return await self.recv()

    async def register(self, device: str, password: str = PASSWORD, expires: int = 3600,
                       cseq: int = 1) -> gbsip.Response:
        """GB/T 28181 §9.1.2.1: REGISTER, 401, REGISTER with Digest."""
        first = await self.ask(register_request(device, self.local, cseq=cseq, expires=expires))
        if first.status != 401:
            return first
        auth = authorization(device, password, first.headers["WWW-Authenticate"])
        return await self.ask(register_request(device, self.local, cseq=cseq + 1,
                                               expires=expires, auth=auth))

    def close(self) -> None:
        self.transport.close()


class TcpUac:
    """One TCP connection; answers are framed by Content-Length."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.local: tuple[str, int] = writer.get_extra_info("sockname")[:2]
        self.buf = bytearray()

    @classmethod
    async def open(cls, server: tuple[str, int]) -> TcpUac:
        reader, writer = await asyncio.open_connection(*server)
        return cls(reader, writer)

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self, timeout: float = 5) -> gbsip.Response:
        async def read() -> gbsip.Response:
            while True:
                framed = gbsip.frame(self.buf)
                if framed is not None:
                    skip, length = framed
                    data = bytes(self.buf[skip:skip + length])
                    del self.buf[:skip + length]
                    msg = gbsip.parse(data)
                    assert isinstance(msg, gbsip.Response)
                    return msg
                chunk = await self.reader.read(65536)
                assert chunk, "connection closed by the registrar"
                self.buf += chunk
        return await asyncio.wait_for(read(), timeout)

    async def register(self, device: str, password: str = PASSWORD) -> gbsip.Response:
        await self.write(register_request(device, self.local, transport="TCP"))
        first = await self.recv()
        assert first.status == 401
        auth = authorization(device, password, first.headers["WWW-Authenticate"])
        await self.write(register_request(device, self.local, transport="TCP", cseq=2, auth=auth))
        return await self.recv()

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass


def registrar(host: str = "127.0.0.1", **kw: Any) -> Registrar:
    kw.setdefault("passwords", PASSWORD)
    return Registrar(SERVER_ID, host=host, port=0, **kw)


# --------------------------------------------------------------------------
# UDP and TCP, IPv4 and IPv6


@pytest.mark.parametrize("host", ["127.0.0.1", pytest.param("::1", marks=needs_ipv6)])
def test_udp_registration(run: Runner, host: str) -> None:
    """GB/T 28181 §9.1.2.1 over UDP: 401, then 200 with the GB Date, a Registered event, a binding."""
    async def main() -> None:
        async with registrar(host) as reg:
            assert reg.address[1] != 0  # port 0 picked a free port
            uac = await UdpUac.open(reg.addresses["udp"])
            ok = await uac.register(dev(1))
            assert ok.status == 200 and GB_DATE.match(ok.headers["Date"])
            assert ok.headers["Expires"] == "3600"
            ev = await reg.wait_for(DeviceRegistered, timeout=5)
            assert isinstance(ev, DeviceRegistered)
            assert ev.device_id == dev(1) and ev.transport == "udp"
            assert ev.source == uac.local and ev.expires == 3600 and ev.user_agent == "test-uac/1"
            binding = reg.bindings[dev(1)]
            assert binding.source == uac.local and binding.online and binding.transport == "udp"
            assert len(reg) == 1
            uac.close()
    run(main)


@pytest.mark.parametrize("host", ["127.0.0.1", pytest.param("::1", marks=needs_ipv6)])
def test_tcp_registration(run: Runner, host: str) -> None:
    """GB/T 28181-2022 §9.1.1: registration over TCP, answers on the same connection."""
    async def main() -> None:
        async with registrar(host, transports=("tcp",)) as reg:
            uac = await TcpUac.open(reg.addresses["tcp"])
            ok = await uac.register(dev(2))
            assert ok.status == 200 and GB_DATE.match(ok.headers["Date"])
            ev = await reg.wait_for(DeviceRegistered, timeout=5)
            assert ev.transport == "tcp" and ev.source == uac.local
            assert reg.bindings[dev(2)].transport == "tcp"
            await uac.close()
    run(main)


def test_tcp_several_messages_in_one_write(run: Runner) -> None:
    """RFC 3261 §18.3: a stream carries back-to-back messages, framed by Content-Length."""
    async def main() -> None:
        async with registrar(transports=("tcp",)) as reg:
            uac = await TcpUac.open(reg.addresses["tcp"])
            burst = b"".join(register_request(dev(10 + i), uac.local, transport="TCP")
                             for i in range(3))
            await uac.write(burst)
            answers = [await uac.recv() for _ in range(3)]
            assert [a.status for a in answers] == [401, 401, 401]
            assert [a.to.uri for a in answers] == [  # type: ignore[union-attr]
                f"sip:{dev(10 + i)}@{REALM}" for i in range(3)]
            await uac.close()
    run(main)


def test_tcp_message_split_across_writes_and_crlf_pings(run: Runner) -> None:
    """RFC 5626 §3.5.1 / RFC 3261 §18.3: CRLF keep-alives are skipped; partial reads are reassembled."""
    async def main() -> None:
        async with registrar(transports=("tcp",)) as reg:
            uac = await TcpUac.open(reg.addresses["tcp"])
            await uac.write(b"\r\n\r\n")
            data = register_request(dev(20), uac.local, transport="TCP")
            for i in range(0, len(data), 37):
                await uac.write(data[i:i + 37])
                await asyncio.sleep(0.002)
            first = await uac.recv()
            assert first.status == 401
            await uac.write(b"\r\n\r\n\r\n\r\n")
            auth = authorization(dev(20), PASSWORD, first.headers["WWW-Authenticate"])
            await uac.write(register_request(dev(20), uac.local, transport="TCP", cseq=2,
                                             auth=auth))
            assert (await uac.recv()).status == 200
            await uac.close()
    run(main)


def test_udp_and_tcp_on_the_same_port(run: Runner) -> None:
    """Both transports listen on one port number (GB platforms use 5060 for both)."""
    async def main() -> None:
        async with registrar() as reg:
            assert reg.addresses["udp"][1] == reg.addresses["tcp"][1]
            udp = await UdpUac.open(reg.addresses["udp"])
            tcp = await TcpUac.open(reg.addresses["tcp"])
            assert (await udp.register(dev(30))).status == 200
            assert (await tcp.register(dev(31))).status == 200
            assert set(reg.bindings) == {dev(30), dev(31)}
            udp.close()
            await tcp.close()
    run(main)


# --------------------------------------------------------------------------
# Events


def test_unregister_and_expiry_events(run: Runner) -> None:
    """GB/T 28181 §9.1.2.2 and RFC 3261 §10.3: Expires: 0 gives Unregistered; a lapse gives Expired."""
    async def main() -> None:
        async with registrar(min_expires=1) as reg:
            uac = await UdpUac.open(reg.address)
            assert (await uac.register(dev(40))).status == 200
            assert (await uac.register(dev(40), expires=0, cseq=3)).status == 200
            ev = await reg.wait_for(DeviceUnregistered, timeout=5)
            assert ev.device_id == dev(40) and dev(40) not in reg.bindings
            assert (await uac.register(dev(41), expires=1)).status == 200
            ev = await reg.wait_for(Expired, dev(41), timeout=5)
            assert ev.device_id == dev(41) and dev(41) not in reg.bindings
            uac.close()
    run(main)


def test_refresh_event(run: Runner) -> None:
    """A second registration on the same Call-ID is a Refreshed event, not Registered."""
    async def main() -> None:
        async with registrar() as reg:
            uac = await UdpUac.open(reg.address)
            await uac.register(dev(42))
            await uac.register(dev(42), cseq=3)
            ev = await reg.wait_for(DeviceRefreshed, timeout=5)
            assert ev.device_id == dev(42)
            uac.close()
    run(main)


def test_auth_failed_event(run: Runner) -> None:
    """GB/T 28181 §9.1.2.1: a wrong password is answered 403 and reported as AuthFailed."""
    async def main() -> None:
        async with registrar() as reg:
            uac = await UdpUac.open(reg.address)
            ans = await uac.register(dev(43), password="nope")
            assert ans.status == 403
            ev = await reg.wait_for(AuthFailed, timeout=5)
            assert isinstance(ev, AuthFailed) and ev.status == 403 and ev.device_id == dev(43)
            uac.close()
    run(main)


# --------------------------------------------------------------------------
# Passwords


def test_password_dict_and_ha1(run: Runner) -> None:
    """Per-device passwords and a stored HA1 (RFC 2617 §3.2.2.2); unknown devices get 403."""
    async def main() -> None:
        ha1 = md5(f"{dev(51)}:{REALM}:pw51")
        async with registrar(passwords={dev(50): "pw50", dev(51): HA1(ha1)}) as reg:
            uac = await UdpUac.open(reg.address)
            assert (await uac.register(dev(50), "pw50")).status == 200
            assert (await uac.register(dev(51), "pw51")).status == 200
            assert (await uac.register(dev(52), "pw50")).status == 403
            uac.close()
    run(main)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_password_callback(run: Runner, kind: str) -> None:
    """passwords may be a callable, sync or async, returning a password, an HA1 or None."""
    asked: list[str] = []

    def lookup(device_id: str) -> str | HA1 | None:
        asked.append(device_id)
        if device_id == dev(60):
            return "cb-secret"
        if device_id == dev(61):
            return HA1(md5(f"{dev(61)}:{REALM}:cb-ha1"))
        return None

    async def alookup(device_id: str) -> str | HA1 | None:
        await asyncio.sleep(0.01)
        return lookup(device_id)

    async def main() -> None:
        async with registrar(passwords=lookup if kind == "sync" else alookup) as reg:
            uac = await UdpUac.open(reg.address)
            assert (await uac.register(dev(60), "cb-secret")).status == 200
            assert (await uac.register(dev(61), "cb-ha1")).status == 200
            assert (await uac.register(dev(62), "whatever")).status == 403
            assert asked == [dev(60), dev(61), dev(62)]
            uac.close()
    run(main)


def test_password_callback_that_raises_refuses_the_device(run: Runner) -> None:
    """A failing password lookup refuses the device (403, AuthFailed) and the registrar goes on."""
    def lookup(device_id: str) -> str:
        raise KeyError(device_id)

    async def main() -> None:
        async with registrar(passwords=lookup) as reg:
            uac = await UdpUac.open(reg.address)
            assert (await uac.register(dev(63))).status == 403
            ev = await reg.wait_for(AuthFailed, timeout=5)
            assert "lookup failed" in ev.reason  # type: ignore[attr-defined]
            uac.close()
    run(main)


# --------------------------------------------------------------------------
# Policy hooks


def test_accept_hook_refuse(run: Runner) -> None:
    """accept(device_id, request) returning Refuse answers with that status; others register."""
    seen: list[str] = []

    def accept(device_id: str, request: gbsip.Request) -> Refuse | None:
        seen.append(device_id)
        assert request.method == "REGISTER"
        return Refuse(403, "Blocked device") if device_id == dev(70) else None

    async def main() -> None:
        async with registrar(accept=accept) as reg:
            uac = await UdpUac.open(reg.address)
            ans = await uac.ask(register_request(dev(70), uac.local))
            assert ans.status == 403 and ans.reason == "Blocked device"
            ev = await reg.wait_for(Rejected, timeout=5)
            assert ev.device_id == dev(70) and ev.status == 403  # type: ignore[attr-defined]
            assert (await uac.register(dev(71))).status == 200
            assert dev(70) in seen and dev(71) in seen
            uac.close()
    run(main)


def test_accept_hook_answers_go_to_the_packet_source_not_the_via(run: Runner) -> None:
    """Issue 14 (reflection): a Refuse from the accept hook goes to where the
    request came from, as every other answer does, never to the address a
    (forged) Via names."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as elsewhere:
        elsewhere.bind(("127.0.0.1", 0))
        elsewhere.setblocking(False)

        async def main() -> None:
            async with registrar(accept=lambda d, r: Refuse(403, "Blocked device")) as reg:
                uac = await UdpUac.open(reg.address)
                forged = register_request(dev(73), elsewhere.getsockname())
                ans = await uac.ask(forged)
                assert ans.status == 403
                uac.close()
        run(main)
        with pytest.raises(BlockingIOError):
            elsewhere.recv(65536)  # nothing was aimed at the Via's address


def test_accept_hook_redirect(run: Runner) -> None:
    """GB/T 28181-2022 §9.1.2.3: accept returning Redirect answers 302 with the target Contact."""
    target = "sip:34020000002000000002@127.0.0.1:5070"

    async def main() -> None:
        async with registrar(accept=lambda d, r: Redirect(target)) as reg:
            uac = await UdpUac.open(reg.address)
            ans = await uac.ask(register_request(dev(72), uac.local))
            assert ans.status == 302 and ans.contacts[0].uri == target
            ev = await reg.wait_for(DeviceRedirected, timeout=5)
            assert ev.target == target  # type: ignore[attr-defined]
            assert len(reg) == 0
            uac.close()
    run(main)


# --------------------------------------------------------------------------
# Keepalive


def test_keepalive_online_offline(run: Runner) -> None:
    """GB/T 28181 §9.6.1: keepalives answered 200; missed ones -> Offline; the next -> Online."""
    async def main() -> None:
        async with registrar(keepalive_interval=0.2, keepalive_timeout_count=2) as reg:
            uac = await UdpUac.open(reg.address)
            assert (await uac.register(dev(80))).status == 200
            ans = await uac.ask(keepalive_request(dev(80), uac.local, 1))
            assert ans.status == 200
            ka = await reg.wait_for(Keepalive, timeout=5)
            assert ka.sn == 1 and ka.status == "OK"  # type: ignore[attr-defined]
            off = await reg.wait_for(Offline, dev(80), timeout=5)
            assert off.device_id == dev(80) and not reg.bindings[dev(80)].online
            assert (await uac.ask(keepalive_request(dev(80), uac.local, 2))).status == 200
            on = await reg.wait_for(Online, dev(80), timeout=5)
            assert on.device_id == dev(80) and reg.bindings[dev(80)].online
            assert reg.bindings[dev(80)].last_keepalive is not None
            uac.close()
    run(main)


def test_keepalive_over_tcp(run: Runner) -> None:
    """GB/T 28181-2022 §9.1.1 f: keepalives travel on the registration's TCP connection."""
    async def main() -> None:
        async with registrar(transports=("tcp",)) as reg:
            uac = await TcpUac.open(reg.addresses["tcp"])
            assert (await uac.register(dev(81))).status == 200
            await uac.write(keepalive_request(dev(81), uac.local, 7, transport="TCP"))
            assert (await uac.recv()).status == 200
            ka = await reg.wait_for(Keepalive, timeout=5)
            assert ka.sn == 7 and ka.transport == "tcp"  # type: ignore[attr-defined]
            await uac.close()
    run(main)


# --------------------------------------------------------------------------
# Bad input while serving


def test_bad_input_over_udp_while_a_device_registers(run: Runner) -> None:
    """Malformed datagrams get their 4xx or are dropped; a valid device registers meanwhile."""
    async def main() -> None:
        async with registrar() as reg:
            good = await UdpUac.open(reg.address)
            bad = await UdpUac.open(reg.address)
            first = await good.ask(register_request(dev(90), good.local))
            assert first.status == 401
            for junk in (b"", b"\x00" * 100, b"hello\r\n\r\n", b"SIP/2.0 200 OK\r\n\r\n",
                         b"REGISTER sip:x SIP/2.0\r\n\r\n", bytes(range(256)) * 8):
                bad.send(junk)
            malformed = register_request(dev(91), bad.local).replace(b"To: <sip:", b"To: <sip:a b")
            bad.send(malformed)
            auth = authorization(dev(90), PASSWORD, first.headers["WWW-Authenticate"])
            ok = await good.ask(register_request(dev(90), good.local, cseq=2, auth=auth))
            assert ok.status == 200
            answer = await bad.recv()
            assert answer.status == 400 and "To" in answer.reason
            assert await bad.nothing(0.3)  # the garbage got nothing
            stats = reg.stats()
            assert stats["dropped_unparseable"] >= 5 and stats["registrations"] == 1
            good.close()
            bad.close()
    run(main)


def test_garbage_on_tcp_closes_only_that_connection(run: Runner) -> None:
    """A stream cannot resynchronise after garbage: that connection goes, others keep serving."""
    async def main() -> None:
        async with registrar(transports=("tcp",)) as reg:
            good = await TcpUac.open(reg.addresses["tcp"])
            bad = await TcpUac.open(reg.addresses["tcp"])
            await bad.write(b"THIS IS NOT SIP\r\nat all\r\n\r\n")
            assert await asyncio.wait_for(bad.reader.read(), 5) == b""  # closed
            ev = await reg.wait_for(Rejected, timeout=5)
            assert ev.transport == "tcp"
            assert (await good.register(dev(92))).status == 200
            await good.close()
            await bad.close()
    run(main)


# --------------------------------------------------------------------------
# Lifetime and errors


@pytest.mark.parametrize("transports", [("udp",), ("tcp",)])
def test_port_in_use_raises_registrar_error(run: Runner, transports: tuple[str, ...]) -> None:
    """Starting on a port another socket holds raises RegistrarError naming the port."""
    async def main() -> None:
        kind = socket.SOCK_DGRAM if transports == ("udp",) else socket.SOCK_STREAM
        with socket.socket(socket.AF_INET, kind) as holder:
            holder.bind(("127.0.0.1", 0))
            if kind == socket.SOCK_STREAM:
                holder.listen()
            port = holder.getsockname()[1]
            reg = Registrar(SERVER_ID, host="127.0.0.1", port=port, transports=transports,
                            passwords=PASSWORD)
            with pytest.raises(RegistrarError, match=str(port)):
                await reg.start()
            await reg.close()
    run(main)


def test_bad_options_raise_configuration_error() -> None:
    """Misuse is reported at construction: unknown transport, no transport,
    bad qop — a ConfigurationError, which is a LocalProtocolError and a ValueError."""
    with pytest.raises(ConfigurationError, match="sctp"):
        Registrar(SERVER_ID, transports=("sctp",))
    with pytest.raises(ConfigurationError, match="transport"):
        Registrar(SERVER_ID, transports=())
    with pytest.raises(ConfigurationError, match="qop"):
        Registrar(SERVER_ID, qop="auth-int")
    assert issubclass(ConfigurationError, LocalProtocolError)
    assert issubclass(ConfigurationError, ValueError)


def test_close_is_idempotent_and_ends_event_iteration(run: Runner) -> None:
    """close() twice is harmless; an events() iterator ends when the registrar closes."""
    async def main() -> None:
        reg = registrar()
        await reg.start()
        seen: list[Any] = []

        async def consume() -> None:
            async for ev in reg.events():
                seen.append(ev)

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.05)
        await reg.close()
        await reg.close()
        await asyncio.wait_for(task, 5)
        assert seen == []
    run(main)


def test_start_after_close_is_refused_and_nothing_listens(run: Runner) -> None:
    """Issue 14: start() on a closed Registrar raises LocalProtocolError and
    binds nothing (the port stays free); a second close() is harmless."""
    async def main() -> None:
        reg = registrar(transports=("udp",))
        await reg.start()
        port = reg.address[1]
        await reg.close()
        with pytest.raises(LocalProtocolError, match="closed Registrar cannot start"):
            await reg.start()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", port))  # free: nobody re-bound it
        await reg.close()
    run(main)


def test_close_while_starting_leaves_nothing_listening(run: Runner, tmp_path: Any) -> None:
    """Issue 14: close() while start() still reads the binding store wins:
    start() raises LocalProtocolError and no socket is left bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def main() -> None:
        reg = Registrar(SERVER_ID, host="127.0.0.1", port=port, passwords=PASSWORD,
                        transports=("udp",), store=str(tmp_path / "bindings.db"))
        starting = asyncio.ensure_future(reg.start())
        await asyncio.sleep(0)
        await reg.close()
        with pytest.raises(LocalProtocolError, match="closed while it was starting"):
            await starting
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
            again.bind(("127.0.0.1", port))  # free: the closed Registrar holds nothing
        await reg.close()
    run(main)


def test_start_twice_is_refused(run: Runner) -> None:
    """A running Registrar cannot start again (it would bind a second socket)."""
    async def main() -> None:
        async with registrar(transports=("udp",)) as reg:
            with pytest.raises(LocalProtocolError, match="already running"):
                await reg.start()
    run(main)


def test_listeners_see_every_event_without_consuming_it(run: Runner) -> None:
    """on_event and add_listener() see each event as it happens; events()
    and wait_for() still get it; the function add_listener returns removes it."""
    async def main() -> None:
        early: list[Any] = []
        later: list[Any] = []
        reg = registrar(transports=("udp",), on_event=early.append)
        async with reg:
            remove = reg.add_listener(later.append)
            uac = await UdpUac.open(reg.address)
            assert (await uac.register(dev(95))).status == 200
            ev = await reg.wait_for(DeviceRegistered, dev(95), timeout=5)
            assert ev in early and ev in later
            remove()
            assert (await uac.register(dev(96))).status == 200
            ev2 = await reg.wait_for(DeviceRegistered, dev(96), timeout=5)
            assert ev2 in early and ev2 not in later
            uac.close()
    run(main)


def test_event_times_and_binding_times_are_unix_time(run: Runner) -> None:
    """Issue 15: what a user sees is on one clock: event.time and the
    binding's registered_at/expires_at are Unix time, like Device.expires_at."""
    async def main() -> None:
        async with registrar(transports=("udp",)) as reg:
            uac = await UdpUac.open(reg.address)
            before = time.time()
            assert (await uac.register(dev(97))).status == 200
            ev = await reg.wait_for(DeviceRegistered, dev(97), timeout=5)
            after = time.time()
            assert before - 1 <= ev.time <= after + 1
            b = reg.bindings[dev(97)]
            assert before - 1 <= b.registered_at <= after + 1
            assert abs(b.expires_at - (b.registered_at + 3600)) < 1
            uac.close()
    run(main)


def test_old_event_names_still_import_with_a_deprecation_warning() -> None:
    """Renamed in 0.2 (CHANGELOG.md): gbsip.registrar.Registered & co. still
    work for one release, warning which gbsip.events name to use."""
    import gbsip.registrar as registrar_module

    for old, new in [("Registered", DeviceRegistered), ("Refreshed", DeviceRefreshed),
                     ("Unregistered", DeviceUnregistered), ("Redirected", DeviceRedirected),
                     ("Message", gbsip.events.MessageReceived),
                     ("Event", gbsip.events.RegistrarEvent)]:
        with pytest.warns(DeprecationWarning, match=f"gbsip.events.{new.__name__}"):
            assert getattr(registrar_module, old) is new


def test_tcp_garbage_is_answered_400_then_closed(run: Runner) -> None:
    """RFC 3261 §18.3 and the stream policy (gbsip.StreamParser): a request
    whose Content-Length is malformed cannot be framed; its head is still
    readable, so it gets a 400 naming the problem, then the connection closes."""
    async def main() -> None:
        async with registrar(transports=("tcp",)) as reg:
            bad = await TcpUac.open(reg.addresses["tcp"])
            request = register_request(dev(93), bad.local, transport="TCP")
            request = request.replace(b"Content-Length: 0", b"Content-Length: ten")
            await bad.write(request)
            answer = await bad.recv()
            assert answer.status == 400 and "Content-Length" in answer.reason
            assert answer.call_id == f"cid-{dev(93)}"
            assert await asyncio.wait_for(bad.reader.read(), 5) == b""  # then closed
            ev = await reg.wait_for(Rejected, timeout=5)
            assert ev.status == 400 and ev.transport == "tcp"
            await bad.close()
    run(main)


def test_tcp_incomplete_message_times_out_with_400(run: Runner) -> None:
    """Issue 14: a Content-Length larger than what arrives no longer holds
    the connection forever: after the incomplete-message timeout the request
    is answered 400 and the connection closed."""
    async def main() -> None:
        async with registrar(transports=("tcp",), tcp_incomplete_timeout=0.3) as reg:
            conn = await TcpUac.open(reg.addresses["tcp"])
            request = register_request(dev(94), conn.local, transport="TCP")
            await conn.write(request.replace(b"Content-Length: 0", b"Content-Length: 50"))
            answer = await conn.recv(5)
            assert answer.status == 400 and "ncomplete" in answer.reason
            assert await asyncio.wait_for(conn.reader.read(), 5) == b""
            await conn.close()
    run(main)
