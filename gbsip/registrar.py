"""The GB/T 28181 platform role: a registrar driven from asyncio.

State lives in the C core (:class:`gbsip._core.RegistrarCore`); this module
owns the sockets and the timer and turns the core's events into frozen
dataclasses.  UDP datagrams are received and answered in batches inside C
(``recvmmsg``/``sendmmsg``), so Python wakes once per batch, not per packet.

    async with Registrar("34020000002000000001", port=0, passwords="12345678") as reg:
        async for event in reg.events():
            print(event)
"""
from __future__ import annotations

import asyncio
import collections
import enum
import errno
import inspect
import itertools
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Union

from gbsip import _core
from gbsip._core import GBSIPError

__all__ = [
    "AuthFailed",
    "Binding",
    "Event",
    "Expired",
    "HA1",
    "Keepalive",
    "Message",
    "Offline",
    "Online",
    "Redirect",
    "Redirected",
    "Refresh",
    "Refreshed",
    "Refuse",
    "Registered",
    "Registrar",
    "RegistrarError",
    "Rejected",
    "Unregistered",
]

Address = tuple[str, int]


class RegistrarError(GBSIPError):
    """The registrar cannot start or was misused (port in use, bad option)."""


# --------------------------------------------------------------------------
# Events

@dataclass(frozen=True)
class Event:
    """Base class of registrar events; ``time`` is the loop's monotonic time."""

    device_id: str | None
    source: Address | None
    transport: str
    time: float


@dataclass(frozen=True)
class Registered(Event):
    """A device registered (GB/T 28181 §9.1.2.1)."""

    contact: str
    expires: int
    user_agent: str | None


@dataclass(frozen=True)
class Refreshed(Event):
    """A registered device renewed its binding."""

    contact: str
    expires: int
    user_agent: str | None


@dataclass(frozen=True)
class Unregistered(Event):
    """A device removed its binding (Expires: 0)."""


@dataclass(frozen=True)
class Expired(Event):
    """A binding reached its expiry without a refresh."""


@dataclass(frozen=True)
class AuthFailed(Event):
    """Credentials were refused; ``status`` is what the device was answered."""

    reason: str
    status: int


@dataclass(frozen=True)
class Rejected(Event):
    """A request was refused as malformed or not acceptable (or dropped: status 0)."""

    status: int
    reason: str | None


@dataclass(frozen=True)
class Online(Event):
    """A device came back after being offline."""


@dataclass(frozen=True)
class Offline(Event):
    """A device missed ``keepalive_timeout_count`` keepalives (GB/T 28181 §9.6.1)."""


@dataclass(frozen=True)
class Keepalive(Event):
    """A keepalive MESSAGE was answered 200."""

    sn: int
    status: str | None


@dataclass(frozen=True)
class Message(Event):
    """Another MANSCDP MESSAGE (Catalog, Alarm...), answered 200."""

    body: str


@dataclass(frozen=True)
class Redirected(Event):
    """A REGISTER was answered 302 to another platform (2022 edition §9.1.2.3)."""

    target: str


# --------------------------------------------------------------------------
# Policy values


@dataclass(frozen=True)
class HA1:
    """A stored H(username:realm:password) in hex, instead of a password."""

    value: str


@dataclass(frozen=True)
class Refuse:
    """``accept`` hook answer: refuse the device with this status."""

    status: int = 403
    reason: str | None = None


@dataclass(frozen=True)
class Redirect:
    """``accept`` hook answer: send the device to another platform (302)."""

    target: str


class Refresh(enum.Enum):
    """How to treat a registered device's refresh (GB platforms differ)."""

    #: Every REGISTER without valid credentials is challenged.
    CHALLENGE = 0
    #: A refresh on the device's Call-ID, from its address, needs no challenge.
    TRUST_CALL_ID = 1


Secret = Union[str, HA1, None]
PasswordSource = Union[
    str,
    Mapping[str, Union[str, HA1]],
    Callable[[str], Union[Secret, Awaitable[Secret]]],
    None,
]
AcceptHook = Callable[[str, _core.Request], Union[None, Refuse, Redirect]]


