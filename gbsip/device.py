"""The GB/T 28181 device (UAC) role on asyncio.

The state machine lives in the C core (``gbsip._core.Fleet``, a fleet of
one here); this module owns the socket, the timer and the events.  Time goes
into the core as ``loop.time()`` in whole milliseconds, and the core's next
deadline is armed with ``loop.call_at``; works the same on uvloop.
"""
from __future__ import annotations

import asyncio
import collections
import enum
import ipaddress
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Union

from gbsip import _core
from gbsip._version import __version__
from gbsip.errors import GBSIPError, RegistrationError

__all__ = [
    "Challenged",
    "Device",
    "DeviceEvent",
    "DeviceState",
    "Failed",
    "KeepaliveAnswered",
    "KeepaliveMissed",
    "KeepaliveSent",
    "KeepaliveTimeout",
    "Redirected",
    "Refreshed",
    "Registered",
    "Unregistered",
]

_EVF_STALE = 1
_EVF_DATE_GB = 2
_EVF_DATE_RFC1123 = 4
_EVF_PROXY = 8


class DeviceState(str, enum.Enum):
    """Where a device is in its lifecycle (see docs/device.md)."""

    IDLE = "idle"
    REGISTERING = "registering"
    REGISTERED = "registered"
    REFRESHING = "refreshing"
    FAILED = "failed"
    UNREGISTERING = "unregistering"
    UNREGISTERED = "unregistered"


@dataclass(frozen=True)
class Registered:
    """Registered (GB/T 28181 §9.1.2): granted lifetime, and the platform's
    clock from the 200's ``Date`` (§9.10) when it sent one."""

    expires: int
    latency: float
    date: datetime | None = None
    clock_offset: float | None = None


@dataclass(frozen=True)
class Refreshed:
    """A refresh REGISTER was accepted."""

    expires: int
    latency: float
    date: datetime | None = None
    clock_offset: float | None = None


@dataclass(frozen=True)
class Challenged:
    """A 401/407 was answered with Digest credentials."""

    status: int
    stale: bool


@dataclass(frozen=True)
class Failed:
    """An attempt failed; the device tries again after ``retry_in`` seconds
    (0: at once, at the redirect server)."""

    status: int
    reason: str
    kind: str
    retry_in: float


@dataclass(frozen=True)
class Redirected:
    """A 3xx named another platform (GB/T 28181-2022 §9.1.2.3)."""

    status: int
    host: str
    port: int
    uri: str


@dataclass(frozen=True)
class KeepaliveSent:
    """A keepalive MESSAGE went out (GB/T 28181 §9.6.1)."""

    sn: int


@dataclass(frozen=True)
class KeepaliveAnswered:
    """The platform answered a keepalive with a 2xx."""

    sn: int
    status: int
    latency: float


@dataclass(frozen=True)
class KeepaliveMissed:
    """A keepalive got no 2xx (``status`` 0: no answer at all)."""

    sn: int
    status: int
    missed: int


@dataclass(frozen=True)
class KeepaliveTimeout:
    """``missed`` keepalives in a row went unanswered: the platform is
    considered offline and the device registers again."""

    missed: int


@dataclass(frozen=True)
class Unregistered:
    """The device stopped; ``status`` 200 when the platform confirmed."""

    status: int
    reason: str


DeviceEvent = Union[
    Registered, Refreshed, Challenged, Failed, Redirected, KeepaliveSent,
    KeepaliveAnswered, KeepaliveMissed, KeepaliveTimeout, Unregistered,
]

_EventTuple = tuple[int, str, int, str, int, int, int, Any, int, str]


