"""Every event gbsip reports, in one place.

Events are small frozen values with a useful repr, so a test reads
``assert ev == Challenged(401, False, device_id=ID)``.  Two families share
the :class:`Event` base:

- :class:`RegistrarEvent`: what the platform (:class:`gbsip.Registrar`) saw
  a device do: ``DeviceRegistered``, ``DeviceRefreshed``, ``Keepalive``,
  ``Offline``...  Each carries the device's source address and transport.
- :class:`DeviceEvent`: what happened to a camera (:class:`gbsip.Device`, or
  one device of a :class:`gbsip.Simulator`): ``Registered``, ``Challenged``,
  ``KeepaliveAnswered``...

Where the two views of one step differ, the names differ: the platform sees
``DeviceRegistered`` when the camera sees ``Registered``.

``time`` is Unix time in seconds (wall clock, the clock ``Device.expires_at``
and ``Binding.expires_at`` use); intervals (``latency``, ``retry_in``) are
measured on the loop's monotonic clock.  ``time`` and ``latency`` are
measurements, not what happened: they are left out of ``==`` so expected
events can be written without them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gbsip.manscdp import Document
    from gbsip.queries import QueryResult, Subscription

__all__ = [
    "Address",
    "AnswerFailed",
    "AnswerSent",
    "AuthFailed",
    "Challenged",
    "ControlReceived",
    "DeviceEvent",
    "DeviceRedirected",
    "DeviceRefreshed",
    "DeviceRegistered",
    "DeviceUnregistered",
    "Event",
    "Expired",
    "Failed",
    "Keepalive",
    "KeepaliveAnswered",
    "KeepaliveMissed",
    "KeepaliveSent",
    "KeepaliveTimeout",
    "LockedOut",
    "MessageReceived",
    "Notified",
    "Offline",
    "Online",
    "QueryCompleted",
    "QueryReceived",
    "Redirected",
    "Refreshed",
    "Registered",
    "RegistrarEvent",
    "Rejected",
    "RequestRefused",
    "Subscribed",
    "SubscriptionEnded",
    "Unregistered",
]

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every gbsip event.  ``device_id`` is ``None`` only where the
    message it came from named no device (garbage, a stray request)."""

    device_id: str | None = field(default=None, kw_only=True)
    #: Unix time (s) at which it happened; not compared by ``==``.
    time: float = field(default=0.0, kw_only=True, compare=False)


# --------------------------------------------------------------------------
# The platform's view (gbsip.Registrar)


@dataclass(frozen=True, slots=True)
class RegistrarEvent(Event):
    """Something a :class:`gbsip.Registrar` saw; ``source`` is the packet's
    address (``None`` when not known) and ``transport`` ``"udp"``/``"tcp"``."""

    source: Address | None = field(default=None, kw_only=True)
    transport: str = field(default="udp", kw_only=True)


@dataclass(frozen=True, slots=True)
class DeviceRegistered(RegistrarEvent):
    """A device registered (GB/T 28181 §9.1.2.1)."""

    contact: str
    expires: int
    user_agent: str | None
    device_id: str = field(default="", kw_only=True)


@dataclass(frozen=True, slots=True)
class DeviceRefreshed(RegistrarEvent):
    """A registered device renewed its binding."""

    contact: str
    expires: int
    user_agent: str | None
    device_id: str = field(default="", kw_only=True)


@dataclass(frozen=True, slots=True)
class DeviceUnregistered(RegistrarEvent):
    """A device removed its binding (``Expires: 0``, GB/T 28181 §9.1.2.2)."""

    device_id: str = field(default="", kw_only=True)


@dataclass(frozen=True, slots=True)
class Expired(RegistrarEvent):
    """A binding reached its expiry without a refresh."""

    device_id: str = field(default="", kw_only=True)


@dataclass(frozen=True, slots=True)
class AuthFailed(RegistrarEvent):
    """Credentials were refused; ``status`` is what the device was answered."""

    reason: str
    status: int


@dataclass(frozen=True, slots=True)
class Rejected(RegistrarEvent):
    """A request was refused as malformed or not acceptable (``status`` 0:
    dropped without an answer)."""

    status: int
    reason: str | None


@dataclass(frozen=True, slots=True)
class Online(RegistrarEvent):
    """A device came back after being offline."""

    device_id: str = field(default="", kw_only=True)


@dataclass(frozen=True, slots=True)
class Offline(RegistrarEvent):
    """A device missed ``keepalive_timeout_count`` keepalives (GB/T 28181 §9.6.1)."""

    device_id: str = field(default="", kw_only=True)