@dataclass(frozen=True)
class Binding:
    """A registered device as the registrar sees it."""

    device_id: str
    contact: str
    contacts: tuple[str, ...]
    user_agent: str | None
    call_id: str
    cseq: int
    source: Address
    transport: str
    expires_at: float          # loop time
    registered_at: float       # loop time
    last_keepalive: float | None
    online: bool


_TRANSPORTS = ("udp", "tcp")
_EVENT_CODES: dict[type[Event], int] = {
    Registered: 1, Refreshed: 2, Unregistered: 3, Expired: 4, AuthFailed: 5, Rejected: 6,
    Online: 7, Offline: 8, Keepalive: 9, Message: 10, Redirected: 12,
}


def _event_mask(events: Iterable[type[Event]] | None) -> int:
    """Core event mask for the kinds to record (None: all)."""
    if events is None:
        return 0
    mask = 1 << 31  # a bit no event uses, so an empty selection records nothing
    for kind in events:
        mask |= 1 << _EVENT_CODES[kind]
    return mask
_EV_NEED_SECRET = 11


def _transport_name(code: int) -> str:
    return _TRANSPORTS[code] if 0 <= code < len(_TRANSPORTS) else "?"


class Registrar:
    """A GB/T 28181 registrar (platform) on UDP and/or TCP.

    ``passwords`` is one shared password (as many GB platforms use), a
    mapping of device ID to password (or :class:`HA1`), or a callable
    (sync or async) ``device_id -> password | HA1 | None``.  ``port=0``
    picks a free port; read it from :attr:`address` once started.
    ``events`` limits which event kinds are recorded (default: all; an
    empty tuple records none, for load tests).  ``reuse_port`` lets several
    registrar processes share one port (SO_REUSEPORT); the kernel sends each
    source address to one of them, and each keeps its own bindings.
    """

    def __init__(
        self,
        server_id: str,
        *,
        host: str = "127.0.0.1",
        port: int = 5060,
        transports: Iterable[str] = ("udp", "tcp"),
        passwords: PasswordSource = None,
        realm: str | None = None,
        min_expires: int = 3600,
        max_expires: int = 86400,
        default_expires: int = 3600,
        keepalive_interval: float = 60,
        keepalive_timeout_count: int = 3,
        qop: str | None = None,
        refresh: Refresh = Refresh.CHALLENGE,
        strict_ids: bool = True,
        accept: AcceptHook | None = None,
        gb_version: str | None = None,
        utc_offset: timedelta = timedelta(hours=8),
        clock: Callable[[], float] = time.time,
        fixed_nonce: str | None = None,
        nonce_lifetime: int = 300,
        redirect_to: str | None = None,
        server_header: str | None = "gbsip",
        max_bindings: int = 1_000_000,
        max_contacts: int = 8,
        max_transactions: int = 65536,
        max_pending: int = 1024,
        max_events: int = 65536,
        max_connections: int = 10000,
        rate_per_source: int = 0,
        lenient: int = 0,
        keepalive_events: bool = True,
        events: Iterable[type[Event]] | None = None,
        reuse_port: bool = False,
        seed: int | None = None,
    ) -> None:
        transports = tuple(t.lower() for t in transports)
        for t in transports:
            if t not in _TRANSPORTS:
                raise RegistrarError(f"unknown transport {t!r}: use 'udp' and/or 'tcp'")
        if not transports:
            raise RegistrarError("at least one transport is needed")
        if qop not in (None, "auth"):
            raise RegistrarError("qop must be None or 'auth'")
        if keepalive_interval <= 0 and keepalive_timeout_count:
            raise RegistrarError("keepalive_interval must be positive")
        self.server_id = server_id
        self.host = host
        self._port = port
        self._transports = transports
        self._passwords = passwords
        self._accept = accept
        self._utc_offset_ms = int(utc_offset.total_seconds() * 1000)
        self._clock = clock
        self._max_connections = max_connections
        self._reuse_port = reuse_port
        self._lenient = lenient
        shared = passwords if isinstance(passwords, str) else None
        ask = callable(passwords)
        self._core = _core.RegistrarCore(
            server_id,
            realm=realm,
            shared_password=shared,
            ask_for_secrets=ask,
            min_expires=min_expires,
            max_expires=max_expires,
            default_expires=default_expires,
            keepalive_interval_ms=int(keepalive_interval * 1000),
            keepalive_timeout_count=keepalive_timeout_count,
            qop_auth=qop == "auth",
            refresh_policy=refresh.value,
            strict_ids=strict_ids,
            gb_version=gb_version,
            fixed_nonce=fixed_nonce,
            nonce_lifetime=nonce_lifetime,
            redirect_to=redirect_to,
            seed=seed,
            max_bindings=max_bindings,
            max_contacts=max_contacts,
            max_transactions=max_transactions,
            max_pending=max_pending,
            max_events=max_events,
            lenient=lenient,
            server_header=server_header,
            keepalive_events=keepalive_events,
            event_mask=_event_mask(events),
        )
        if isinstance(passwords, Mapping):
            for device_id, secret in passwords.items():
                self.set_password(device_id, secret)
        self.realm = realm or server_id[:10]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._udp_socks: list[socket.socket] = []
        self._tcp_servers: list[asyncio.AbstractServer] = []
        self._conns: dict[int, asyncio.StreamWriter] = {}
        self._conn_tasks: set[asyncio.Task[Any]] = set()
        self._conn_ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._events: collections.deque[Event] = collections.deque(maxlen=max_events)
        self._event_waiters: list[asyncio.Future[None]] = []
        self.events_dropped = 0
        self._addresses: dict[str, Address] = {}
        self._closed = False

    # -- lifetime -----------------------------------------------------------

    async def __aenter__(self) -> Registrar:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Bind the sockets and start serving."""
        self._loop = asyncio.get_running_loop()
        # With port=0 and both transports, UDP picks a free port and TCP must
        # get the same one; another process may hold it for TCP, so retry.
        attempts = 20 if self._port == 0 and len(self._transports) > 1 else 1
        for attempt in range(attempts):
            try:
                await self._listen(self._port)
                return
            except OSError as exc:
                port = self._addresses.get("udp", (None, self._port))[1]
                self._release()
                if attempt + 1 < attempts and exc.errno == errno.EADDRINUSE:
                    continue
                await self.close()
                raise RegistrarError(
                    f"cannot listen on {self.host}:{port} ({exc.strerror or exc}); "
                    "choose another port or port=0 for a free one"
                ) from exc

    async def _listen(self, port: int) -> None:
        assert self._loop is not None
        if "udp" in self._transports:
            sock = self._bind_udp(port)
            self._udp_socks.append(sock)
            port = port or sock.getsockname()[1]
            self._addresses["udp"] = sock.getsockname()[:2]
            reader = self._on_udp_pump if self._accept is None else self._on_udp_python
            self._loop.add_reader(sock.fileno(), reader, sock)
        if "tcp" in self._transports:
            server = await asyncio.start_server(
                self._on_tcp, self.host, port, reuse_address=True,
                reuse_port=self._reuse_port or None, limit=_core.DEFAULT_MAX_MESSAGE,
            )
            self._tcp_servers.append(server)
            self._addresses["tcp"] = server.sockets[0].getsockname()[:2]

    def _release(self) -> None:
        """Undo a partial _listen()."""
        for sock in self._udp_socks:
            if self._loop is not None:
                self._loop.remove_reader(sock.fileno())
            sock.close()
        self._udp_socks.clear()
        for server in self._tcp_servers:
            server.close()
        self._tcp_servers.clear()
        self._addresses.clear()

    def _bind_udp(self, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            if self._reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self.host, port))
        except OSError:
            sock.close()
            raise
        return sock

    async def close(self) -> None:
        """Stop serving; bindings are forgotten with the registrar."""
        if self._closed:
            return
        self._closed = True
        loop = self._loop
        for sock in self._udp_socks:
            if loop is not None:
                loop.remove_reader(sock.fileno())
            sock.close()
        self._udp_socks.clear()
        for server in self._tcp_servers:
            server.close()
        for writer in list(self._conns.values()):
            writer.close()
        if self._conn_tasks:
            # closed transports make each reader see EOF and return
            await asyncio.wait(set(self._conn_tasks), timeout=5)
        for server in self._tcp_servers:
            await server.wait_closed()
        self._tcp_servers.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._timer is not None:
            self._timer.cancel()
        for fut in self._event_waiters:
            if not fut.done():
                fut.set_result(None)

    # -- public state -------------------------------------------------------

    @property
    def address(self) -> Address:
        """(host, port) the registrar listens on (UDP if it has UDP)."""
        for t in _TRANSPORTS:
            if t in self._addresses:
                return self._addresses[t]
        raise RegistrarError("the registrar is not started")

    @property
    def addresses(self) -> dict[str, Address]:
        """Listening address per transport."""
        return dict(self._addresses)

    def set_password(self, device_id: str, secret: str | HA1) -> None:
        """Give one device its password (or stored HA1)."""
        if isinstance(secret, HA1):
            self._core.set_secret(device_id, secret.value, is_ha1=True)
        else:
            self._core.set_secret(device_id, secret)

    def forget_password(self, device_id: str) -> bool:
        return bool(self._core.forget_secret(device_id))

    @property
    def bindings(self) -> dict[str, Binding]:
        """Every current binding by device ID."""
        return {b.device_id: b for b in map(self._binding, self._core.bindings())}

    @property
    def devices(self) -> dict[str, Binding]:
        """Alias of :attr:`bindings`: the registered devices."""
        return self.bindings

    def binding(self, device_id: str) -> Binding | None:
        t = self._core.binding(device_id)
        return None if t is None else self._binding(t)

    def __len__(self) -> int:
        return int(self._core.binding_count())

    def stats(self) -> dict[str, int]:
        """Counters of the core (received, answered, challenges...)."""
        s = dict(self._core.stats())
        s["events_dropped_python"] = self.events_dropped
        s["tcp_connections"] = len(self._conns)
        return s

    def _binding(self, t: tuple[Any, ...]) -> Binding:
        (device_id, contact, _n, ua, call_id, cseq, src, expires_at, registered_at,
         last_ka, online) = t
        contacts = tuple(uri for uri, _ in self._core.contacts(device_id))
        return Binding(
            device_id=device_id,
            contact=contact,
            contacts=contacts,
            user_agent=ua,
            call_id=call_id,
            cseq=cseq,
            source=(src[0], src[1]),
            transport=_transport_name(src[2]),
            expires_at=expires_at / 1000,
            registered_at=registered_at / 1000,
            last_keepalive=last_ka / 1000 if last_ka else None,
            online=online,
        )

    # -- events -------------------------------------------------------------

    async def events(self) -> AsyncIterator[Event]:
        """Every event from now on, in order, until the registrar closes."""
        while True:
            while self._events:
                yield self._events.popleft()
            if self._closed:
                return
            fut = self._loop_or_running().create_future()
            self._event_waiters.append(fut)
            try:
                await fut
            finally:
                if fut in self._event_waiters:
                    self._event_waiters.remove(fut)

    async def wait_for(
        self,
        kind: type[Event] | tuple[type[Event], ...],
        device_id: str | None = None,
        timeout: float | None = 10.0,
    ) -> Event:
        """The next event of that kind (for that device), skipping others."""

        async def find() -> Event:
            async for ev in self.events():
                if isinstance(ev, kind) and (device_id is None or ev.device_id == device_id):
                    return ev
            raise RegistrarError("registrar closed while waiting for an event")

        return await asyncio.wait_for(find(), timeout)

    def _loop_or_running(self) -> asyncio.AbstractEventLoop:
        return self._loop or asyncio.get_running_loop()

    def _emit(self, ev: Event) -> None:
        if len(self._events) == self._events.maxlen:
            self.events_dropped += 1
        self._events.append(ev)
        for fut in self._event_waiters:
            if not fut.done():
                fut.set_result(None)
        self._event_waiters.clear()

    def _drain(self) -> None:
        for t in self._core.pop_events():
            (kind, device_id, status, expires, sn, time_ms, pending_id, src, reason,
             text, extra) = t
            source = (src[0], src[1]) if src[0] and src[1] else None
            transport = _transport_name(src[2])
            when = time_ms / 1000
            if kind == _EV_NEED_SECRET:
                self._spawn(self._lookup(pending_id, device_id, src))
                continue
            base = (device_id, source, transport, when)
            ev: Event
            if kind == 1:
                ev = Registered(*base, contact=text or "", expires=expires, user_agent=extra)
            elif kind == 2:
                ev = Refreshed(*base, contact=text or "", expires=expires, user_agent=extra)
            elif kind == 3:
                ev = Unregistered(*base)
            elif kind == 4:
                ev = Expired(*base)
            elif kind == 5:
                ev = AuthFailed(*base, reason=reason or "", status=status)
            elif kind == 6:
                ev = Rejected(*base, status=status, reason=reason)
            elif kind == 7:
                ev = Online(*base)
            elif kind == 8:
                ev = Offline(*base)
            elif kind == 9:
                ev = Keepalive(*base, sn=sn, status=text)
            elif kind == 10:
                ev = Message(*base, body=text or "")
            elif kind == 12:
                ev = Redirected(*base, target=text or "")
            else:
                continue
            self._emit(ev)

    # -- time ---------------------------------------------------------------

    def _now(self) -> tuple[int, int]:
        loop = self._loop_or_running()
        return int(loop.time() * 1000), int(self._clock() * 1000) + self._utc_offset_ms

    def _after(self) -> None:
        """After any input: publish events and re-arm the timer."""
        self._drain()
        deadline = self._core.next_deadline()
        if deadline is None:
            return
        at = deadline / 1000
        if self._timer_at is not None and self._timer_at <= at and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = self._loop_or_running().call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        at = self._timer_at or 0.0
        self._timer = None
        self._timer_at = None
        if self._closed:
            return
        now, _ = self._now()
        # loop.time() * 1000 can floor to a millisecond before the deadline
        # the timer was armed for; the core would then see nothing due and
        # the same timer would fire again at once, forever under a virtual
        # clock.  The loop woke because the deadline passed: say so.
        self._core.handle_timer(max(now, round(at * 1000)))
        self._after()

    # -- UDP ----------------------------------------------------------------

    def _on_udp_pump(self, sock: socket.socket) -> None:
        now, wall = self._now()
        try:
            self._core.pump_udp(sock.fileno(), now, wall)
        except OSError:
            pass  # an ICMP error surfaced on the socket; the next read goes on
        self._after()

    def _on_udp_python(self, sock: socket.socket) -> None:
        # With an accept hook each REGISTER visits Python before the core.
        for _ in range(256):
            try:
                data, addr = sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            answer = self._handle(data, addr[0], addr[1], 0, 0)
            if answer is not None:
                try:
                    sock.sendto(answer[0], (answer[1][0], answer[1][1]))
                except OSError:
                    pass
        self._after()

    def _handle(self, data: bytes, host: str, port: int, transport: int,
                conn_id: int) -> tuple[bytes, tuple[Any, ...]] | None:
        now, wall = self._now()
        if self._accept is not None:
            verdict = self._consult(data)
            if verdict is not None:
                return verdict
        return self._core.handle(data, host, port, transport, conn_id, now, wall)

    def _consult(self, data: bytes) -> tuple[bytes, tuple[Any, ...]] | None:
        assert self._accept is not None
        try:
            msg = _core.parse(data, lenient=self._lenient)
        except _core.SIPParseError:
            return None  # the core answers malformed requests
        if not isinstance(msg, _core.Request) or msg.method != "REGISTER":
            return None
        to = msg.to
        if to is None:
            return None
        device_id = _core.parse_uri(to.uri).user or ""
        decision = self._accept(device_id, msg)
        if decision is None:
            return None
        via = msg.via
        dest = (via.received or via.host, int(via.rport) if isinstance(via.rport, int) and
                not isinstance(via.rport, bool) else (via.port or 5060), 0, 0) if via else ("", 0, 0, 0)
        if isinstance(decision, Redirect):
            reply = msg.reply(302, headers=[("Contact", f"<{decision.target}>")])
            self._emit(Redirected(device_id, None, "udp", self._loop_or_running().time(),
                                  target=decision.target))
        else:
            reply = msg.reply(decision.status, decision.reason)
            self._emit(Rejected(device_id, None, "udp", self._loop_or_running().time(),
                                status=decision.status, reason=decision.reason))
        return bytes(reply), dest

    # -- TCP ----------------------------------------------------------------

    async def _on_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._conns) >= self._max_connections:
            writer.close()
            return
        conn_id = next(self._conn_ids)
        self._conns[conn_id] = writer
        task = asyncio.current_task()
        if task is not None:
            self._conn_tasks.add(task)
        peer = writer.get_extra_info("peername") or ("", 0)
        host, port = peer[0], peer[1]
        buf = bytearray()
        try:
            while not self._closed:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                buf += chunk
                while True:
                    try:
                        framed = _core.frame(buf, lenient=self._lenient)
                    except _core.SIPParseError as exc:
                        # A stream cannot resynchronise after garbage.
                        self._emit(Rejected(None, (host, port), "tcp",
                                            self._loop_or_running().time(),
                                            status=exc.status, reason=exc.reason))
                        return
                    if framed is None:
                        if len(buf) > _core.DEFAULT_MAX_MESSAGE:
                            return
                        # drop CRLF keep-alives that have piled up
                        stripped = buf.lstrip(b"\r\n")
                        if len(stripped) != len(buf):
                            del buf[: len(buf) - len(stripped)]
                        break
                    skip, length = framed
                    data = bytes(buf[skip: skip + length])
                    del buf[: skip + length]
                    answer = self._handle(data, host, port, 1, conn_id)
                    if answer is not None:
                        writer.write(answer[0])
                    self._after()
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._conns.pop(conn_id, None)
            if task is not None:
                self._conn_tasks.discard(task)
            writer.close()

    # -- secret lookups -----------------------------------------------------

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _lookup(self, pending_id: int, device_id: str | None, src: tuple[Any, ...]) -> None:
        source = self._passwords
        assert callable(source)
        try:
            secret = source(device_id or "")
            if inspect.isawaitable(secret):
                secret = await secret
        except Exception as exc:  # the user's lookup failed: refuse the device
            self._emit(AuthFailed(device_id, (src[0], src[1]), _transport_name(src[2]),
                                  self._loop_or_running().time(),
                                  reason=f"password lookup failed: {exc!r}", status=403))
            secret = None
        if self._closed:
            return
        if isinstance(secret, HA1):
            kind, value = 2, secret.value
        elif isinstance(secret, str):
            kind, value = 1, secret
        else:
            kind, value = 0, None
        now, wall = self._now()
        answer = self._core.resume(pending_id, kind, value, now, wall)
        if answer is not None:
            self._send(answer[0], answer[1])
        self._after()

    def _send(self, data: bytes, dest: tuple[Any, ...]) -> None:
        host, port, transport, conn_id = dest
        if transport == 1:
            writer = self._conns.get(conn_id)
            if writer is not None:
                writer.write(data)
            return
        for sock in self._udp_socks:
            try:
                sock.sendto(data, (host, port))
            except OSError:
                pass
            return
