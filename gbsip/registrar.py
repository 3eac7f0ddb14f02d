"""The GB/T 28181 platform role: a registrar driven from asyncio.

State lives in the C core (:class:`gbsip._core.RegistrarCore`); this module
owns the sockets, and the shared driver (``gbsip._drive``) owns the timer
and turns the core's events into :mod:`gbsip.events` values.  UDP datagrams
are received and answered in batches inside C (``recvmmsg``/``sendmmsg``),
and TCP connections are accepted, read, framed and answered in C through
one epoll instance (``csrc/io/tcp_pump.h``), so Python wakes once per
batch, not per packet or per connection.

    async with Registrar("34020000002000000001", port=0, passwords="12345678") as reg:
        async for event in reg.events():
            print(event)
"""
from __future__ import annotations

import asyncio
import dataclasses
import enum
import errno
import inspect
import logging
import socket
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, Union, overload

from gbsip import _core, _fdlimit, manscdp
from gbsip._drive import Clock, Driver, EventStream, Lifetime
from gbsip._drive.stream import INCOMPLETE_TIMEOUT
from gbsip._persist import BindingKeeper
from gbsip._platform import Platform, parse_subscription_state, query_fields, query_type
from gbsip.queries import ControlResult, QueryResult, SubscribeResult, Subscription
from gbsip.errors import ConfigurationError, LocalProtocolError, RegistrarError
from gbsip.store import BindingStore, open_store
from gbsip.events import (
    Address,
    AuthFailed,
    DeviceRedirected,
    DeviceRefreshed,
    DeviceRegistered,
    DeviceUnregistered,
    Expired,
    Keepalive,
    LockedOut,
    MessageReceived,
    Notified,
    Offline,
    Online,
    QueryCompleted,
    RegistrarEvent,
    Rejected,
)

__all__ = [
    "AuthFailed",
    "Binding",
    "DeviceRedirected",
    "DeviceRefreshed",
    "DeviceRegistered",
    "DeviceUnregistered",
    "Expired",
    "HA1",
    "Keepalive",
    "KeepalivePolicy",
    "LockedOut",
    "Lockout",
    "MessageReceived",
    "Offline",
    "Online",
    "Redirect",
    "Refresh",
    "Refuse",
    "Registrar",
    "RegistrarError",
    "RegistrarEvent",
    "Rejected",
]

E = TypeVar("E", bound=RegistrarEvent)
E2 = TypeVar("E2", bound=RegistrarEvent)
E3 = TypeVar("E3", bound=RegistrarEvent)
_log = logging.getLogger("gbsip.registrar")

# Names before 0.2, kept for one release (see CHANGELOG.md).
_DEPRECATED = {
    "Event": RegistrarEvent,
    "Registered": DeviceRegistered,
    "Refreshed": DeviceRefreshed,
    "Unregistered": DeviceUnregistered,
    "Redirected": DeviceRedirected,
    "Message": MessageReceived,
}


def __getattr__(name: str) -> Any:
    new = _DEPRECATED.get(name)
    if new is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"gbsip.registrar.{name} is deprecated: use gbsip.events.{new.__name__}",
                  DeprecationWarning, stacklevel=2)
    return new


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


class KeepalivePolicy(enum.Enum):
    """What a keepalive (or other MESSAGE) without credentials gets when it
    comes from another address than the device's binding.  It never moves
    the binding or brings the device online."""

    #: ``403``: the device registers again (Digest) to move.
    REFUSE = 0
    #: ``401``: the device may prove itself on the MESSAGE; valid
    #: credentials move the binding to the new address.
    CHALLENGE = 1


@dataclass(frozen=True)
class Lockout:
    """Password-guessing lockout (``Registrar(lockout=...)``).

    ``failures`` wrong Digest answers for one device from one address
    within ``window`` seconds, or ``source_failures`` from one address for
    any devices, lock that pair (or that address) out for ``duration``
    seconds: 403, counted, a :class:`LockedOut` event.  An address is an
    IPv4 address or an IPv6 /64.  A device answering right from its
    binding's own source is never refused.  ``slots`` bounds the table
    (about 100 bytes each).  0 turns a count off.
    """

    failures: int = 5
    source_failures: int = 100
    window: float = 60.0
    duration: float = 300.0
    slots: int = 16384


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
    expires_at: float          # Unix time (s)
    registered_at: float       # Unix time (s)
    last_keepalive: float | None  # Unix time (s)
    online: bool


