"""The GB/T 28181 device (UAC) role on asyncio.

The state machine lives in the C core (``gbsip._core.Fleet``, a fleet of
one here); this module owns the socket, and the shared driver
(``gbsip._drive``) owns the timer and the events.  Works the same on
uvloop.
"""
from __future__ import annotations

import asyncio
import enum
import socket
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar, overload

from gbsip import _core, manscdp
from gbsip._address import is_ip, parse_target
from gbsip._drive import Clock, Driver, EventStream, Lifetime, SIPStream
from gbsip._udp import datagram_socket, drain_errors
from gbsip._version import __version__
from gbsip.camera import (
    Channels,
    ChannelSpec,
    ProfileSource,
    ProfileTable,
    alarm_target,
    apply_channels,
)
from gbsip.errors import ConfigurationError, LocalProtocolError, RegistrationError
from gbsip.events import (
    AnswerFailed,
    AnswerSent,
    Challenged,
    ControlReceived,
    DeviceEvent,
    Failed,
    KeepaliveAnswered,
    KeepaliveMissed,
    KeepaliveSent,
    KeepaliveTimeout,
    QueryReceived,
    Redirected,
    Refreshed,
    Registered,
    RequestRefused,
    Subscribed,
    SubscriptionEnded,
    Unregistered,
)

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

E = TypeVar("E", bound=DeviceEvent)
E2 = TypeVar("E2", bound=DeviceEvent)
E3 = TypeVar("E3", bound=DeviceEvent)

# Event flags of the core (csrc device.h, GB_DEV_EVF_*).
_EVF_STALE = 1
_EVF_DATE_GB = 2
_EVF_REFRESH = 1 << 24
_EVF_NOTIFY = 1 << 25
_TARGET_MASK = 0xFFFFFF
_TARGET_ALARM = 0x800000

#: A query hook's answer: None (as usual), a body, 200 (the 200 alone), a
#: status >= 300 (refused), or fields for ``Document.answer``.
QueryAnswer = Any


class DeviceState(str, enum.Enum):
    """Where a device is in its lifecycle (see docs/device.md)."""

    IDLE = "idle"
    REGISTERING = "registering"
    REGISTERED = "registered"
    REFRESHING = "refreshing"
    FAILED = "failed"
    UNREGISTERING = "unregistering"
    UNREGISTERED = "unregistered"


#: A fleet event as the core hands it over: (index, kind, status, reason,
#: value, latency_ms, time_ms, arg, flags, text).
FleetEventTuple = tuple[int, str, int, str, int, int, int, Any, int, str]