def _parse_server(server: str) -> tuple[str, str, int]:
    """``udp://host:port`` / ``tcp://[::1]:5060`` / ``host:port`` ->
    (transport, host, port)."""
    transport = "udp"
    rest = server
    if "://" in server:
        scheme, rest = server.split("://", 1)
        transport = scheme.lower()
        if transport not in ("udp", "tcp"):
            raise ValueError(f"server scheme must be udp:// or tcp://: {server!r}")
    rest = rest.rstrip("/")
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port = int(tail[1:]) if tail.startswith(":") else 5060
    elif rest.count(":") == 1:
        host, p = rest.split(":")
        port = int(p)
    else:
        host, port = rest, 5060
    if not host or not 0 < port < 65536:
        raise ValueError(f"bad server address: {server!r}")
    return transport, host, port


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, device: Device) -> None:
        self._device = device

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._device._received(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP unreachable and friends: a real device would just time out.
        self._device.transport_errors += 1


class _TCPConnection:
    """One stream to one destination, kept for all traffic (2022 §9.1.1 f)."""

    def __init__(self, device: Device, dest: int) -> None:
        self.device = device
        self.dest = dest
        self.writer: asyncio.StreamWriter | None = None
        self.queue: list[bytes] = []
        self.task: asyncio.Task[None] | None = None
        self.local_port = 0

    def send(self, data: bytes) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(data)
            return
        self.queue.append(data)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self.run())

    async def connect(self) -> None:
        host, port = await self.device._resolve(self.dest)
        local = (self.device.local_host, 0)
        reader, writer = await asyncio.open_connection(host, port, local_addr=local)
        self.writer = writer
        self.local_port = writer.get_extra_info("sockname")[1]
        self.task = asyncio.get_running_loop().create_task(self.read(reader))

    async def run(self) -> None:
        try:
            await self.connect()
        except OSError:
            self.queue.clear()
            self.device._transport_error()
            return
        assert self.writer is not None
        for data in self.queue:
            self.writer.write(data)
        self.queue.clear()

    async def read(self, reader: asyncio.StreamReader) -> None:
        buf = bytearray()
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                buf += chunk
                while True:
                    try:
                        framed = _core.frame(buf)
                    except GBSIPError:
                        buf.clear()  # unframeable: drop what we have
                        break
                    if framed is None:
                        if not buf.strip(b"\r\n"):
                            buf.clear()
                        break
                    skip, length = framed
                    self.device._received(bytes(buf[skip:skip + length]))
                    del buf[:skip + length]
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if self.writer is not None:
                self.writer.close()
            self.writer = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.task is not None and not self.task.done():
            self.task.cancel()