_TRANSPORTS = ("udp", "tcp")
# The core's event codes (csrc registrar.h, gb_reg_event_type).
_EV_NEED_SECRET = 11
_EV_REJECTED = 6  # registrar.h GB_REG_EV_REJECTED
_EVENT_CODES: dict[type[RegistrarEvent], int] = {
    DeviceRegistered: 1, DeviceRefreshed: 2, DeviceUnregistered: 3, Expired: 4,
    AuthFailed: 5, Rejected: 6, Online: 7, Offline: 8, Keepalive: 9, MessageReceived: 10,
    DeviceRedirected: 12, LockedOut: 13, Notified: 16,
}
# Codes the platform side needs even when the user records fewer kinds:
# MESSAGE (a query's answer parts), REQUEST_ANSWERED, REQUEST_TIMEOUT.
_PLATFORM_CODES = (10, 14, 15)
# Events a peer causes without proving who it is (or routine ones): the
# first to go when the queue is full, and bounded by bytes (the core's rule).
_PEER_EVENTS = (AuthFailed, Rejected, Keepalive, MessageReceived, DeviceRedirected, LockedOut,
                Notified)


_UNPROVEN_EVENTS = (AuthFailed, Rejected, DeviceRedirected, LockedOut)


def _peer_weight(ev: RegistrarEvent) -> tuple[int, bool] | None:
    """Bytes a peer-triggered event holds in the queue and whether its
    sender proved nothing (those go first); None for the others."""
    if isinstance(ev, (MessageReceived, Notified)):
        return 200 + len(ev.body), False
    if isinstance(ev, _PEER_EVENTS):
        return 200, isinstance(ev, _UNPROVEN_EVENTS)
    return None


_EVENT_NAMES = {code: cls.__name__ for cls, code in _EVENT_CODES.items()}


def _event_mask(events: Iterable[type[RegistrarEvent]] | None) -> int:
    """Core event mask for the kinds to record (None: all)."""
    if events is None:
        return 0
    mask = 1 << 31  # a bit no event uses, so an empty selection records nothing
    for kind in events:
        if kind in _EVENT_CODES:
            mask |= 1 << _EVENT_CODES[kind]
    for code in _PLATFORM_CODES:
        mask |= 1 << code
    return mask


def _transport_name(code: int) -> str:
    return _TRANSPORTS[code] if 0 <= code < len(_TRANSPORTS) else "?"


# One constructor per core event code: (device_id, common, status, expires,
# sn, reason, text, extra) -> event.  `common` holds source, transport, time.
_Maker = Callable[[Any, dict[str, Any], int, int, int, Any, Any, Any], RegistrarEvent]
_MAKERS: dict[int, _Maker] = {
    1: lambda d, c, st, ex, sn, r, t, x: DeviceRegistered(
        t or "", ex, x, device_id=d or "", **c),
    2: lambda d, c, st, ex, sn, r, t, x: DeviceRefreshed(
        t or "", ex, x, device_id=d or "", **c),
    3: lambda d, c, st, ex, sn, r, t, x: DeviceUnregistered(device_id=d or "", **c),
    4: lambda d, c, st, ex, sn, r, t, x: Expired(device_id=d or "", **c),
    5: lambda d, c, st, ex, sn, r, t, x: AuthFailed(r or "", st, device_id=d, **c),
    6: lambda d, c, st, ex, sn, r, t, x: Rejected(st, r, device_id=d, **c),
    7: lambda d, c, st, ex, sn, r, t, x: Online(device_id=d or "", **c),
    8: lambda d, c, st, ex, sn, r, t, x: Offline(device_id=d or "", **c),
    9: lambda d, c, st, ex, sn, r, t, x: Keepalive(sn, t, device_id=d or "", **c),
    10: lambda d, c, st, ex, sn, r, t, x: MessageReceived(t or "", device_id=d, **c),
    12: lambda d, c, st, ex, sn, r, t, x: DeviceRedirected(t or "", device_id=d, **c),
    13: lambda d, c, st, ex, sn, r, t, x: LockedOut(
        "device" if d else "source", sn, float(ex), device_id=d, **c),
    16: lambda d, c, st, ex, sn, r, t, x: _notified(d, c, t, x),
}


def _notified(device_id: str | None, common: dict[str, Any], body: str | None,
              extra: str | None) -> Notified:
    """The NOTIFY event from the core's extra: the Event header, a newline,
    the Call-ID and, when the NOTIFY has one, a newline and the
    Subscription-State header."""
    event, _, rest = (extra or "").partition("\n")
    call_id, _, header = rest.partition("\n")
    state = reason = None
    expires: int | None = None
    if header.strip():
        state, params = parse_subscription_state(header)
        reason = params.get("reason")
        expires = int(params["expires"]) if params.get("expires", "").isdigit() else None
    return Notified(event, body or "", device_id=device_id, call_id=call_id, state=state,
                    state_reason=reason, state_expires=expires, **common)


