"""The platform the device suite plays: a small, strict GB/T 28181 UAS.

It runs in a background thread on ``--gb-listen`` (UDP, or TCP with one
connection per camera), records every request in order, and answers as a
GB platform does:

- REGISTER without valid credentials: ``401`` with ``realm`` (the SIP
  domain), a fresh single-use ``nonce`` and ``algorithm=MD5``; ``qop="auth"``
  is offered when the camera already holds a binding (refresh, unregister),
  not on a first registration, so one session sees both kinds of answer.
- REGISTER with credentials over an issued, unused nonce: checked field by
  field; ``403`` when wrong, else ``200`` with the Contact echoed
  (``;expires=``), ``Expires`` = min(asked, ``--gb-grant-expires``) and the
  GB ``Date``.
- Keepalive MESSAGE: ``200`` — or nothing while :attr:`drop_keepalives` is set.
- A retransmitted request gets the cached answer (RFC 3261 §17.2.2).
- Queries (GB/T 28181 §9.5) on request (:meth:`PlatformRig.query`): a
  MESSAGE to where the camera registered from; its SIP answers are
  recorded in :attr:`PlatformRig.answers`, the ``<Response>`` MESSAGEs it
  sends back are answered 200 and read by :meth:`PlatformRig.exchange`.
"""
from __future__ import annotations

import secrets
import selectors
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import gbsip
from gbsip import StreamParser
from gbsip.conformance._common import GBOptions, Trace
from gbsip.digest import Credentials, compute_response

T = TypeVar("T")


@dataclass
class Seen:
    """One request the camera sent (retransmissions are counted, not listed)."""

    at: float                      # time.monotonic()
    method: str
    request: gbsip.Request
    raw: bytes
    source: tuple[str, int]
    kind: str = ""                 # register / unregister / keepalive / message / other
    expires: int | None = None     # REGISTER: asked lifetime
    sn: int | None = None          # keepalive SN
    status: int = 0                # what the rig answered (0: nothing)
    retransmissions: int = 0
    dropped: bool = False          # keepalive deliberately left unanswered


@dataclass
class Exchange:
    """One query the rig sent and what came back (§9.5)."""

    sn: int
    cmd_type: str
    sent_at: float
    answers: list[tuple[float, gbsip.Response]]     # SIP answers to the MESSAGE
    responses: list[tuple[float, Seen, Any]]        # (at, seen, manscdp Document) same SN
    call_id: str = ""

    @property
    def first_response_at(self) -> float | None:
        return self.responses[0][0] if self.responses else None

    @property
    def final_answer(self) -> tuple[float, gbsip.Response] | None:
        for at, resp in self.answers:
            if resp.status >= 200:
                return at, resp
        return None


@dataclass
class Dialog:
    """A subscription dialog the rig made (RFC 6665): to refresh or end it."""

    call_id: str
    from_tag: str
    to_tag: str | None = None
    cseq: int = 1

    def next_cseq(self) -> int:
        self.cseq += 1
        return self.cseq

    @classmethod
    def of(cls, ex: Exchange, rig: PlatformRig) -> Dialog | None:
        """The dialog a SUBSCRIBE's 2xx made (None: not accepted)."""
        final = ex.final_answer
        if final is None or not 200 <= final[1].status < 300:
            return None
        sub = next((s for s in rig.sent if s.call_id == ex.call_id), None)
        if sub is None or sub.from_ is None:
            return None
        to = final[1].to
        return cls(ex.call_id, sub.from_.tag or "", to.tag if to else None,
                   sub.cseq.number if sub.cseq else 1)


@dataclass
class Nonce:
    value: str
    qop: bool
    issued: float
    used: bool = False


@dataclass
class AuthCheck:
    """The camera's answer to one of our challenges, and what was wrong with it."""

    seen: Seen
    nonce: Nonce
    credentials: Credentials | None
    problems: list[str] = field(default_factory=list)


@dataclass
class Binding:
    call_id: str
    registered_at: float
    granted: int