@dataclass(frozen=True, slots=True)
class Keepalive(RegistrarEvent):
    """A keepalive MESSAGE was answered 200 (GB/T 28181 §9.6.1)."""

    sn: int
    status: str | None
    device_id: str = field(default="", kw_only=True)


@dataclass(frozen=True, slots=True)
class MessageReceived(RegistrarEvent):
    """Another MANSCDP MESSAGE (Catalog, Alarm...), answered 200."""

    body: str


@dataclass(frozen=True, slots=True)
class DeviceRedirected(RegistrarEvent):
    """A REGISTER was answered 302 to another platform (2022 edition §9.1.2.3)."""

    target: str


@dataclass(frozen=True, slots=True)
class LockedOut(RegistrarEvent):
    """Too many wrong Digest answers: refused (403) for ``duration`` seconds.

    ``scope`` is ``"device"`` (``device_id`` from ``source``'s address) or
    ``"source"`` (every device from that address; ``device_id`` is None).
    ``failures`` is the count that tripped it (``Registrar(lockout=...)``)."""

    scope: str
    failures: int
    duration: float


@dataclass(frozen=True, slots=True)
class Notified(RegistrarEvent):
    """A device's NOTIFY (GB/T 28181 §9.11: a subscribed Catalog change,
    alarm or mobile position), answered 200.  ``event`` is its Event
    header, ``body`` the MANSCDP body (bytes as sent: ``raw``),
    ``call_id`` the NOTIFY's Call-ID (its subscription's dialog) and
    ``subscription`` the :class:`gbsip.queries.Subscription` of this
    registrar it belongs to (``None``: none it knows, e.g. already ended).
    ``state`` is its Subscription-State (RFC 6665 §8.2.3) in lower case:
    ``active``, ``pending`` or ``terminated`` (``None``: the NOTIFY had none), with
    ``state_reason`` and ``state_expires`` its parameters; after a
    ``terminated`` NOTIFY the subscription has left
    ``Registrar.subscriptions``."""

    event: str
    body: str
    call_id: str = field(default="", kw_only=True)
    subscription: Subscription | None = field(default=None, kw_only=True, compare=False)
    state: str | None = field(default=None, kw_only=True)
    state_reason: str | None = field(default=None, kw_only=True)
    state_expires: int | None = field(default=None, kw_only=True)

    @property
    def raw(self) -> bytes:
        """The body's bytes as the device sent them (GB2312 included)."""
        return self.body.encode("utf-8", "surrogateescape")

    @property
    def document(self) -> Document | None:
        """The body parsed (:func:`gbsip.manscdp.parse`), ``None`` when it
        is not a MANSCDP body."""
        from gbsip import manscdp
        try:
            return manscdp.parse(self.raw)
        except manscdp.ManscdpError as exc:
            return getattr(exc, "document", None)


@dataclass(frozen=True, slots=True)
class QueryCompleted(RegistrarEvent):
    """A query of the platform's (``Registrar.query``, or one made by the
    ``query_on_register`` policy) finished: ``result`` says what came."""

    result: QueryResult


# --------------------------------------------------------------------------
# The camera's view (gbsip.Device, gbsip.Simulator)


@dataclass(frozen=True, slots=True)
class DeviceEvent(Event):
    """Something that happened to one camera; ``device_id`` is its ID."""


@dataclass(frozen=True, slots=True)
class Registered(DeviceEvent):
    """Registered (GB/T 28181 §9.1.2): granted lifetime, and the platform's
    clock from the 200's ``Date`` (§9.10) when it sent one."""

    expires: int
    latency: float = field(compare=False)
    date: datetime | None = None
    clock_offset: float | None = None


@dataclass(frozen=True, slots=True)
class Refreshed(DeviceEvent):
    """A refresh REGISTER was accepted."""

    expires: int
    latency: float = field(compare=False)
    date: datetime | None = None
    clock_offset: float | None = None


@dataclass(frozen=True, slots=True)
class Challenged(DeviceEvent):
    """A 401/407 was answered with Digest credentials."""

    status: int
    stale: bool


@dataclass(frozen=True, slots=True)
class Failed(DeviceEvent):
    """An attempt failed; the device tries again after ``retry_in`` seconds
    (0: at once, at the redirect server).  ``latency``: seconds from the
    attempt's first REGISTER to the failure."""

    status: int
    reason: str
    kind: str
    retry_in: float
    latency: float = field(default=0.0, compare=False)


@dataclass(frozen=True, slots=True)
class Redirected(DeviceEvent):
    """A 3xx named another platform (GB/T 28181-2022 §9.1.2.3)."""

    status: int
    host: str
    port: int
    uri: str


