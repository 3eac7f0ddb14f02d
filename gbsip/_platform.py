"""The registrar's platform side: requests to registered devices.

The C core (``csrc/core/platform_requests.c`` through ``RegistrarCore``)
builds each MESSAGE or SUBSCRIBE, sends it to the binding, retransmits it
(Timer E/F over UDP) and reports its SIP answer as an event carrying the
request's handle.  This module waits for those answers and for the parts
of the device's MANSCDP ``<Response>`` (MESSAGEs the core answered 200 and
reported as MessageReceived), matched by (device ID, SN), and turns them
into the results of :mod:`gbsip.queries`.  Nothing here raises for what a
device did: a refusal, a timeout or a partial answer is a result.
"""
from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Sequence
from dataclasses import astuple
from typing import TYPE_CHECKING, Any

from gbsip import manscdp
from gbsip.errors import ConfigurationError, LocalProtocolError, NotRegisteredError
from gbsip.queries import (
    QUERY_TYPES,
    SUBSCRIPTION_EVENTS,
    ControlResult,
    QueryResult,
    SubscribeResult,
    Subscription,
)

if TYPE_CHECKING:
    from gbsip.registrar import Registrar

# Core event codes (registrar.h gb_reg_event_type) this module consumes.
EV_MESSAGE = 10
EV_ANSWERED = 14
EV_TIMEOUT = 15
# Core request codes (platform_requests.h)
_FULL, _TOO_LARGE, _INVALID, _NO_MEMORY, _NOT_REGISTERED = -1, -2, -3, -4, -10
# CmdTypes whose answer comes in parts counted by SumNum (2016 §9.5.1, 2022 Annex M)
_SPLIT = ("Catalog", "RecordInfo")
_TRANSPORT_CODES = {"udp": 0, "tcp": 1}


def _item_key(item: Any) -> Any:
    """What makes two list entries the same entry (duplicates ignored)."""
    if isinstance(item, manscdp.CatalogItem):
        return item.device_id or astuple(item)
    return astuple(item)


class _Pending:
    """One request waiting for its SIP answer and its MANSCDP answer."""

    __slots__ = ("kind", "device_id", "cmd_type", "sn", "started", "future", "handle",
                 "status", "reason", "to_tag", "expires", "timed_out", "documents",
                 "items", "sum_num", "duplicates", "early", "expects_parts", "bodies",
                 "subscription", "malformed")

    def __init__(self, kind: str, device_id: str, cmd_type: str, sn: int, started: float,
                 future: asyncio.Future[None], expects_parts: bool) -> None:
        self.kind = kind
        self.device_id = device_id
        self.cmd_type = cmd_type
        self.sn = sn
        self.started = started
        self.future = future
        self.handle = 0
        self.status: int | None = None
        self.reason: str | None = None
        self.to_tag: str | None = None
        self.expires = 0
        self.timed_out = False
        self.documents: list[manscdp.Document] = []
        self.items: dict[Any, Any] = {}
        self.sum_num: int | None = None
        self.duplicates = 0
        self.early = False
        self.expects_parts = expects_parts
        self.bodies: set[bytes] = set()
        self.subscription: Subscription | None = None
        # why a part that arrived cannot be used (its answer is then failed)
        self.malformed: str | None = None

    # -- what arrives -------------------------------------------------------

    def answered(self, status: int, reason: str | None, to_tag: str | None,
                 expires: int) -> None:
        if status >= 200 and self.status is None:
            self.status, self.reason, self.to_tag, self.expires = status, reason, to_tag, expires
        self._check()

    def sip_timeout(self) -> None:
        self.timed_out = True
        if not self.future.done():
            self.future.set_result(None)

    def part(self, doc: manscdp.Document) -> None:
        data = doc.data
        if data in self.bodies:
            self.duplicates += 1
            return
        self.bodies.add(data)
        if self.status is None:
            self.early = True
        self.documents.append(doc)
        sum_text = doc.text("SumNum")
        if sum_text is not None and not sum_text.strip().isdigit():
            # not a count: what is missing cannot be known (2016 §9.5.1, 2022 Annex M)
            self.malformed = (f"malformed answer: part {len(self.documents)} has "
                              f"SumNum {sum_text.strip()!r}, not a number")
            if not self.future.done():
                self.future.set_result(None)
            return
        if sum_text is not None:
            self.sum_num = int(sum_text)
        for item in doc.items:
            key = _item_key(item)
            if key in self.items:
                self.duplicates += 1
            else:
                self.items[key] = item
        self._check()

    def refused_part(self, status: int, reason: str | None) -> None:
        """A part of the answer the registrar refused (its body is no
        MANSCDP document): the answer cannot be whole."""
        self.malformed = (f"malformed answer: a part with this SN was refused "
                          f"{status} {reason or ''}".rstrip())
        if not self.future.done():
            self.future.set_result(None)

    def complete(self) -> bool:
        if self.status is None or not 200 <= self.status < 300 or self.malformed:
            return False
        if not self.expects_parts:
            return True
        if not self.documents:
            return False
        if self.cmd_type in _SPLIT and self.sum_num is not None:
            return len(self.items) >= self.sum_num
        return True

    def _check(self) -> None:
        negative = self.status is not None and self.status >= 300
        if (negative or self.complete()) and not self.future.done():
            self.future.set_result(None)

    # -- the result ---------------------------------------------------------

    def missing(self) -> int | None:
        if self.cmd_type in _SPLIT:
            return None if self.sum_num is None else max(0, self.sum_num - len(self.items))
        return 0 if self.documents else None