def keepalive_problems(seen: Seen, options: GBOptions) -> list[str]:
    """What is wrong with a keepalive MESSAGE (GB/T 28181-2016 §9.6.1)."""
    req, problems = seen.request, []
    ctype = (req.content_type or "").split(";")[0].strip()
    if ctype.lower() != "application/manscdp+xml":
        problems.append(f"Content-Type is {ctype or 'missing'!r}, expected Application/MANSCDP+xml")
    try:
        ruri_user = req.request_uri.user
    except gbsip.GBSIPError:
        ruri_user = None
    if ruri_user != options.server_id:
        problems.append(f"Request-URI {req.uri} does not name the server ID {options.server_id}")
    to_user = gbsip.parse_uri(req.to.uri).user if req.to else None
    if to_user != options.server_id:
        problems.append(f"To user is {to_user!r}, expected the server ID {options.server_id}")
    try:
        root = ET.fromstring(req.body.decode("gb18030"))
    except (UnicodeDecodeError, ET.ParseError) as exc:
        return problems + [f"the body is not well-formed XML: {exc}"]
    if root.tag != "Notify":
        problems.append(f"root element is <{root.tag}>, expected <Notify>")
    fields = {child.tag: (child.text or "").strip() for child in root}
    if fields.get("CmdType") != "Keepalive":
        problems.append(f"CmdType is {fields.get('CmdType')!r}, expected 'Keepalive'")
    if not fields.get("SN", "").isdigit():
        problems.append(f"SN is {fields.get('SN')!r}, expected a number")
    if fields.get("DeviceID") != options.device_id:
        problems.append(f"DeviceID is {fields.get('DeviceID')!r}, expected {options.device_id}")
    if fields.get("Status") != "OK":
        problems.append(f"Status is {fields.get('Status')!r}, expected 'OK'")
    return problems


def _keepalive_sn(req: gbsip.Request) -> int | None:
    if not req.body or b"keepalive" not in req.body.lower():
        return None
    try:
        root = ET.fromstring(req.body.decode("gb18030"))
    except (UnicodeDecodeError, ET.ParseError):
        return -1  # a keepalive we cannot read; keepalive_problems says why
    if (root.findtext("CmdType") or "").strip() != "Keepalive":
        return None
    sn = (root.findtext("SN") or "").strip()
    return int(sn) if sn.isdigit() else -1


def _asked_expires(req: gbsip.Request) -> int | None:
    for contact in req.contacts:
        if contact.wildcard:
            return 0
        if contact.expires is not None:
            return contact.expires
    return req.expires