class FleetEvents:
    """Turns a fleet's event tuples into :mod:`gbsip.events` values (for a
    :class:`Device`, and for a :class:`gbsip.Simulator`'s ``on_events``).

    GB/T 28181 §9.10 Dates are the platform's local time without a zone;
    ``platform_utc_offset`` says which (Beijing by default).
    """

    __slots__ = ("fleet", "clock", "platform_utc_offset")

    def __init__(self, fleet: _core.Fleet, clock: Clock,
                 platform_utc_offset: timedelta = timedelta(hours=8)) -> None:
        self.fleet = fleet
        self.clock = clock
        self.platform_utc_offset = platform_utc_offset.total_seconds()

    def convert(self, raw: FleetEventTuple, device_id: str) -> DeviceEvent:
        _i, kind, status, reason, value, latency_ms, time_ms, arg, flags, text = raw
        latency = latency_ms / 1000.0
        common: dict[str, Any] = {"device_id": device_id, "time": self.clock.unix(time_ms)}
        if kind in ("registered", "refreshed"):
            date = offset = None
            if arg is not None:
                date = datetime(1970, 1, 1) + timedelta(milliseconds=arg)
                if flags & _EVF_DATE_GB:
                    offset = arg / 1000.0 - self.platform_utc_offset - time.time()
                else:
                    offset = arg / 1000.0 - time.time()
                    date = date.replace(tzinfo=timezone.utc)
            cls = Registered if kind == "registered" else Refreshed
            return cls(value, latency, date, offset, **common)
        if kind == "challenged":
            return Challenged(status, bool(flags & _EVF_STALE), **common)
        if kind == "failed":
            return Failed(status, text, reason, max(0.0, (arg - time_ms) / 1000.0), latency,
                          **common)
        if kind == "redirected":
            host, port, uri = self.fleet.destination(value)
            return Redirected(status, host, port, uri, **common)
        if kind == "keepalive_sent":
            return KeepaliveSent(value, **common)
        if kind == "keepalive_answered":
            return KeepaliveAnswered(value, status, latency, **common)
        if kind == "keepalive_missed":
            return KeepaliveMissed(value, status, arg, latency, text if status else "",
                                   **common)
        if kind == "keepalive_timeout":
            return KeepaliveTimeout(value, **common)
        if kind == "unregistered":
            return Unregistered(status, text, reason, latency, **common)
        return self._camera(raw, kind, common, latency)

    def _target(self, dev: int, flags: int) -> str | None:
        """The channel (or alarm input) ID a camera event names, None: the device."""
        t = flags & _TARGET_MASK
        if not t:
            return None
        if t >= _TARGET_ALARM:  # alarm inputs: type 134 beside the channels
            cid = str(self.fleet.channel(dev, 0)[0]) if self.fleet.channels(dev) else ""
            return f"{cid[:10]}134{cid[13:]}" if cid else None
        try:
            return str(self.fleet.channel(dev, t - 1)[0])
        except IndexError:
            return None

    def _camera(self, raw: FleetEventTuple, kind: str, common: dict[str, Any],
                latency: float) -> DeviceEvent:
        dev, _k, status, reason, value, latency_ms, _t, arg, flags, text = raw
        cmds = _core.MANSCDP_CMD_TYPES
        cmd = cmds[value] if 0 <= value < len(cmds) and cmds[value] else text
        if kind == "query":
            return QueryReceived(text or cmd, arg, status, self._target(dev, flags), **common)
        if kind == "control":
            return ControlReceived(_core.DEVICE_CONTROLS[value], text, arg, status,
                                   self._target(dev, flags), **common)
        if kind == "subscribed":
            return Subscribed(cmd, arg, bool(flags & _EVF_REFRESH),
                              latency_ms / 1000.0 if latency_ms else None, text,
                              self._target(dev, flags), **common)
        if kind == "subscription_ended":
            return SubscriptionEnded(cmd, reason, status, **common)
        if kind == "answered":
            return AnswerSent(cmd, arg, flags, latency, **common)
        if kind == "answer_failed":
            return AnswerFailed(cmd, arg, status, reason, flags & 0xFFFF,
                                bool(flags & _EVF_NOTIFY), text, **common)
        if kind == "refused":
            return RequestRefused(_METHODS.get(value, "?"), status, text, **common)
        raise LocalProtocolError(f"unknown device event {kind!r} from the core")


# gb_method_id of the core (sip_parser.h), for RequestRefused.
_METHODS = {0: "other", 1: "REGISTER", 2: "MESSAGE", 3: "INVITE", 4: "ACK", 5: "BYE",
            6: "CANCEL", 7: "OPTIONS", 8: "INFO", 9: "NOTIFY", 10: "SUBSCRIBE", 11: "REFER",
            12: "UPDATE", 13: "PRACK", 14: "PUBLISH"}


def query_hook(on_query: Callable[[manscdp.Document], QueryAnswer]) -> Callable[[int, bytes], Any]:
    """The core's query hook for a user's ``on_query(document)``."""

    def hook(_index: int, body: bytes) -> Any:
        answer = on_query(manscdp.parse(body, lenient=manscdp.Lenient.ALL))
        if answer is None or isinstance(answer, (bytes, int)):
            return answer
        if isinstance(answer, bytearray):
            return bytes(answer)
        doc = manscdp.parse(body, lenient=manscdp.Lenient.ALL)
        return doc.answer(list(answer))

    return hook