class Device:
    """A GB/T 28181 camera that registers, refreshes, keeps alive and
    unregisters::

        async with gbsip.Device("34020000001320000001", password="12345678",
                                server="udp://127.0.0.1:5060") as dev:
            async for event in dev.events():
                print(event)

    Entering registers (``RegistrationError`` when the first attempt fails
    for good); leaving unregisters.  Intervals are in seconds.  ``trace``
    sees every message sent and received (for logs and ``--trace``).
    """

    def __init__(
        self,
        device_id: str,
        *,
        password: str,
        server: str = "udp://127.0.0.1:5060",
        server_id: str = "34020000002000000001",
        domain: str | None = None,
        transport: str | None = None,
        local_host: str = "127.0.0.1",
        local_port: int = 0,
        expires: int = 3600,
        refresh_fraction: float = 0.5,
        jitter: float = 0.1,
        keepalive_interval: float | None = 60.0,
        keepalive_timeout_count: int = 3,
        retry_interval: float = 60.0,
        capability_header: bool = True,
        gb_version: str | None = None,
        user_agent: str = f"gbsip/{__version__}",
        request_uri: str | None = None,
        contact_params: str = "",
        t1: float = 0.5,
        t2: float = 4.0,
        preemptive_auth: bool = True,
        lenient: int = 0,
        seed: int | None = None,
        trace: Callable[[str, bytes], None] | None = None,
        platform_utc_offset: timedelta = timedelta(hours=8),
    ) -> None:
        scheme, host, port = _parse_server(server)
        self.device_id = device_id
        self.transport = (transport or scheme).lower()
        if self.transport not in ("udp", "tcp"):
            raise ValueError("transport must be 'udp' or 'tcp'")
        self.server_host = host
        self.server_port = port
        self.local_host = local_host
        self.local_port = local_port
        self._fleet = _core.Fleet(
            server_id=server_id,
            domain=domain,
            request_uri=request_uri,
            server_host=host,
            server_port=port,
            transport=self.transport,
            password=password,
            user_agent=user_agent,
            contact_params=contact_params,
            gb_version=gb_version,
            capability_header=capability_header,
            expires=expires,
            refresh_fraction=refresh_fraction,
            jitter=jitter,
            retry_interval=round(retry_interval * 1000),
            keepalive_interval=round((keepalive_interval or 0) * 1000),
            keepalive_max_missed=keepalive_timeout_count,
            t1=round(t1 * 1000),
            t2=round(t2 * 1000),
            preemptive_auth=preemptive_auth,
            lenient=lenient,
            seed=seed,
        )
        self._index = self._fleet.add(device_id)
        #: Called with ("send", bytes) / ("recv", bytes) for every message.
        self.trace = trace
        self._loop: asyncio.AbstractEventLoop | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: dict[int, _TCPConnection] = {}
        self._addrs: dict[int, tuple[str, int]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: int | None = None
        self._pending: collections.deque[DeviceEvent] = collections.deque(maxlen=10000)
        self._wakeup: asyncio.Future[None] | None = None
        self._waiters: list[tuple[Callable[[DeviceEvent], bool], asyncio.Future[DeviceEvent]]] = []
        self._closed = False
        self._clock_offset: float | None = None
        # GB §9.10 Dates are the platform's local time without a zone.
        self._platform_utc_offset = platform_utc_offset.total_seconds()
        #: Every event so far, oldest first (bounded).
        self.history: collections.deque[DeviceEvent] = collections.deque(maxlen=10000)
        #: ICMP errors and failed connections seen.
        self.transport_errors = 0

    # ---- public API --------------------------------------------------------

    @property
    def state(self) -> DeviceState:
        return DeviceState(self._fleet.state(self._index))

    @property
    def expires_at(self) -> float | None:
        """When the registration runs out, as Unix time (s); None if none."""
        at = self._fleet.expires_at(self._index)
        if at is None or self._loop is None:
            return None
        return time.time() + (at / 1000.0 - self._loop.time())

    @property
    def clock_offset(self) -> float | None:
        """Platform clock minus ours (s), from the last 200's ``Date``."""
        return self._clock_offset

    @property
    def keepalive_sn(self) -> int:
        return self._fleet.keepalive_sn(self._index)

    def stats(self) -> dict[str, Any]:
        """Counters of the core (messages sent, retransmissions, strays...)."""
        return self._fleet.stats()

    async def __aenter__(self) -> Device:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> Registered:
        """Open the transport and register; returns the Registered event or
        raises ``RegistrationError`` (after which the device is closed)."""
        self._loop = asyncio.get_running_loop()
        await self._open()
        fut = self._wait_for(
            lambda e: isinstance(e, Registered)
            or (isinstance(e, Failed) and e.retry_in > 0))
        if not self._fleet.start(self._index, self._now()):
            fut.cancel()
            raise GBSIPError(f"cannot start a device that is {self.state.value}")
        self._pump()
        event = await fut
        if isinstance(event, Failed):
            await self.close()
            raise RegistrationError(event.status, event.reason, event.kind)
        assert isinstance(event, Registered)
        return event

    async def close(self) -> Unregistered | None:
        """Unregister (``Expires: 0``, challenged like any REGISTER) and close
        the transport.  Returns the Unregistered event."""
        if self._closed or self._loop is None:
            return None
        result: Unregistered | None = None
        fut = self._wait_for(lambda e: isinstance(e, Unregistered))
        if self._fleet.stop(self._index, self._now()):
            self._pump()
            event = await fut
            assert isinstance(event, Unregistered)
            result = event
        else:
            fut.cancel()
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        for conn in self._tcp.values():
            conn.close()
        self._tcp.clear()
        self._wake()
        return result

    async def events(self) -> AsyncIterator[DeviceEvent]:
        """Every event since the device was created, then new ones as they
        happen; ends when the device is closed.  One consumer at a time."""
        while True:
            while self._pending:
                yield self._pending.popleft()
            if self._closed:
                return
            self._wakeup = asyncio.get_running_loop().create_future()
            await self._wakeup

    async def send_keepalive(self) -> KeepaliveAnswered | KeepaliveMissed:
        """Send a keepalive now and wait for its outcome (a 2xx, or missed:
        refused or Timer F)."""
        if self._loop is None or self._closed:
            raise GBSIPError("device is not running")
        sn = self._fleet.send_keepalive(self._index, self._now())
        if sn < 0:
            raise GBSIPError(f"no keepalive while {self.state.value}")
        fut = self._wait_for(
            lambda e: isinstance(e, (KeepaliveAnswered, KeepaliveMissed)) and e.sn == sn)
        self._pump()
        event = await fut
        assert isinstance(event, (KeepaliveAnswered, KeepaliveMissed))
        return event

    async def wait_for(self, kind: type[Any] | tuple[type[Any], ...],
                       timeout: float | None = None) -> DeviceEvent:
        """The next event of this type (not one already seen)."""
        fut = self._wait_for(lambda e: isinstance(e, kind))
        return await asyncio.wait_for(fut, timeout)

    # ---- fault injection ---------------------------------------------------

    def drop_responses(self, n: int) -> None:
        """Ignore the next n responses, as if lost."""
        self._fleet.drop_responses(self._index, n)

    def set_password(self, password: str | None) -> None:
        """Answer challenges with this password (None: the configured one)."""
        self._fleet.set_password(self._index, password)

    def skip_keepalives(self, n: int) -> None:
        """Do not send the next n periodic keepalives."""
        self._fleet.skip_keepalives(self._index, n)

    async def change_source_port(self) -> int:
        """Send from a new source port from now on, keeping Via and Contact
        as they were (what a NAT rebinding looks like to the platform).
        Over TCP the connection is closed and the next message opens a new
        one.  Returns the new local port (0 for TCP until reconnected)."""
        if self.transport == "tcp":
            for conn in self._tcp.values():
                conn.close()
            self._tcp.clear()
            return 0
        assert self._loop is not None
        old = self._udp
        transport, _ = await self._loop.create_datagram_endpoint(
            lambda: _UDPProtocol(self), local_addr=(self.local_host, 0))
        self._udp = transport  # type: ignore[assignment]
        if old is not None:
            old.close()
        return int(transport.get_extra_info("sockname")[1])

    # ---- glue ---------------------------------------------------------------

    def _now(self) -> int:
        assert self._loop is not None
        return int(self._loop.time() * 1000)

    async def _open(self) -> None:
        assert self._loop is not None
        self._addrs[0] = await self._resolve(0)
        host_index = self._fleet.local_host(self.local_host)
        if self.transport == "udp":
            transport, _ = await self._loop.create_datagram_endpoint(
                lambda: _UDPProtocol(self),
                local_addr=(self.local_host, self.local_port))
            self._udp = transport  # type: ignore[assignment]
            port = transport.get_extra_info("sockname")[1]
        else:
            conn = _TCPConnection(self, 0)
            try:
                await conn.connect()
            except OSError as exc:
                raise RegistrationError(0, f"cannot connect: {exc}", "transport") from exc
            self._tcp[0] = conn
            port = conn.local_port
        self._fleet.set_local(self._index, host_index, port)

    async def _resolve(self, dest: int) -> tuple[str, int]:
        if dest in self._addrs:
            return self._addrs[dest]
        host, port, _ = self._fleet.destination(dest)
        if not _is_ip(host):
            assert self._loop is not None
            infos = await self._loop.getaddrinfo(host, port, type=2)  # SOCK_DGRAM
            host = infos[0][4][0]
        self._addrs[dest] = (host, port)
        return host, port

    def _send(self, dest: int, data: bytes) -> None:
        if self.trace is not None:
            self.trace("send", data)
        if self.transport == "tcp":
            conn = self._tcp.get(dest)
            if conn is None:
                conn = self._tcp[dest] = _TCPConnection(self, dest)
            conn.send(data)
            return
        if self._udp is None:
            return
        addr = self._addrs.get(dest)
        if addr is not None:
            self._udp.sendto(data, addr)
        else:
            assert self._loop is not None
            self._loop.create_task(self._send_later(dest, data))

    async def _send_later(self, dest: int, data: bytes) -> None:
        try:
            addr = await self._resolve(dest)
        except OSError:
            self._transport_error()
            return
        if self._udp is not None:
            self._udp.sendto(data, addr)

    def _received(self, data: bytes) -> None:
        if self._closed:
            return
        if self.trace is not None:
            self.trace("recv", data)
        self._fleet.feed(data, self._now())
        self._pump()

    def _transport_error(self) -> None:
        self.transport_errors += 1
        if not self._closed:
            self._fleet.transport_error(self._index, self._now())
            self._pump()

    def _on_timer(self) -> None:
        # call_at may run a hair early: never let "now" fall before the
        # deadline it was armed for, or the core would see nothing due.
        at = self._timer_at or 0
        self._timer = None
        self._timer_at = None
        if self._closed:
            return
        self._fleet.handle_timer(max(self._now(), at))
        self._pump()

    def _pump(self) -> None:
        for _index, dest, data in self._fleet.pop_datagrams():
            self._send(dest, data)
        for raw in self._fleet.pop_events():
            self._dispatch(self._convert(raw))
        if self._closed:
            return
        deadline = self._fleet.next_deadline()
        if deadline == self._timer_at and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = None
        if deadline is not None:
            assert self._loop is not None
            self._timer_at = deadline
            self._timer = self._loop.call_at(deadline / 1000.0, self._on_timer)

    def _convert(self, raw: _EventTuple) -> DeviceEvent:
        _i, kind, status, reason, value, latency_ms, time_ms, arg, flags, text = raw
        if kind in ("registered", "refreshed"):
            date = offset = None
            if arg is not None:
                date = datetime(1970, 1, 1) + timedelta(milliseconds=arg)
                if flags & _EVF_DATE_GB:
                    # GB §9.10: the platform's local time (Beijing unless
                    # platform_utc_offset says otherwise), without a zone.
                    offset = arg / 1000.0 - self._platform_utc_offset - time.time()
                else:
                    offset = arg / 1000.0 - time.time()
                    date = date.replace(tzinfo=timezone.utc)
                self._clock_offset = offset
            cls = Registered if kind == "registered" else Refreshed
            return cls(value, latency_ms / 1000.0, date, offset)
        if kind == "challenged":
            return Challenged(status, bool(flags & _EVF_STALE))
        if kind == "failed":
            return Failed(status, text, reason, max(0.0, (arg - time_ms) / 1000.0))
        if kind == "redirected":
            host, port, uri = self._fleet.destination(value)
            return Redirected(status, host, port, uri)
        if kind == "keepalive_sent":
            return KeepaliveSent(value)
        if kind == "keepalive_answered":
            return KeepaliveAnswered(value, status, latency_ms / 1000.0)
        if kind == "keepalive_missed":
            return KeepaliveMissed(value, status, arg)
        if kind == "keepalive_timeout":
            return KeepaliveTimeout(value)
        if kind == "unregistered":
            return Unregistered(status, text)
        raise GBSIPError(f"unknown device event {kind!r}")

    def _dispatch(self, event: DeviceEvent) -> None:
        self.history.append(event)
        self._pending.append(event)
        still = []
        for pred, fut in self._waiters:
            if fut.done():
                continue
            if pred(event):
                fut.set_result(event)
            else:
                still.append((pred, fut))
        self._waiters = still
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def _wait_for(self, pred: Callable[[DeviceEvent], bool]) -> asyncio.Future[DeviceEvent]:
        assert self._loop is not None
        fut: asyncio.Future[DeviceEvent] = self._loop.create_future()
        self._waiters.append((pred, fut))
        return fut