class Registrar(Lifetime):
    """A GB/T 28181 registrar (platform) on UDP and/or TCP.

    ``passwords`` is one shared password (as many GB platforms use), a
    mapping of device ID to password (or :class:`HA1`), or a callable
    (sync or async) ``device_id -> password | HA1 | None``.  ``port=0``
    picks a free port; read it from :attr:`address` once started.
    ``events`` limits which event kinds are recorded (default: all; an
    empty tuple records none, for load tests).  ``on_event`` (or
    :meth:`add_listener`) sees every recorded event as it happens.
    ``store`` keeps the bindings across restarts (a :mod:`gbsip.store`
    store, a file path for SQLite or ``redis://host:port/db``): loaded on
    start, changes written every ``store_flush_interval`` seconds, rows
    tagged with ``node`` so several registrars can share one store.
    TCP (GB/T 28181-2022's persistent connection) runs in C: at most
    ``max_connections`` at once (None: as many as the file-descriptor limit
    allows; more are accepted, closed and counted in ``stats()``), a message
    may wait ``tcp_incomplete_timeout`` seconds for the rest of its bytes
    (from its first; a slow sender too) before it is answered 400 and the
    connection closed, a connection nothing arrives on closes after
    ``tcp_idle_timeout`` seconds (None: keepalive interval x (timeout count
    + 2), at least 300 s; 0: never), and the partial messages and unsent
    answers of all connections hold at most ``tcp_buffer_limit`` bytes (past
    it the oldest partial message is refused first).  ``raise_fd_limit``
    raises the soft RLIMIT_NOFILE to the hard limit when
    ``max_connections`` needs more; when the limit still falls short, start()
    logs one line saying what is needed and how to raise it.
    ``reuse_port`` lets several registrar processes share one port
    (SO_REUSEPORT); the kernel sends each source address to one of them,
    and each keeps its own bindings.  A registrar runs once: after
    :meth:`close` make a new one.  Security knobs (``require_qop``,
    ``keepalive_policy``, ``lockout``, ``max_event_bytes``,
    ``peer_event_rate``, ``max_contact_bytes``): docs/registrar.md,
    section Security.
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
        require_qop: bool = True,
        refresh: Refresh = Refresh.CHALLENGE,
        keepalive_policy: KeepalivePolicy = KeepalivePolicy.REFUSE,
        lockout: Lockout | None = Lockout(),
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
        max_event_bytes: int = 64 << 20,
        peer_event_rate: int = 1000,
        max_contact_bytes: int = 1024,
        max_connections: int | None = 10000,
        tcp_incomplete_timeout: float = INCOMPLETE_TIMEOUT,
        tcp_idle_timeout: float | None = None,
        tcp_buffer_limit: int = 64 << 20,
        raise_fd_limit: bool = False,
        rate_per_source: int = 0,
        lenient: int = 0,
        keepalive_events: bool = True,
        events: Iterable[type[RegistrarEvent]] | None = None,
        on_event: Callable[[RegistrarEvent], object] | None = None,
        reuse_port: bool = False,
        seed: int | None = None,
        store: BindingStore | str | None = None,
        store_flush_interval: float = 1.0,
        node: str = "",
        query_on_register: Iterable[str] = (),
        max_requests: int = 4096,
        request_t1: float = 0.5,
    ) -> None:
        transports = tuple(t.lower() for t in transports)
        for t in transports:
            if t not in _TRANSPORTS:
                raise ConfigurationError(f"unknown transport {t!r}: use 'udp' and/or 'tcp'")
        if not transports:
            raise ConfigurationError("at least one transport is needed")
        if qop not in (None, "auth"):
            raise ConfigurationError("qop must be None or 'auth'")
        if keepalive_interval <= 0 and keepalive_timeout_count:
            raise ConfigurationError("keepalive_interval must be positive")
        if lockout is not None and (lockout.window <= 0 or lockout.duration <= 0 or
                                    lockout.slots <= 0):
            raise ConfigurationError("lockout: window, duration and slots must be positive")
        lock = lockout or Lockout(failures=0, source_failures=0)
        if max_connections is not None and max_connections < 1:
            raise ConfigurationError("max_connections must be at least 1 (None: as many as "
                                     "the file-descriptor limit allows)")
        if tcp_idle_timeout is None:
            tcp_idle_timeout = max(300.0, keepalive_interval * (keepalive_timeout_count + 2))
        self.server_id = server_id
        self.host = host
        self._port = port
        self._transports = transports
        self._passwords = passwords
        self._accept = accept
        self._utc_offset_ms = int(utc_offset.total_seconds() * 1000)
        self._wall = clock
        self._max_connections = max_connections
        self._tcp_options = {
            "incomplete_ms": max(0, round(tcp_incomplete_timeout * 1000)),
            "idle_ms": max(0, round(tcp_idle_timeout * 1000)),
            "max_buffered": tcp_buffer_limit,
            "lenient": lenient,
        }
        self._raise_fd_limit = raise_fd_limit
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
            require_qop=require_qop,
            refresh_policy=refresh.value,
            keepalive_policy=keepalive_policy.value,
            lockout_failures=lock.failures,
            lockout_source_failures=lock.source_failures,
            lockout_window_ms=int(lock.window * 1000),
            lockout_ms=int(lock.duration * 1000),
            lockout_slots=lock.slots,
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
            max_event_bytes=max_event_bytes,
            peer_event_rate=peer_event_rate,
            max_contact_bytes=max_contact_bytes,
            rate_per_source=rate_per_source,
            lenient=lenient,
            server_header=server_header,
            keepalive_events=keepalive_events,
            event_mask=_event_mask(events),
            max_requests=max_requests,
            request_t1_ms=max(1, int(request_t1 * 1000)),
        )
        if max_requests <= 0:
            raise ConfigurationError("max_requests must be positive")
        self._max_requests = max_requests
        # kinds the user asked to record (None: all); the platform side
        # needs some more from the core, which are then not published
        self._recorded = None if events is None else frozenset(events)
        self._platform = Platform(self, query_on_register=tuple(query_on_register))
        self._policy_slots: asyncio.Semaphore | None = None
        if isinstance(passwords, Mapping):
            for device_id, secret in passwords.items():
                self.set_password(device_id, secret)
        self.realm = realm or server_id[:10]
        self._stream: EventStream[RegistrarEvent] = EventStream(
            max_events, max_bytes=max_event_bytes, minor=_peer_weight)
        if on_event is not None:
            self._stream.add_listener(on_event)
        self._clock: Clock | None = None
        self._driver: Driver | None = None
        self._udp_socks: list[socket.socket] = []
        self._tcp_socks: list[socket.socket] = []
        self._tcp_fd: int | None = None  # the TCP pump's epoll fd
        self._tcp_max = 0
        self._tcp_final: dict[str, Any] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._addresses: dict[str, Address] = {}
        self._state = "new"  # -> running -> closed
        if isinstance(store, str):
            store = open_store(store)
        self._keeper = None if store is None else BindingKeeper(
            self._core, store, node=node, interval=store_flush_interval)
        #: While True, events are only counted (:attr:`suppressed`) instead of
        #: becoming event objects: nothing is queued or sent to listeners.
        #: For a display that cannot keep up (``gbsip serve`` on a terminal).
        self.suppress_events = False
        #: Events counted while :attr:`suppress_events`, by class name.
        self.suppressed: dict[str, int] = {}

    # -- lifetime -----------------------------------------------------------

    async def start(self) -> None:
        """Bind the sockets and start serving."""
        if self._state != "new":
            raise LocalProtocolError(
                "this Registrar is already running" if self._state == "running" else
                "a closed Registrar cannot start again: create a new Registrar")
        loop = asyncio.get_running_loop()
        self._clock = Clock(loop, self._wall)
        self._driver = Driver(self._clock, deadline=self._core.next_deadline,
                              fire=self._core.handle_timer, flush=self._drain)
        self._state = "running"
        if self._keeper is not None:
            try:
                await self._keeper.restore(self._clock)
            except BaseException:
                await self.close()
                raise
            self._keeper.start()
        self._still_running()
        # With port=0 and both transports, UDP picks a free port and TCP must
        # get the same one; another process may hold it for TCP, so retry.
        attempts = 20 if self._port == 0 and len(self._transports) > 1 else 1
        for attempt in range(attempts):
            try:
                await self._listen(self._port)
            except OSError as exc:
                port = self._addresses.get("udp", (None, self._port))[1]
                self._stop_listening()
                if attempt + 1 < attempts and exc.errno == errno.EADDRINUSE:
                    continue
                await self.close()
                raise RegistrarError(
                    f"cannot listen on {self.host}:{port} ({exc.strerror or exc}); "
                    "choose another port or port=0 for a free one"
                ) from exc
            if self._state != "running":
                self._stop_listening()
            self._still_running()
            return

    def _still_running(self) -> None:
        """After each await of start(): a close() meanwhile wins."""
        if self._state != "running":
            raise LocalProtocolError("the Registrar was closed while it was starting")

    async def _listen(self, port: int) -> None:
        loop = self._loop()
        if "udp" in self._transports:
            sock = self._bind_udp(port)
            self._udp_socks.append(sock)
            port = port or sock.getsockname()[1]
            self._addresses["udp"] = sock.getsockname()[:2]
            reader = self._on_udp_pump if self._accept is None else self._on_udp_python
            loop.add_reader(sock.fileno(), reader, sock)
        if "tcp" in self._transports:
            sock = self._bind_tcp(port)
            self._tcp_socks.append(sock)
            self._addresses["tcp"] = sock.getsockname()[:2]
            self._open_tcp()
            self._core.tcp_listen(sock.fileno())

    def _stop_listening(self) -> None:
        """Close the listening sockets (all, or what a failed _listen()
        opened); TCP connections stay until close()."""
        loop = self._loop()
        for sock in self._udp_socks:
            loop.remove_reader(sock.fileno())
            sock.close()
        self._udp_socks.clear()
        for sock in self._tcp_socks:
            self._core.tcp_unlisten(sock.fileno())
            sock.close()
        self._tcp_socks.clear()
        self._addresses.clear()

    def _bind_tcp(self, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self._reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self.host, port))
            sock.listen(4096)
        except OSError:
            sock.close()
            raise
        return sock

    def _open_tcp(self) -> None:
        """The C pump for every TCP connection, its epoll fd watched by the loop."""
        if self._tcp_fd is not None:
            return
        room = _fdlimit.make_room(-1 if self._max_connections is None else
                                  self._max_connections, raise_limit=self._raise_fd_limit)
        limit = self._max_connections
        if limit is None:
            limit = max(1, room)
        elif room < limit:
            _log.warning("gbsip: %s", _fdlimit.shortage(
                f"TCP with max_connections={limit}", limit))
        self._tcp_max = limit
        self._tcp_fd = self._core.tcp_open(self._accept is not None, max_connections=limit,
                                           **self._tcp_options)
        self._loop().add_reader(self._tcp_fd, self._on_tcp)

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
        """Stop serving; bindings are forgotten with the registrar.  A
        second call does nothing."""
        if self._state == "closed":
            return
        was_running = self._state == "running"
        self._state = "closed"
        if self._driver is not None:
            self._driver.close()
        self._platform.close()
        if was_running:
            self._stop_listening()
            if self._tcp_fd is not None:
                self._loop().remove_reader(self._tcp_fd)
                self._tcp_fd = None
            self._tcp_final = self._core.tcp_stats()  # stats() after close
            self._core.tcp_shutdown()
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._keeper is not None:
            await self._keeper.close()
        self._stream.close()

    # -- public state -------------------------------------------------------

    @property
    def address(self) -> Address:
        """(host, port) the registrar listens on (UDP if it has UDP)."""
        for t in _TRANSPORTS:
            if t in self._addresses:
                return self._addresses[t]
        raise LocalProtocolError("the registrar is not started")

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

    def stats(self) -> dict[str, Any]:
        """Counters of the core (received, answered, challenges...)."""
        s = dict(self._core.stats())
        s["events_dropped_python"] = self._stream.dropped
        tcp = self._core.tcp_stats() or self._tcp_final
        s["tcp_connections"] = tcp["open"] if tcp and self._tcp_fd is not None else 0
        if tcp:
            s["tcp_max_connections"] = self._tcp_max
            for k in ("accepted", "refused_max", "refused_fd_limit", "messages_in", "refusals",
                      "buffered", "buffered_peak", "open_peak", "send_gone"):
                s[f"tcp_{k}"] = tcp[k]
            for why, n in tcp["closed"].items():
                s[f"tcp_closed_{why}"] = n
        s.update(self._core.request_stats())
        if self._keeper is not None:
            s.update(self._keeper.stats())
        return s

    def drops(self) -> dict[str, int]:
        """Requests left unanswered, by reason: ``rate``, ``no_via``,
        ``response``, ``pending_full``, ``in_progress``, ``truncated``,
        ``tcp_unanswerable`` (TCP garbage closed without an answer)...,
        and ``unparseable:<SIPParseError.code>`` for ones that do not parse."""
        return dict(self._core.drops())

    def _binding(self, t: tuple[Any, ...]) -> Binding:
        (device_id, contact, _n, ua, call_id, cseq, src, expires_at, registered_at,
         last_ka, online) = t
        contacts = tuple(uri for uri, _ in self._core.contacts(device_id))
        unix = self._unix
        return Binding(
            device_id=device_id,
            contact=contact,
            contacts=contacts,
            user_agent=ua,
            call_id=call_id,
            cseq=cseq,
            source=(src[0], src[1]),
            transport=_transport_name(src[2]),
            expires_at=unix(expires_at),
            registered_at=unix(registered_at),
            last_keepalive=unix(last_ka) if last_ka else None,
            online=online,
        )

    # -- events -------------------------------------------------------------

    def events(self) -> AsyncIterator[RegistrarEvent]:
        """Every event not yet taken, in order, then new ones as they happen,
        until the registrar closes."""
        return self._stream.__aiter__()

    # wait_for(A) is an A; wait_for((A, B)) an A | B (not their base class)
    @overload
    async def wait_for(self, kind: type[E], device_id: str | None = None,
                       timeout: float | None = 10.0) -> E: ...

    @overload
    async def wait_for(self, kind: tuple[type[E], type[E2]], device_id: str | None = None,
                       timeout: float | None = 10.0) -> E | E2: ...

    @overload
    async def wait_for(self, kind: tuple[type[E], type[E2], type[E3]],
                       device_id: str | None = None,
                       timeout: float | None = 10.0) -> E | E2 | E3: ...

    @overload
    async def wait_for(self, kind: tuple[type[E], ...], device_id: str | None = None,
                       timeout: float | None = 10.0) -> E: ...

    async def wait_for(self, kind: type[RegistrarEvent] | tuple[type[RegistrarEvent], ...],
                       device_id: str | None = None,
                       timeout: float | None = 10.0) -> RegistrarEvent:
        """The next event of that kind, or of one of those kinds (for that
        device), not yet taken from :meth:`events`; the events before it are
        taken too."""
        return await self._stream.wait_for(kind, device_id, timeout)

    def add_listener(self, listener: Callable[[RegistrarEvent], object]) -> Callable[[], None]:
        """Call ``listener(event)`` for every event from now on, consumed or
        not (a recorder, a logger); returns a function that removes it."""
        return self._stream.add_listener(listener)

    @property
    def events_dropped(self) -> int:
        """Events thrown away because nobody took them and the queue was full."""
        return self._stream.dropped

    def _loop(self) -> asyncio.AbstractEventLoop:
        if self._clock is None:
            raise LocalProtocolError("the registrar is not started")
        return self._clock.loop

    def _unix(self, ms: int) -> float:
        return self._clock.unix(ms) if self._clock is not None else ms / 1000.0

    def _now(self) -> tuple[int, int]:
        """(monotonic ms for timers, the platform's local wall ms for Date)."""
        assert self._clock is not None
        return self._clock.now_ms(), int(self._wall() * 1000) + self._utc_offset_ms

    def _drain(self) -> None:
        """The driver's flush: the core's events become Python events."""
        publish = self._stream.publish
        platform = self._platform
        self._flush_requests()
        for (kind, device_id, status, expires, sn, time_ms, pending_id, src, reason,
             text, extra) in self._core.pop_events():
            if kind == _EV_NEED_SECRET:
                self._spawn(self._lookup(pending_id, device_id, src))
                continue
            if kind >= 10 and platform.on_core_event(kind, device_id, status, expires,
                                                     pending_id, text, extra):
                continue
            if kind == _EV_REJECTED and sn and device_id:
                platform.on_refused(device_id, sn, status, reason)
            make = _MAKERS.get(kind)
            if make is None:
                continue
            if kind == 1 and platform.query_on_register and device_id:
                self._spawn(self._policy_queries(device_id))
            if self._recorded is not None and kind in _PLATFORM_CODES and \
                    MessageReceived not in self._recorded:
                continue
            if self.suppress_events:
                name = _EVENT_NAMES[kind]
                self.suppressed[name] = self.suppressed.get(name, 0) + 1
                continue
            common = {
                "source": (src[0], src[1]) if src[0] and src[1] else None,
                "transport": _transport_name(src[2]),
                "time": self._unix(time_ms),
            }
            ev = make(device_id, common, status, expires, sn, reason, text, extra)
            if isinstance(ev, Notified):
                sub = platform.notified(ev.call_id, ev.state, ev.state_expires)
                if sub is not None:
                    ev = dataclasses.replace(ev, subscription=sub)
            publish(ev)

    def _publish_now(self, ev: RegistrarEvent) -> None:
        self._stream.publish(ev)

    # -- the platform side: requests to devices ------------------------------

    async def query(self, device_id: str, cmd_type: str, *, timeout: float = 10.0,
                    start_time: str | None = None, end_time: str | None = None,
                    config_type: str = "BasicParam", record_type: str = "all",
                    target: str | None = None, fields: Iterable[manscdp.Field] = (),
                    charset: str = "GB2312") -> QueryResult:
        """Query a registered device (GB/T 28181 §9.5) and wait for the
        whole answer.

        ``cmd_type`` is ``"Catalog"``, ``"DeviceInfo"``, ``"DeviceStatus"``,
        ``"RecordInfo"`` (with ``start_time``/``end_time``),
        ``"ConfigDownload"`` (``config_type``, default BasicParam) or
        ``"PresetQuery"`` (any case).  Sends the MESSAGE to the device's
        binding, waits for its SIP answer and every part of its
        ``<Response>`` (Catalog and RecordInfo parts by ``SumNum``, in any
        order, duplicates ignored), at most ``timeout`` seconds.  A refusal,
        a timeout or a partial answer is a :class:`gbsip.queries.QueryResult`
        saying what came and what is missing; an unregistered device raises
        :class:`gbsip.errors.NotRegisteredError`.  ``target`` puts another
        DeviceID (a channel) in the body."""
        cmd = query_type(cmd_type)
        body_fields = query_fields(cmd, start_time, end_time, config_type, record_type)
        body_fields += list(fields)
        return await self._platform.query(device_id, cmd, timeout=timeout, target=target,
                                          fields=body_fields, charset=charset)

    async def control(self, device_id: str, command: manscdp.ControlCommand, *,
                      timeout: float = 10.0, target: str | None = None,
                      charset: str = "GB2312") -> ControlResult:
        """Send a DeviceControl command (GB/T 28181 §9.3):
        ``manscdp.PTZ(pan=..)``, ``TeleBoot()``, ``RecordCmd()``,
        ``GuardCmd()``, ``AlarmCmd()``.  Waits for the SIP answer and, for
        the commands the standard answers with a ``<Response>``, for its
        ``Result``; returns a :class:`gbsip.queries.ControlResult`."""
        return await self._platform.control(device_id, command, timeout=timeout,
                                            target=target, charset=charset)

    async def subscribe(self, device_id: str, cmd_type: str, *, expires: int = 3600,
                        interval: int | None = None, timeout: float = 10.0,
                        target: str | None = None, event: str | None = None,
                        fields: Iterable[manscdp.Field] = (),
                        charset: str = "GB2312", refresh: bool = False) -> SubscribeResult:
        """Subscribe to a device's ``"Catalog"``, ``"Alarm"`` or
        ``"MobilePosition"`` (GB/T 28181 §9.11; ``interval`` seconds between
        positions).  Its NOTIFYs arrive as :class:`gbsip.events.Notified`
        events carrying the subscription (``call_id``, ``subscription``).
        The result's ``subscription`` refreshes
        (:meth:`refresh_subscription`) and ends (:meth:`unsubscribe`);
        with ``refresh=True`` the registrar refreshes it itself, in its
        dialog, at 2/3 of each granted Expires, until it is unsubscribed,
        refused, or the registrar closes."""
        result = await self._platform.subscribe(
            device_id, cmd_type, expires=expires, interval=interval, timeout=timeout,
            target=target, event=event, fields=list(fields), charset=charset)
        if refresh and result.subscription is not None:
            self._platform.keep(result.subscription, timeout)
        return result

    @property
    def subscriptions(self) -> dict[str, Subscription]:
        """The live subscriptions of :meth:`subscribe`, by Call-ID (a copy):
        granted and not yet ended, refused or closed, nor expired without
        a refresh, nor terminated by the device (a NOTIFY with
        ``Subscription-State: terminated``, RFC 6665 §4.1.3)."""
        return dict(self._platform.subscriptions)

    async def refresh_subscription(self, subscription: Subscription, *,
                                   expires: int | None = None,
                                   timeout: float = 10.0) -> SubscribeResult:
        """Refresh a subscription in its dialog (same Call-ID and tags, next
        CSeq) for ``expires`` seconds (default: what was granted)."""
        return await self._platform.subscribe(
            subscription.device_id, subscription.cmd_type,
            expires=subscription.expires if expires is None else expires, interval=None,
            timeout=timeout, target=None, event=None, fields=(), charset="GB2312",
            subscription=subscription)

    async def unsubscribe(self, subscription: Subscription, *,
                          timeout: float = 10.0) -> SubscribeResult:
        """End a subscription: SUBSCRIBE with ``Expires: 0`` in its dialog."""
        return await self.refresh_subscription(subscription, expires=0, timeout=timeout)

    def _flush_requests(self) -> set[int]:
        """Send what the core queued: requests to devices, retransmissions.
        The TCP connections (ids) found closed on the way."""
        closed: set[int] = set()
        for data, dest in self._core.take_output():
            if not self._send(data, dest):
                closed.add(dest[3])
        return closed

    def _publish_query(self, result: QueryResult) -> None:
        if self._state != "running" or self.suppress_events:
            return
        if self._recorded is not None and QueryCompleted not in self._recorded:
            return
        assert self._clock is not None
        b = self._core.binding(result.device_id)
        src = b[6] if b is not None else None
        self._stream.publish(QueryCompleted(
            result, device_id=result.device_id,
            source=(src[0], src[1]) if src else None,
            transport=_transport_name(src[2]) if src else "udp",
            time=self._clock.unix_now()))

    async def _policy_queries(self, device_id: str) -> None:
        """query_on_register: what WVP asks a device after its first
        registration (DeviceInfo, then Catalog), one after the other.  At
        most half of ``max_requests`` devices are asked at once; the rest
        wait their turn (a fleet registering is not turned away)."""
        if self._policy_slots is None:
            self._policy_slots = asyncio.Semaphore(max(1, self._max_requests // 2))
        async with self._policy_slots:
            for cmd in self._platform.query_on_register:
                if self._state != "running":
                    return
                try:
                    await self.query(device_id, cmd)
                except LocalProtocolError:
                    return  # gone meanwhile

    def _common(self, source: Address | None, transport: str) -> dict[str, Any]:
        assert self._clock is not None
        return {"source": source, "transport": transport, "time": self._clock.unix_now()}

    # -- UDP ----------------------------------------------------------------

    def _on_udp_pump(self, sock: socket.socket) -> None:
        assert self._driver is not None
        now, wall = self._now()
        try:
            self._core.pump_udp(sock.fileno(), now, wall)
        except OSError:
            pass  # an ICMP error surfaced on the socket; the next read goes on
        self._driver.settle()

    def _on_udp_python(self, sock: socket.socket) -> None:
        # With an accept hook each REGISTER visits Python before the core.
        assert self._driver is not None
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
        self._driver.settle()

    def _handle(self, data: bytes, host: str, port: int, transport: int,
                conn_id: int) -> tuple[bytes, tuple[Any, ...]] | None:
        now, wall = self._now()
        if self._accept is not None:
            verdict = self._consult(data, (host, port), _transport_name(transport))
            if verdict is not None:
                return verdict
        return self._core.handle(data, host, port, transport, conn_id, now, wall)

    def _consult(self, data: bytes, source: Address,
                 transport: str) -> tuple[bytes, tuple[Any, ...]] | None:
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
        # to the packet's source, as the core answers: never where Via says
        # (a forged Via would aim the answer at someone else)
        dest = (source[0], source[1], 0, 0)
        common = self._common(source, transport)
        if isinstance(decision, Redirect):
            reply = msg.reply(302, headers=[("Contact", f"<{decision.target}>")])
            self._publish_now(DeviceRedirected(decision.target, device_id=device_id, **common))
        else:
            reply = msg.reply(decision.status, decision.reason)
            self._publish_now(Rejected(decision.status, decision.reason, device_id=device_id,
                                       **common))
        return bytes(reply), dest

    # -- TCP ----------------------------------------------------------------

    def _on_tcp(self) -> None:
        """The pump's epoll fd is readable: one C call accepts, reads, frames
        and answers a batch of ready connections."""
        assert self._driver is not None
        now, wall = self._now()
        try:
            self._core.pump_tcp(now, wall)
        except OSError:
            pass
        if self._accept is not None:
            # deliver mode: each request visits the accept hook first
            for data, (host, port, _transport, conn_id) in self._core.tcp_frames():
                answer = self._handle(data, host, port, 1, conn_id)
                if answer is not None:
                    self._core.tcp_send(conn_id, answer[0])
        self._driver.settle()

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
            self._publish_now(AuthFailed(
                f"password lookup failed: {exc!r}", 403, device_id=device_id,
                **self._common((src[0], src[1]), _transport_name(src[2]))))
            secret = None
        if self._state != "running":
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
        assert self._driver is not None
        self._driver.settle()

    def _send(self, data: bytes, dest: tuple[Any, ...]) -> bool:
        """Send data to dest; False when dest is a TCP connection that is
        closed (or TCP is not open)."""
        host, port, transport, conn_id = dest
        if transport == 1:
            return self._tcp_fd is not None and bool(self._core.tcp_send(conn_id, data))
        for sock in self._udp_socks:
            try:
                sock.sendto(data, (host, port))
            except OSError:
                pass
            break
        return True