class Device(Lifetime):
    """A GB/T 28181 camera that registers, refreshes, keeps alive and
    unregisters::

        async with gbsip.Device("34020000001320000001", password="12345678",
                                server="udp://127.0.0.1:5060") as dev:
            async for event in dev.events():
                print(event)

    Entering registers (``RegistrationError`` when the first attempt fails
    for good); leaving unregisters; :meth:`abort` stops at once without.
    Intervals are in seconds.  ``trace`` sees every message sent and
    received (for logs and ``--trace``); ``on_event`` every event as it
    happens.

    Once started it answers its platform like a camera (GB/T 28181
    §9.3-§9.11): queries with 200 then the answer MESSAGE(s), controls,
    subscriptions.  ``profile`` (a preset name or a
    :class:`gbsip.camera.Profile`) says what it answers, ``channels`` how
    many channels it has (or their names); ``on_query(document)`` may answer
    a query its own way (see docs/device.md).
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
        on_event: Callable[[DeviceEvent], object] | None = None,
        platform_utc_offset: timedelta = timedelta(hours=8),
        profile: ProfileSource = None,
        channels: ChannelSpec = None,
        on_query: Callable[[manscdp.Document], QueryAnswer] | None = None,
        answer_max_message: int = 1400,
        answer_gap: float = 0.0,
        answer_window: int = 1,
        record_segment: int = 1800,
    ) -> None:
        target = parse_target(server)
        self.device_id = device_id
        self.transport = (transport or target.transport).lower()
        if self.transport not in ("udp", "tcp"):
            raise ConfigurationError("transport must be 'udp' or 'tcp'")
        self.server_host = target.host
        self.server_port = target.port
        self.local_host = local_host
        self.local_port = local_port
        self._fleet = _core.Fleet(
            server_id=server_id,
            domain=domain,
            request_uri=request_uri,
            server_host=target.host,
            server_port=target.port,
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
            answer_max_message=answer_max_message,
            answer_gap=round(answer_gap * 1000),
            answer_window=answer_window,
            record_segment=record_segment,
            utc_offset_min=round(platform_utc_offset.total_seconds() / 60),
            query_hook=query_hook(on_query) if on_query is not None else None,
        )
        self._index = self._fleet.add(device_id)
        self._fleet.set_receiver(self._index)  # a request for another ID: 404 from it
        self._profiles = ProfileTable(self._fleet)
        apply_channels(self._fleet, self._index, self._profiles.index(profile), channels)
        #: Called with ("send", bytes) / ("recv", bytes) for every message.
        self.trace = trace
        self._platform_utc_offset = platform_utc_offset
        self._events: EventStream[DeviceEvent] = EventStream(10000, history=10000)
        if on_event is not None:
            self._events.add_listener(on_event)
        self._convert: FleetEvents | None = None
        self._driver: Driver | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: dict[int, SIPStream] = {}
        self._addrs: dict[int, tuple[str, int]] = {}
        self._clock_offset: float | None = None
        self._closed = False
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
        if at is None or self._driver is None:
            return None
        return self._driver.clock.unix(at)

    @property
    def clock_offset(self) -> float | None:
        """Platform clock minus ours (s), from the last 200's ``Date``."""
        return self._clock_offset

    @property
    def keepalive_sn(self) -> int:
        return self._fleet.keepalive_sn(self._index)

    @property
    def channels(self) -> Channels:
        """The camera's channels (read; set a channel's ``status`` to turn it
        ON/OFF and notify Catalog subscribers)."""
        return Channels(self._fleet, self._channel_status, self._index)

    def raise_alarm(self, channel: int | None = 0, *, alarm_input: int | None = None,
                    priority: int = 1, method: int = 5, alarm_type: int = 0,
                    description: str = "") -> int:
        """Raise an alarm (GB/T 28181 §9.4) on a channel (or an alarm input:
        ``channel=None, alarm_input=k``): a MESSAGE Notify/Alarm to the
        platform and a NOTIFY to Alarm subscribers.  ``method``: AlarmMethod
        (1 telephone, 2 device, 3 SMS, 4 GPS, 5 video, 6 fault, 7 other);
        ``alarm_type``: Info/AlarmType (0: none).  Returns the requests sent."""
        target = alarm_target(channel if alarm_input is None else None, alarm_input)
        now = self._driver.now() if self._driver is not None else 0
        try:
            n = int(self._fleet.raise_alarm(self._index, target, priority, method,
                                            alarm_type, description, now))
        except IndexError as exc:
            raise ConfigurationError(str(exc)) from exc
        if self._driver is not None:
            self._driver.settle()
        return n

    def _channel_status(self, dev: int, ch: int, on: bool) -> None:
        now = self._driver.now() if self._driver is not None else 0
        self._fleet.set_channel_status(dev, ch, on, now)
        if self._driver is not None:
            self._driver.settle()

    @property
    def history(self) -> Any:
        """Every event so far, oldest first (the last 10,000)."""
        return self._events.history

    @property
    def closed(self) -> bool:
        return self._closed

    def stats(self) -> dict[str, Any]:
        """Counters of the core (messages sent, retransmissions, strays...)."""
        return self._fleet.stats()

    async def start(self) -> Registered:
        """Open the transport and register; returns the Registered event or
        raises ``RegistrationError`` (after which the device is closed)."""
        if self._closed:
            raise LocalProtocolError("a closed Device cannot start again: create a new Device")
        if self._driver is not None:
            raise LocalProtocolError(f"the device has already started ({self.state.value})")
        clock = Clock(asyncio.get_running_loop())
        self._convert = FleetEvents(self._fleet, clock, self._platform_utc_offset)
        self._driver = Driver(clock, deadline=self._fleet.next_deadline,
                              fire=self._fleet.handle_timer, flush=self._flush)
        now = self._driver.now()
        self._fleet.set_wall_clock(now, round(clock.unix(now) * 1000))
        await self._open()
        fut = self._events.watch(
            lambda e: isinstance(e, Registered)
            or (isinstance(e, Failed) and e.retry_in > 0))
        if not self._fleet.start(self._index, self._driver.now()):
            fut.cancel()
            raise LocalProtocolError(f"cannot start a device that is {self.state.value}")
        self._driver.settle()
        event = await fut
        if isinstance(event, Failed):
            await self.close()
            raise RegistrationError(event.status, event.reason, event.kind)
        assert isinstance(event, Registered)
        return event

    async def close(self) -> Unregistered | None:
        """Unregister (``Expires: 0``, challenged like any REGISTER) and close
        the transport.  Returns the Unregistered event (None when the device
        never started or is already closed)."""
        if self._closed or self._driver is None:
            self._closed = True
            return None
        result: Unregistered | None = None
        fut = self._events.watch(lambda e: isinstance(e, Unregistered))
        if self._fleet.stop(self._index, self._driver.now()):
            self._driver.settle()
            event = await fut
            assert isinstance(event, Unregistered)
            result = event
        else:
            fut.cancel()
        self.abort()
        return result

    def abort(self) -> None:
        """Stop at once: no unregistration, the timer and the transport are
        closed, :meth:`events` iterators end and waits fail.  The platform
        keeps the binding until it expires (what a camera losing power does)."""
        if self._closed:
            return
        self._closed = True
        if self._driver is not None:
            self._driver.close()
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        for stream in self._tcp.values():
            stream.abort()
        self._tcp.clear()
        self._events.close()

    def events(self) -> AsyncIterator[DeviceEvent]:
        """Every event not yet taken (since the device was created), then new
        ones as they happen; ends when the device is closed."""
        return self._events.__aiter__()

    def add_listener(self, listener: Callable[[DeviceEvent], object]) -> Callable[[], None]:
        """Call ``listener(event)`` for every event from now on; returns a
        function that removes it."""
        return self._events.add_listener(listener)

    async def send_keepalive(self) -> KeepaliveAnswered | KeepaliveMissed:
        """Send a keepalive now and wait for its outcome (a 2xx, or missed:
        refused or Timer F)."""
        if self._driver is None or self._closed:
            raise LocalProtocolError("the device is not running: start() it first")
        sn = self._fleet.send_keepalive(self._index, self._driver.now())
        if sn < 0:
            raise LocalProtocolError(f"no keepalive while {self.state.value}")
        fut = self._events.watch(
            lambda e: isinstance(e, (KeepaliveAnswered, KeepaliveMissed)) and e.sn == sn)
        self._driver.settle()
        event = await fut
        assert isinstance(event, (KeepaliveAnswered, KeepaliveMissed))
        return event

    # wait_for(A) is an A; wait_for((A, B)) an A | B (not their base class)
    @overload
    async def wait_for(self, kind: type[E], timeout: float | None = None) -> E: ...

    @overload
    async def wait_for(self, kind: tuple[type[E], type[E2]],
                       timeout: float | None = None) -> E | E2: ...

    @overload
    async def wait_for(self, kind: tuple[type[E], type[E2], type[E3]],
                       timeout: float | None = None) -> E | E2 | E3: ...

    @overload
    async def wait_for(self, kind: tuple[type[E], ...], timeout: float | None = None) -> E: ...

    async def wait_for(self, kind: type[DeviceEvent] | tuple[type[DeviceEvent], ...],
                       timeout: float | None = None) -> DeviceEvent:
        """The next event of that type, or of one of those types, not yet
        taken from :meth:`events` (the events before it are taken too)."""
        return await self._events.wait_for(kind, None, timeout)

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
            for stream in self._tcp.values():
                stream.close()
            self._tcp.clear()
            return 0
        old = self._udp
        loop = asyncio.get_running_loop()
        sock = datagram_socket(self.local_host, 0, loop)
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UDPProtocol(self, sock), sock=sock)
        self._udp = transport
        if old is not None:
            old.close()
        return int(transport.get_extra_info("sockname")[1])

    # ---- glue ---------------------------------------------------------------

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        self._addrs[0] = await self._resolve(0)
        host_index = self._fleet.local_host(self.local_host)
        if self.transport == "udp":
            sock = datagram_socket(self.local_host, self.local_port, loop)
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UDPProtocol(self, sock), sock=sock)
            self._udp = transport
            port = transport.get_extra_info("sockname")[1]
        else:
            try:
                stream = await self._connect(0)
            except OSError as exc:
                raise RegistrationError(0, f"cannot connect: {exc}", "transport") from exc
            port = stream.local[1]
        self._fleet.set_local(self._index, host_index, port)

    async def _resolve(self, dest: int) -> tuple[str, int]:
        if dest in self._addrs:
            return self._addrs[dest]
        host, port, _ = self._fleet.destination(dest)
        if not is_ip(host):
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=2)  # DGRAM
            host = str(infos[0][4][0])
        self._addrs[dest] = (host, port)
        return host, port

    def _new_stream(self, dest: int) -> SIPStream:
        """The one connection to a destination, kept for all traffic
        (GB/T 28181-2022 §9.1.1 f); writes wait until it is up."""
        stream = SIPStream(self._on_tcp_messages, on_closed=self._on_tcp_closed)
        stream.tag = dest
        self._tcp[dest] = stream
        return stream

    async def _connect(self, dest: int, stream: SIPStream | None = None) -> SIPStream:
        stream = stream or self._new_stream(dest)
        try:
            host, port = await self._resolve(dest)
            await asyncio.get_running_loop().create_connection(
                lambda: stream, host, port, local_addr=(self.local_host, 0))
        except OSError:
            if self._tcp.get(dest) is stream:
                del self._tcp[dest]
            raise
        return stream

    async def _connect_later(self, stream: SIPStream) -> None:
        try:
            await self._connect(stream.tag, stream)
        except OSError:
            self._transport_error()

    def _on_tcp_messages(self, stream: SIPStream, frames: list[bytes]) -> None:
        for data in frames:
            self._received(data)

    def _on_tcp_closed(self, stream: SIPStream, exc: Exception | None) -> None:
        # the next message opens a new connection
        if self._tcp.get(stream.tag) is stream:
            del self._tcp[stream.tag]

    def _send(self, dest: int, data: bytes) -> None:
        if self.trace is not None:
            self.trace("send", data)
        if self.transport == "tcp":
            stream = self._tcp.get(dest)
            if stream is None:
                stream = self._new_stream(dest)
                asyncio.get_running_loop().create_task(self._connect_later(stream))
            stream.write(data)
            return
        if self._udp is None:
            return
        addr = self._addrs.get(dest)
        if addr is not None:
            self._udp.sendto(data, addr)
        else:
            asyncio.get_running_loop().create_task(self._send_later(dest, data))

    async def _send_later(self, dest: int, data: bytes) -> None:
        try:
            addr = await self._resolve(dest)
        except OSError:
            self._transport_error()
            return
        if self._udp is not None:
            self._udp.sendto(data, addr)

    def _received(self, data: bytes) -> None:
        if self._closed or self._driver is None:
            return
        if self.trace is not None:
            self.trace("recv", data)
        self._fleet.feed(data, self._driver.now())
        self._driver.settle()

    def _transport_error(self) -> None:
        self.transport_errors += 1
        if not self._closed and self._driver is not None:
            self._fleet.transport_error(self._index, self._driver.now())
            self._driver.settle()

    def _flush(self) -> None:
        """The driver's flush: send what the core queued, publish its events."""
        for _index, dest, data in self._fleet.pop_datagrams():
            self._send(dest, data)
        assert self._convert is not None
        for raw in self._fleet.pop_events():
            event = self._convert.convert(raw, self.device_id)
            if isinstance(event, (Registered, Refreshed)) and event.clock_offset is not None:
                self._clock_offset = event.clock_offset
            self._events.publish(event)


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, device: Device, sock: socket.socket) -> None:
        self._device = device
        self._sock = sock

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._device._received(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP unreachable and friends (gbsip._udp): counted for those who
        # watch; the device itself just times out, as a real one would.
        self._device.transport_errors += 1
        drain_errors(self._sock)