@dataclass(frozen=True, slots=True)
class KeepaliveSent(DeviceEvent):
    """A keepalive MESSAGE went out (GB/T 28181 §9.6.1)."""

    sn: int


@dataclass(frozen=True, slots=True)
class KeepaliveAnswered(DeviceEvent):
    """The platform answered a keepalive with a 2xx."""

    sn: int
    status: int
    latency: float = field(compare=False)


@dataclass(frozen=True, slots=True)
class KeepaliveMissed(DeviceEvent):
    """A keepalive got no 2xx (``status`` 0: no answer at all; ``reason``
    the refusal's phrase); ``latency``: seconds from sending it to giving
    up on it."""

    sn: int
    status: int
    missed: int
    latency: float = field(default=0.0, compare=False)
    reason: str = ""


@dataclass(frozen=True, slots=True)
class KeepaliveTimeout(DeviceEvent):
    """``missed`` keepalives in a row went unanswered: the platform is
    considered offline and the device registers again."""

    missed: int


@dataclass(frozen=True, slots=True)
class Unregistered(DeviceEvent):
    """The device stopped; ``status`` 200 when the platform confirmed.
    ``kind`` says why otherwise (``"not_registered"``, ``"abandoned"``,
    ``"timeout"``, ``"rejected"``...), ``latency`` the unregister REGISTER's
    round trip (0 when nothing was sent)."""

    status: int
    reason: str
    kind: str = "none"
    latency: float = field(default=0.0, compare=False)


# --------------------------------------------------------------------------
# The camera answering its platform (gbsip.Device, gbsip.Simulator)


@dataclass(frozen=True, slots=True)
class QueryReceived(DeviceEvent):
    """The platform queried the camera (GB/T 28181 §9.5, §9.7): ``cmd_type``
    (``"Catalog"``, ``"DeviceInfo"``...), the query's ``sn``, the SIP
    ``status`` it was answered (200, or the refusal: 400, 404, 501, 503...)
    and the ``channel`` ID it named (None: the device itself).  A 200 is
    followed by the answer MESSAGE(s): :class:`AnswerSent` when all got
    their 2xx."""

    cmd_type: str
    sn: int
    status: int = 200
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class ControlReceived(DeviceEvent):
    """A DeviceControl or DeviceConfig (GB/T 28181 §9.3): ``command``
    (``"PTZCmd"``, ``"TeleBoot"``, ``"RecordCmd"``, ``"GuardCmd"``,
    ``"AlarmCmd"``, ``"DeviceConfig"``...) and its ``value``
    (``"A50F01080080003D"``, ``"Record"``...), answered ``status``; RecordCmd,
    GuardCmd, AlarmCmd and DeviceConfig are answered with a Response too."""

    command: str
    value: str
    sn: int
    status: int = 200
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class Subscribed(DeviceEvent):
    """A subscription (GB/T 28181 §9.11) was accepted or refreshed:
    ``event`` is the CmdType (``"Catalog"``, ``"Alarm"``,
    ``"MobilePosition"``), ``expires`` the granted seconds, ``interval``
    the MobilePosition NOTIFY period (s), ``header`` the Event header."""

    event: str
    expires: int
    refresh: bool = False
    interval: float | None = None
    header: str = ""
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class SubscriptionEnded(DeviceEvent):
    """A subscription ended; ``kind``: ``"unsubscribed"`` (Expires 0),
    ``"expired"``, ``"replaced"``, ``"rejected"`` (its NOTIFY got 481),
    ``"timeout"`` (a NOTIFY got no answer), ``"abandoned"`` (the device
    stopped)."""

    event: str
    kind: str
    status: int = 0


@dataclass(frozen=True, slots=True)
class AnswerSent(DeviceEvent):
    """Every part of a query's answer got its 2xx: ``parts`` MESSAGEs,
    ``latency`` from the query to the last 2xx."""

    cmd_type: str
    sn: int
    parts: int
    latency: float = field(default=0.0, compare=False)


@dataclass(frozen=True, slots=True)
class AnswerFailed(DeviceEvent):
    """A part of an answer (or a notification: ``notify``) was refused
    (``status``) or got no answer at all (``status`` 0, ``kind``
    ``"timeout"``: Timer F)."""

    cmd_type: str
    sn: int
    status: int
    kind: str
    part: int = 0
    notify: bool = False
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RequestRefused(DeviceEvent):
    """A request of the platform was answered with an error for itself
    (not a query or control: those report their status): 404 an unknown
    user, 405/501 a method the camera does not take, 415, 400 a body the
    MANSCDP reader refused (``reason`` says why)."""

    method: str
    status: int
    reason: str