class PlatformRig:
    """A GB/T 28181 platform for one camera, in a thread (see module doc)."""

    def __init__(self, options: GBOptions, trace: Trace) -> None:
        assert options.listen is not None
        self.options = options
        self.trace = trace
        self.listen = options.listen
        self.realm = options.domain
        self.cond = threading.Condition()
        self.seen: list[Seen] = []
        self.nonces: dict[str, Nonce] = {}
        self.auth_checks: list[AuthCheck] = []
        self.binding: Binding | None = None
        self.registrations: list[tuple[float, Binding]] = []
        self.drop_keepalives = False
        self.answers: list[tuple[float, str, gbsip.Response]] = []  # (at, Call-ID, response)
        self.sent: list[gbsip.Request] = []  # requests the rig sent the camera
        self._sn = 100
        self._cache: dict[tuple[str, str, str], tuple[bytes, Seen]] = {}
        self._selector = selectors.DefaultSelector()
        self._conns: dict[socket.socket, StreamParser] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started = time.monotonic()
        family = socket.AF_INET6 if ":" in self.listen.host else socket.AF_INET
        if self.listen.transport == "udp":
            self.sock = socket.socket(family, socket.SOCK_DGRAM)
        else:
            self.sock = socket.socket(family, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((self.listen.host, self.listen.port))
            if self.listen.transport == "tcp":
                self.sock.listen(16)
        except OSError:
            self.sock.close()
            raise
        self.address: tuple[str, int] = self.sock.getsockname()[:2]
        self.sock.setblocking(False)
        self._selector.register(self.sock, selectors.EVENT_READ)

    # -- life -------------------------------------------------------------------

    def start(self) -> None:
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="gbsip-platform-rig", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for conn in list(self._conns):
            conn.close()
        self._conns.clear()
        self._selector.close()
        self.sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    if sock is self.sock and self.listen.transport == "udp":
                        self._read_udp()
                    elif sock is self.sock:
                        conn, _addr = self.sock.accept()
                        conn.setblocking(False)
                        self._conns[conn] = StreamParser()
                        self._selector.register(conn, selectors.EVENT_READ)
                    else:
                        self._read_tcp(sock)
                except OSError:
                    continue

    def _read_udp(self) -> None:
        for _ in range(64):
            try:
                data, addr = self.sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            answer = self._handle(data, (addr[0], addr[1]))
            if answer is not None:
                self.trace.sent(answer, f"{addr[0]}:{addr[1]}")
                self.sock.sendto(answer, addr)

    def _read_tcp(self, conn: socket.socket) -> None:
        chunk = conn.recv(65536)
        if not chunk:
            self._drop(conn)
            return
        parser = self._conns[conn]
        parser.feed(chunk)
        peer = conn.getpeername()[:2]
        where = f"{peer[0]}:{peer[1]}"
        while True:
            try:
                data = parser.next_frame()
            except gbsip.SIPParseError as exc:
                # the stream cannot resynchronise: answer if we can, then close
                self.trace.note(f"unframeable stream from the camera: {exc.reason}")
                answer = parser.refusal(exc)
                if answer is not None:
                    self.trace.sent(answer, where)
                    conn.sendall(answer)
                self._drop(conn)
                return
            if data is None:
                return
            answer = self._handle(data, (peer[0], peer[1]))
            if answer is not None:
                self.trace.sent(answer, where)
                conn.sendall(answer)

    def _drop(self, conn: socket.socket) -> None:
        self._selector.unregister(conn)
        self._conns.pop(conn, None)
        conn.close()

    # -- waiting (called from the test thread) ------------------------------------

    def wait(self, predicate: Callable[[], T], timeout: float) -> T:
        """predicate() once it is truthy, or its last (falsy) value after timeout."""
        with self.cond:
            self.cond.wait_for(predicate, timeout)
            return predicate()

    def until(self, start: float, seconds: float) -> float:
        """Seconds left until ``start + seconds`` (never negative)."""
        return max(0.0, start + seconds - time.monotonic())

    def snapshot(self) -> list[Seen]:
        with self.cond:
            return list(self.seen)

    def of_kind(self, *kinds: str) -> list[Seen]:
        with self.cond:
            return [s for s in self.seen if s.kind in kinds]

    # -- answering -----------------------------------------------------------------

    def _handle(self, data: bytes, source: tuple[str, int]) -> bytes | None:
        peer = f"{source[0]}:{source[1]}"
        self.trace.received(data, peer)
        try:
            msg = gbsip.parse(data)
        except gbsip.SIPParseError as exc:
            self.trace.note(f"unparseable message from the camera: {exc}")
            return None
        if isinstance(msg, gbsip.Response):
            with self.cond:
                self.answers.append((time.monotonic(), msg.call_id or "", msg))
                self.cond.notify_all()
            return None
        if not isinstance(msg, gbsip.Request) or msg.method == "ACK":
            return None
        via = msg.via
        key = (msg.method, (via.branch or "") if via else "", via.sent_by if via else "")
        with self.cond:
            cached = self._cache.get(key)
            if cached is not None:
                cached_answer, seen = cached
                seen.retransmissions += 1
                self.cond.notify_all()
                return cached_answer or None
            seen = Seen(time.monotonic(), msg.method, msg, data, source)
            self.seen.append(seen)
            if msg.method == "REGISTER":
                answer: bytes | None = self._register(seen)
            elif msg.method == "MESSAGE":
                answer = self._message(seen)
            elif msg.method == "NOTIFY":
                seen.kind = "notify"  # of a subscription (§9.11)
                answer = self._reply(seen, 200)
            else:
                seen.kind = "other"
                answer = self._reply(seen, 200)
            self._cache[key] = (answer or b"", seen)
            if len(self._cache) > 1024:  # bounded: the oldest transactions are long over
                del self._cache[next(iter(self._cache))]
            self.cond.notify_all()
            return answer

    def _reply(self, seen: Seen, status: int, headers: list[tuple[str, str]] | None = None,
               reason: str | None = None) -> bytes:
        seen.status = status
        return bytes(seen.request.reply(status, reason, to_tag="gbsiprig",
                                        headers=headers or [("Server", "gbsip-conformance")]))

    def _gb_date(self) -> str:
        local = datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(
            hours=self.options.utc_offset)
        return gbsip.format_gb_date(local)

    def _challenge(self, seen: Seen) -> bytes:
        qop = self.binding is not None
        value = secrets.token_hex(16)
        self.nonces[value] = Nonce(value, qop, time.monotonic())
        challenge = f'Digest realm="{self.realm}",nonce="{value}",algorithm=MD5'
        if qop:
            challenge += ',qop="auth"'
        return self._reply(seen, 401, [("WWW-Authenticate", challenge)])

    def _register(self, seen: Seen) -> bytes:
        req = seen.request
        seen.expires = _asked_expires(req)
        seen.kind = "unregister" if seen.expires == 0 else "register"
        creds = None
        for value in req.headers.getall("Authorization"):
            if value.strip().lower().startswith("digest"):
                try:
                    creds = Credentials.parse(value)
                except gbsip.GBSIPError as exc:
                    self.trace.note(f"unreadable Authorization {value!r}: {exc}")
                break
        nonce = self.nonces.get(creds.nonce) if creds is not None else None
        if creds is None or nonce is None or nonce.used:
            return self._challenge(seen)
        nonce.used = True
        check = AuthCheck(seen, nonce, creds, self._credential_problems(creds, nonce))
        self.auth_checks.append(check)
        if check.problems:
            return self._reply(seen, 403)
        if seen.expires == 0:
            self.binding = None
            return self._reply(seen, 200, [("Date", self._gb_date())])
        asked = self.options.expires if seen.expires is None else seen.expires
        granted = min(asked, self.options.grant_expires)
        self.binding = Binding(req.call_id or "", seen.at, granted)
        self.registrations.append((seen.at, self.binding))
        contacts = [f"<{c.uri}>;expires={granted}" for c in req.contacts if not c.wildcard]
        headers = [("Contact", c) for c in contacts]
        headers += [("Expires", str(granted)), ("Date", self._gb_date())]
        return self._reply(seen, 200, headers)

    def _credential_problems(self, creds: Credentials, nonce: Nonce) -> list[str]:
        """Everything wrong with an answer to our challenge (RFC 2617 §3.2.2,
        RFC 7616 §3.4, GB/T 28181-2016 §9.1.2.1)."""
        opts, problems = self.options, []
        if creds.username != opts.device_id:
            problems.append(f"username is {creds.username!r}, expected the device ID "
                            f"{opts.device_id}")
        if creds.realm != self.realm:
            problems.append(f"realm is {creds.realm!r}, the challenge said {self.realm!r}")
        if creds.algorithm is not None and creds.algorithm.upper() != "MD5":
            problems.append(f"algorithm is {creds.algorithm!r}, the challenge said MD5")
        if not creds.uri:
            problems.append("uri is empty")
        if nonce.qop:
            if creds.qop != "auth":
                problems.append(f"qop=\"auth\" was offered but the answer has qop={creds.qop!r}")
            if creds.nc is None or len(creds.nc) != 8:
                problems.append(f"nc must be 8 hex digits, got {creds.nc!r}")
            if not creds.cnonce:
                problems.append("cnonce is missing")
        elif creds.qop is not None:
            problems.append(f"qop={creds.qop!r} was not offered")
        if problems:
            return problems
        expected = compute_response(
            username=creds.username, realm=creds.realm, nonce=creds.nonce, method="REGISTER",
            uri=creds.uri, password=opts.password, qop=creds.qop,
            nc=creds.nc if creds.qop else None, cnonce=creds.cnonce if creds.qop else None)
        if creds.response.lower() != expected:
            problems.append(f"response is {creds.response}, expected {expected} for password "
                            f"{opts.password!r} (--gb-password)")
        return problems

    def _message(self, seen: Seen) -> bytes | None:
        sn = _keepalive_sn(seen.request)
        if sn is None:
            seen.kind = "message"
            return self._reply(seen, 200)
        seen.kind, seen.sn = "keepalive", sn
        if self.drop_keepalives:
            seen.dropped = True
            return None
        return self._reply(seen, 200)

    # -- queries (GB/T 28181 §9.5), from the test thread ------------------------------

    def query(self, cmd_type: str, fields: list[Any] | None = None, *, root: str = "Query",
              method: str = "MESSAGE", headers: list[tuple[str, str]] | None = None,
              dialog: Dialog | None = None) -> tuple[int, str, float]:
        """Send a MANSCDP query (or a ``Control``, or a SUBSCRIBE with
        ``headers``; in ``dialog`` when given) to where the camera last
        registered from: (SN, Call-ID, time sent)."""
        from gbsip import manscdp
        regs = [s for s in self.of_kind("register") if s.status == 200]
        if not regs:
            raise self.trace.fail("cannot query: the camera is not registered")
        reg = regs[-1]
        contact = reg.request.contacts[0].uri if reg.request.contacts else \
            f"sip:{self.options.device_id}@{reg.source[0]}:{reg.source[1]}"
        with self.cond:
            self._sn += 1
            sn = self._sn
        call_id = dialog.call_id if dialog else f"q{sn}-{secrets.token_hex(6)}"
        from_tag = dialog.from_tag if dialog else secrets.token_hex(4)
        to_tag = f";tag={dialog.to_tag}" if dialog and dialog.to_tag else ""
        cseq = dialog.next_cseq() if dialog else 1
        host, port = self.address[0], self.address[1]
        t = self.listen.transport.upper()
        body = manscdp.build(root, cmd_type, sn, self.options.device_id, fields or [])
        extra = list(headers or [])
        if method == "SUBSCRIBE":
            extra.append(("Contact", f"<sip:{self.options.server_id}@{host}:{port}>"))
        data = bytes(gbsip.Request(method, contact, [
            ("Via", f"SIP/2.0/{t} {host}:{port};rport;branch=z9hG4bK{secrets.token_hex(8)}"),
            ("From", f"<sip:{self.options.server_id}@{self.realm}>;tag={from_tag}"),
            ("To", f"<sip:{self.options.device_id}@{self.realm}>{to_tag}"),
            ("Call-ID", call_id),
            ("CSeq", f"{cseq} {method}"),
            ("Max-Forwards", "70"),
            *extra,
            ("Content-Type", "Application/MANSCDP+xml"),
        ], body))
        where = f"{reg.source[0]}:{reg.source[1]}"
        self.trace.sent(data, where)
        sent_req = gbsip.parse(data)
        assert isinstance(sent_req, gbsip.Request)
        with self.cond:
            self.sent.append(sent_req)
        sent = time.monotonic()
        if self.listen.transport == "udp":
            self.sock.sendto(data, reg.source)
        else:
            for conn in list(self._conns):
                try:
                    if conn.getpeername()[:2] == reg.source:
                        conn.sendall(data)
                        break
                except OSError:
                    continue
        return sn, call_id, sent

    def exchange(self, cmd_type: str, timeout: float, *,
                 complete: Callable[[Exchange], bool], fields: list[Any] | None = None,
                 root: str = "Query", method: str = "MESSAGE",
                 headers: list[tuple[str, str]] | None = None,
                 dialog: Dialog | None = None, linger: float = 0.0) -> Exchange:
        """Query, then collect the SIP answers and the <Response> MESSAGEs of
        that SN until ``complete(exchange)`` or ``timeout`` seconds; then,
        if ``linger``, up to that long more for a <Response> when none came
        (for commands that may or may not draw one)."""
        from gbsip import manscdp
        sn, call_id, sent = self.query(cmd_type, fields, root=root, method=method,
                                       headers=headers, dialog=dialog)
        ex = Exchange(sn, cmd_type, sent, [], [], call_id)

        def collect() -> bool:
            ex.answers = [(at, r) for at, cid, r in self.answers
                          if cid == call_id and r.cseq is not None and r.cseq.method == method
                          and at >= sent]
            ex.responses = []
            for s in self.seen:
                if s.at < sent or s.kind != "message":
                    continue
                doc: manscdp.Document | None
                try:
                    doc = manscdp.parse(s.request.body, lenient=manscdp.Lenient.ALL)
                except manscdp.ManscdpError as exc:
                    doc = getattr(exc, "document", None)
                if doc is not None and doc.root is manscdp.Root.RESPONSE and \
                        doc.cmd_type.lower() == cmd_type.lower():
                    ex.responses.append((s.at, s, doc))
            return complete(ex)

        if self.wait(collect, timeout) and linger:
            self.wait(lambda: (collect(), bool(ex.responses))[1], linger)
        with self.cond:
            collect()
        return ex

    # -- reading the record ----------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Counts for notes and failure messages."""
        with self.cond:
            kinds: dict[str, int] = {}
            for s in self.seen:
                kinds[s.kind] = kinds.get(s.kind, 0) + 1
            return {"requests": kinds, "registered": self.binding is not None}