class Platform:
    """Requests from one :class:`gbsip.Registrar` to its devices."""

    def __init__(self, reg: Registrar, *, query_on_register: Sequence[str] = ()) -> None:
        self._reg = reg
        self._sn = random.randrange(1, 1 << 20)
        self._by_handle: dict[int, _Pending] = {}
        self._by_sn: dict[tuple[str, int], _Pending] = {}
        self._via_hosts: dict[str, str] = {}
        self.query_on_register = tuple(query_type(c) for c in query_on_register)
        # live subscriptions by Call-ID (Notified events carry theirs), and
        # the tasks refreshing those asked to be kept (subscribe(refresh=True))
        self.subscriptions: dict[str, Subscription] = {}
        self._refreshers: dict[str, asyncio.Task[None]] = {}
        # each live subscription's end unless refreshed (RFC 6665 §4.1.2.2)
        self._expiry: dict[str, asyncio.TimerHandle] = {}

    # -- the core's events --------------------------------------------------

    def on_core_event(self, kind: int, device_id: str | None, status: int, expires: int,
                      handle: int, text: str | None, extra: str | None) -> bool:
        """True when the event was ours (an answer, a timeout, a matched part)."""
        if kind == EV_ANSWERED or kind == EV_TIMEOUT:
            pending = self._by_handle.pop(handle, None)
            if pending is not None:
                if kind == EV_ANSWERED:
                    pending.answered(status, text, extra, expires)
                else:
                    pending.sip_timeout()
            return True
        if kind == EV_MESSAGE and self._by_sn and text is not None and device_id:
            try:
                doc = manscdp.parse(text.encode("utf-8", "surrogateescape"),
                                    lenient=manscdp.Lenient.ALL)
            except manscdp.ManscdpError:
                return False
            if doc.root is not manscdp.Root.RESPONSE:
                return False
            pending = self._by_sn.get((device_id, doc.sn)) or \
                self._by_sn.get((doc.device_id, doc.sn))
            if pending is None or pending.cmd_type.lower() != doc.cmd_type.lower():
                return False
            pending.part(doc)
            return True
        return False

    def on_refused(self, device_id: str, sn: int, status: int, reason: str | None) -> None:
        """The core refused a MESSAGE of this device whose body is no MANSCDP
        document but names this SN: when a query waits for that SN, the
        part was its answer's."""
        pending = self._by_sn.get((device_id, sn))
        if pending is not None and pending.kind == "query":
            pending.refused_part(status, reason)

    def close(self) -> None:
        """The registrar closes: every waiting request ends now, with what
        it has (its result says what is missing)."""
        for pending in list(self._by_sn.values()) + list(self._by_handle.values()):
            if not pending.future.done():
                pending.future.set_result(None)
        for task in self._refreshers.values():
            task.cancel()
        self._refreshers.clear()
        for handle in self._expiry.values():
            handle.cancel()
        self._expiry.clear()

    # -- requests -----------------------------------------------------------

    def next_sn(self) -> int:
        self._sn = self._sn + 1 if self._sn < (1 << 31) else 1
        return self._sn

    def _via(self, transport: str, peer_host: str) -> tuple[str, int]:
        reg = self._reg
        addr = reg.addresses.get(transport) or reg.address
        host = reg.host
        if host in ("", "0.0.0.0", "::"):
            # a wildcard listener: the address the device reaches us on
            host = self._via_hosts.get(peer_host, "")
            if not host:
                family = socket.AF_INET6 if ":" in peer_host else socket.AF_INET
                try:
                    with socket.socket(family, socket.SOCK_DGRAM) as s:
                        s.connect((peer_host, 9))
                        host = s.getsockname()[0]
                except OSError:
                    host = "127.0.0.1"
                self._via_hosts[peer_host] = host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return host, addr[1]

    def _send(self, pending: _Pending, method: str, body: bytes,
              headers: list[tuple[str, str]], subscription: Subscription | None = None) -> str | None:
        """Queue the request in the core and send it; an error text when
        the core turned it away (the pool bound)."""
        reg = self._reg
        if reg._state != "running":
            raise LocalProtocolError("the registrar is not running: use it inside "
                                     "'async with Registrar(...)' (or after start())")
        b = reg._core.binding(pending.device_id)
        if b is None:
            raise NotRegisteredError(pending.device_id)
        src = b[6]
        transport = "tcp" if src[2] == 1 else "udp"
        via_host, via_port = self._via(transport, src[0])
        if method == "SUBSCRIBE":
            # RFC 6665 §4.1.2.1: a SUBSCRIBE carries the Contact its NOTIFYs go to
            params = ";transport=tcp" if transport == "tcp" else ""
            headers = [*headers, ("Contact", f"<sip:{reg.server_id}@{via_host}:{via_port}{params}>")]
        now = reg._now()[0]
        kw: dict[str, Any] = {}
        if subscription is not None:
            kw = {"call_id": subscription.call_id, "from_tag": subscription.from_tag,
                  "to_tag": subscription.to_tag, "cseq": subscription.cseq}
        code, handle, call_id, from_tag, cseq = reg._core.request(
            pending.device_id, method, body, headers, via_host, via_port, now, **kw)
        if code == _NOT_REGISTERED:
            raise NotRegisteredError(pending.device_id)
        if code == _FULL:
            return (f"too many requests in flight (max_requests={reg._max_requests}); "
                    "the core turned this one away (stats: requests_turned_away)")
        if code in (_TOO_LARGE, _INVALID):
            raise LocalProtocolError(f"cannot build the {method}: too large or invalid "
                                     f"(code {code})")
        if code != 0:
            raise MemoryError("out of memory building the request")
        pending.handle = handle
        if method == "SUBSCRIBE" and subscription is None:
            pending.subscription = Subscription(
                pending.device_id, pending.cmd_type, "", call_id or "", from_tag or "", None,
                cseq, 0)
        self._by_handle[handle] = pending
        closed = reg._flush_requests()
        if transport == "tcp" and src[3] in closed:
            # nothing can reach the device until it connects (registers) again
            self._forget(pending)
            return (f"the TCP connection {pending.device_id} registered on is closed "
                    "(the request was not sent; it must connect and register again)")
        assert reg._driver is not None
        reg._driver.arm()
        return None

    async def _exchange(self, pending: _Pending, method: str, body: bytes,
                        headers: list[tuple[str, str]], timeout: float,
                        subscription: Subscription | None = None) -> str | None:
        """Send, then wait for the answer (at most timeout s); always forget
        the request after.  The error text of a request turned away."""
        try:
            error = self._send(pending, method, body, headers, subscription)
            if error is None:
                try:
                    await asyncio.wait_for(asyncio.shield(pending.future), timeout)
                except asyncio.TimeoutError:
                    pass
            return error
        finally:
            self._forget(pending)

    def _forget(self, pending: _Pending) -> None:
        if self._by_handle.pop(pending.handle, None) is not None:
            try:
                self._reg._core.cancel_request(pending.handle)
            except Exception:  # the core is gone with the registrar
                pass
        if self._by_sn.get((pending.device_id, pending.sn)) is pending:
            del self._by_sn[(pending.device_id, pending.sn)]

    def _start(self, kind: str, device_id: str, cmd_type: str, expects_parts: bool) -> _Pending:
        loop = asyncio.get_running_loop()
        sn = self.next_sn()
        pending = _Pending(kind, device_id, cmd_type, sn, loop.time(), loop.create_future(),
                           expects_parts)
        self._by_sn[(device_id, sn)] = pending
        return pending

    async def query(self, device_id: str, cmd_type: str, *, timeout: float,
                    target: str | None, fields: Sequence[manscdp.Field],
                    charset: str) -> QueryResult:
        cmd = query_type(cmd_type)
        pending = self._start("query", device_id, cmd, True)
        body = manscdp.build(manscdp.Root.QUERY, cmd, pending.sn, target or device_id,
                             list(fields), charset=charset)
        error = await self._exchange(pending, "MESSAGE", body, [], timeout)
        result = self._query_result(pending, error)
        self._reg._publish_query(result)
        return result

    def _query_result(self, p: _Pending, error: str | None) -> QueryResult:
        loop = asyncio.get_running_loop()
        complete = p.complete()
        error = error or p.malformed
        return QueryResult(
            device_id=p.device_id, cmd_type=p.cmd_type, sn=p.sn, status=p.status,
            reason=p.reason, items=tuple(p.items.values()), sum_num=p.sum_num,
            parts_received=len(p.documents), duplicates=p.duplicates, complete=complete,
            missing=p.missing(), elapsed=loop.time() - p.started,
            timed_out=not complete and error is None and (p.timed_out or p.status is None
                                                          or p.status < 300),
            response_before_answer=p.early, error=error, documents=tuple(p.documents))

    async def control(self, device_id: str, command: manscdp.ControlCommand, *,
                      timeout: float, target: str | None, charset: str) -> ControlResult:
        pending = self._start("control", device_id, "DeviceControl", command.expects_response)
        body = manscdp.build(manscdp.Root.CONTROL, "DeviceControl", pending.sn,
                             target or device_id, command.fields(), charset=charset)
        error = await self._exchange(pending, "MESSAGE", body, [], timeout)
        loop = asyncio.get_running_loop()
        doc = pending.documents[0] if pending.documents else None
        complete = pending.complete()
        return ControlResult(
            device_id=device_id, command=command.name, sn=pending.sn, status=pending.status,
            reason=pending.reason, result=doc.text("Result") if doc is not None else None,
            complete=complete, elapsed=loop.time() - pending.started,
            timed_out=not complete and error is None and (
                pending.status is None or pending.status < 300),
            response_before_answer=pending.early, error=error, document=doc)

    async def subscribe(self, device_id: str, cmd_type: str, *, expires: int,
                        interval: int | None, timeout: float, target: str | None,
                        event: str | None, fields: Sequence[manscdp.Field], charset: str,
                        subscription: Subscription | None = None) -> SubscribeResult:
        if subscription is None:
            cmd = {k.lower(): k for k in SUBSCRIPTION_EVENTS}.get(cmd_type.lower())
            if cmd is None:
                raise ConfigurationError(
                    f"cannot subscribe to {cmd_type!r}: use one of "
                    f"{', '.join(SUBSCRIPTION_EVENTS)} (GB/T 28181 §9.11)")
            body_fields: list[manscdp.Field] = list(fields)
            if cmd == "MobilePosition":
                body_fields.insert(0, ("Interval", int(interval or 5)))
            ev = event or SUBSCRIPTION_EVENTS[cmd]
        else:
            cmd, ev = subscription.cmd_type, subscription.event
            body_fields = list(subscription.body_fields)
            subscription.cseq += 1
        if expires < 0:
            raise ConfigurationError("expires must be 0 (unsubscribe) or more seconds")
        pending = self._start("subscribe", device_id, cmd, False)
        body = manscdp.build(manscdp.Root.QUERY, cmd, pending.sn, target or device_id,
                             body_fields, charset=charset)
        headers = [("Event", ev), ("Expires", str(expires))]
        error = await self._exchange(pending, "SUBSCRIBE", body, headers, timeout,
                                     subscription)
        loop = asyncio.get_running_loop()
        complete = pending.complete()
        granted = pending.expires if pending.expires else (expires if complete else 0)
        sub = subscription if subscription is not None else pending.subscription
        if sub is not None:
            sub.event = ev
            sub.body_fields = tuple(body_fields)
            if pending.to_tag and not sub.to_tag:
                sub.to_tag = pending.to_tag
            sub.expires = granted
            if complete and expires and sub.call_id:
                self.subscriptions[sub.call_id] = sub
                self._arm_expiry(sub, granted)
            elif subscription is not None and (expires == 0 or (
                    pending.status is not None and pending.status >= 300)):
                self.end(sub)
        return SubscribeResult(
            device_id=device_id, cmd_type=cmd, event=ev, sn=pending.sn,
            status=pending.status, reason=pending.reason, expires=granted,
            complete=complete, elapsed=loop.time() - pending.started,
            subscription=sub if complete and expires else None,
            timed_out=not complete and error is None and pending.status is None,
            error=error)

    # -- subscriptions kept alive -------------------------------------------

    def end(self, sub: Subscription) -> None:
        """Forget a subscription (unsubscribed, refused, terminated by the
        device, expired, registrar closing)."""
        self.subscriptions.pop(sub.call_id, None)
        handle = self._expiry.pop(sub.call_id, None)
        if handle is not None:
            handle.cancel()
        task = self._refreshers.pop(sub.call_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _arm_expiry(self, sub: Subscription, seconds: int) -> None:
        """``sub`` ends ``seconds`` from now unless refreshed before."""
        old = self._expiry.pop(sub.call_id, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._expiry[sub.call_id] = loop.call_later(max(0, seconds), self._expired, sub)

    def _expired(self, sub: Subscription) -> None:
        self._expiry.pop(sub.call_id, None)
        if self.subscriptions.get(sub.call_id) is sub:
            self.end(sub)

    def notified(self, call_id: str, state: str | None,
                 expires: int | None) -> Subscription | None:
        """A NOTIFY in subscription ``call_id``'s dialog with this
        Subscription-State (None: not reported): the subscription, which
        leaves :attr:`subscriptions` when the state is ``terminated``
        (RFC 6665 §4.1.3), and ends sooner when the state's ``expires``
        says less time is left than was granted (§4.2.2)."""
        sub = self.subscriptions.get(call_id)
        if sub is None:
            return None
        if state == "terminated":
            self.end(sub)
        elif expires is not None:
            handle = self._expiry.get(call_id)
            loop = asyncio.get_running_loop()
            if handle is None or loop.time() + expires < handle.when():
                self._arm_expiry(sub, expires)
        return sub

    def keep(self, sub: Subscription, timeout: float) -> None:
        """Refresh ``sub`` in its dialog at 2/3 of each granted Expires
        (RFC 6665 §4.1.2.2) until it is unsubscribed, refused, or the
        registrar closes."""
        if sub.call_id in self._refreshers or sub.call_id not in self.subscriptions:
            return
        self._refreshers[sub.call_id] = asyncio.ensure_future(self._refresh_loop(sub, timeout))

    async def _refresh_loop(self, sub: Subscription, timeout: float) -> None:
        try:
            while self._reg._state == "running" and sub.call_id in self.subscriptions:
                await asyncio.sleep(max(0.5, sub.expires * 2 / 3))
                if self._reg._state != "running" or sub.call_id not in self.subscriptions:
                    return
                try:
                    result = await self._reg.refresh_subscription(sub, timeout=timeout)
                except (LocalProtocolError, NotRegisteredError):
                    result = None
                if result is None or not result.ok:
                    self.end(sub)
                    return
                sub.refreshes += 1
        finally:
            if self._refreshers.get(sub.call_id) is asyncio.current_task():
                del self._refreshers[sub.call_id]


def parse_subscription_state(header: str) -> tuple[str, dict[str, str]]:
    """A Subscription-State value (RFC 6665 §8.2.3: ``active;expires=60``,
    ``terminated;reason=timeout``): the state in lower case and its
    parameters (names in lower case)."""
    value, *rest = header.split(";")
    params: dict[str, str] = {}
    for p in rest:
        name, _, v = p.partition("=")
        if name.strip():
            params[name.strip().lower()] = v.strip().strip('"')
    return value.strip().lower(), params


def query_type(cmd_type: str) -> str:
    cmd = QUERY_TYPES.get(cmd_type.lower())
    if cmd is None:
        raise ConfigurationError(
            f"unknown query {cmd_type!r}: use one of {', '.join(QUERY_TYPES.values())} "
            "(GB/T 28181 §9.5)")
    return cmd


def query_fields(cmd: str, start_time: str | None, end_time: str | None,
                 config_type: str, record_type: str) -> list[manscdp.Field]:
    """The body fields each query needs (Annex A.2.4)."""
    if cmd == "RecordInfo":
        if not start_time or not end_time:
            raise ConfigurationError(
                "a RecordInfo query needs start_time and end_time "
                "(e.g. '2026-12-03T00:00:00')")
        return [("StartTime", start_time), ("EndTime", end_time), ("Secrecy", 0),
                ("Type", record_type)]
    if cmd == "ConfigDownload":
        return [("ConfigType", config_type)]
    return []
