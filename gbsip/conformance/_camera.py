"""The camera the platform suite plays: a small blocking SIP UAC.

Deliberately plain: each request is built with :class:`gbsip.Request`, sent
on one socket (UDP, or one TCP connection as GB/T 28181-2022 §9.1.1 f
wants), retransmitted on Timer E over UDP, and every byte in and out goes
to the :class:`Trace` a failing check prints.  Requests the platform sends
to the camera (Catalog queries after registration, OPTIONS) are answered
200 so the platform has no reason to misbehave.
"""
from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import gbsip
from gbsip import StreamParser
from gbsip.conformance._common import GBOptions, Target, Trace
from gbsip.digest import Challenge, compute_response

T1 = 0.5
T2 = 4.0


def _local_ip_for(target: Target) -> str:
    """The address this machine uses to reach the target (for Via/Contact)."""
    family = socket.AF_INET6 if ":" in target.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((target.host, target.port))
            return str(probe.getsockname()[0])
        except OSError:
            return "::1" if family == socket.AF_INET6 else "127.0.0.1"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@dataclass
class Flow:
    """A registration attempt: the first answer and the last one."""

    first: gbsip.Response
    final: gbsip.Response
    challenge: Challenge | None
    authorization: str | None


class Camera:
    """One GB/T 28181 device identity talking to the platform under test."""

    def __init__(self, options: GBOptions, trace: Trace, *, device_id: str | None = None,
                 password: str | None = None) -> None:
        assert options.platform is not None
        self.options = options
        self.target = options.platform
        self.trace = trace
        self.device_id = device_id or options.device_id
        self.password = options.password if password is None else password
        self.server_id = options.server_id
        self.domain = options.domain
        self.timeout = options.timeout
        self.local_host = _local_ip_for(self.target)
        family = socket.AF_INET6 if ":" in self.target.host else socket.AF_INET
        self.transport = self.target.transport
        if self.transport == "udp":
            self.sock = socket.socket(family, socket.SOCK_DGRAM)
            self.sock.bind((self.local_host, 0))
        else:
            self.sock = socket.create_connection((self.target.host, self.target.port),
                                                 timeout=self.timeout,
                                                 source_address=(self.local_host, 0))
        self.local_port = int(self.sock.getsockname()[1])
        self._stream = StreamParser()
        self.call_id = f"{secrets.token_hex(8)}@{self.local_host}"
        self.from_tag = secrets.token_hex(5)
        self.cseq = 0
        self.keepalive_sn = 0
        self.peer = str(self.target)
        self.ruri = f"sip:{self.server_id}@{self.domain}"
        self.aor = f"sip:{self.device_id}@{self.domain}"
        self.contact_uri = f"sip:{self.device_id}@{_bracket(self.local_host)}:{self.local_port}"
        #: True while the platform may hold a binding of ours (cleanup unregisters)
        self.bound = False
        #: Requests the platform sent us, in order, with when they came (all
        #: answered: 200, a SUBSCRIBE with the Expires granted below)
        self.requests: list[tuple[float, gbsip.Request]] = []
        self._taken = 0
        #: Seconds granted to a SUBSCRIBE at most (None: what it asks)
        self.subscription_grant: int | None = None

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Camera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- building ------------------------------------------------------------

    def branch(self) -> str:
        return "z9hG4bK" + secrets.token_hex(8)

    def via(self, branch: str | None = None) -> str:
        return (f"SIP/2.0/{self.transport.upper()} {_bracket(self.local_host)}:"
                f"{self.local_port};rport;branch={branch or self.branch()}")

    def register(self, *, expires: int | None = None, cseq: int | None = None,
                 authorization: str | None = None, contact: str | None = None,
                 call_id: str | None = None, extra: list[tuple[str, str]] | None = None,
                 include_expires: bool = True) -> bytes:
        """A REGISTER as a GB camera sends it (RFC 3261 §10.2)."""
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        else:
            self.cseq = max(self.cseq, cseq)
        headers = [
            ("Via", self.via()),
            ("From", f"<{self.aor}>;tag={self.from_tag}"),
            ("To", f"<{self.aor}>"),
            ("Call-ID", call_id or self.call_id),
            ("CSeq", f"{cseq} REGISTER"),
            ("Contact", contact if contact is not None else f"<{self.contact_uri}>"),
            ("Max-Forwards", "70"),
            ("User-Agent", f"gbsip-conformance/{gbsip.__version__}"),
        ]
        if include_expires:
            headers.append(("Expires", str(self.options.expires if expires is None else expires)))
        if authorization:
            headers.append(("Authorization", authorization))
        headers.extend(extra or [])
        return bytes(gbsip.Request("REGISTER", self.ruri, headers))

    def keepalive(self, sn: int | None = None) -> bytes:
        """A GB/T 28181 §9.6.1 keepalive MESSAGE."""
        if sn is None:
            self.keepalive_sn += 1
            sn = self.keepalive_sn
        body = (f'<?xml version="1.0" encoding="GB2312"?>\r\n<Notify>\r\n'
                f"<CmdType>Keepalive</CmdType>\r\n<SN>{sn}</SN>\r\n"
                f"<DeviceID>{self.device_id}</DeviceID>\r\n<Status>OK</Status>\r\n"
                f"</Notify>\r\n").encode()
        return self.message(body, cseq=sn)

    def message(self, body: bytes, cseq: int = 20) -> bytes:
        """A MANSCDP MESSAGE to the platform (a keepalive, a query's
        ``<Response>``)."""
        headers = [
            ("Via", self.via()),
            ("From", f"<{self.aor}>;tag={self.from_tag}"),
            ("To", f"<sip:{self.server_id}@{self.domain}>"),
            ("Call-ID", f"{secrets.token_hex(8)}@{self.local_host}"),
            ("CSeq", f"{cseq} MESSAGE"),
            ("Max-Forwards", "70"),
            ("User-Agent", f"gbsip-conformance/{gbsip.__version__}"),
            ("Content-Type", "Application/MANSCDP+xml"),
        ]
        return bytes(gbsip.Request("MESSAGE", f"sip:{self.server_id}@{self.domain}",
                                   headers, body))

    def notify(self, sn: int = 1) -> bytes:
        """A GB/T 28181 §9.11.1 NOTIFY of a Catalog subscription: one
        channel's status changed."""
        body = (f'<?xml version="1.0" encoding="GB2312"?>\r\n<Notify>\r\n'
                f"<CmdType>Catalog</CmdType>\r\n<SN>{sn}</SN>\r\n"
                f"<DeviceID>{self.device_id}</DeviceID>\r\n<SumNum>1</SumNum>\r\n"
                f'<DeviceList Num="1">\r\n<Item>\r\n<DeviceID>{self.device_id}</DeviceID>'
                f"\r\n<Event>ON</Event>\r\n</Item>\r\n</DeviceList>\r\n</Notify>\r\n").encode()
        headers = [
            ("Via", self.via()),
            ("From", f"<{self.aor}>;tag={self.from_tag}"),
            ("To", f"<sip:{self.server_id}@{self.domain}>;tag={secrets.token_hex(4)}"),
            ("Call-ID", f"{secrets.token_hex(8)}@{self.local_host}"),
            ("CSeq", f"{sn} NOTIFY"),
            ("Max-Forwards", "70"),
            ("Event", "Catalog"),
            ("Subscription-State", "active;expires=3600"),
            ("User-Agent", f"gbsip-conformance/{gbsip.__version__}"),
            ("Content-Type", "Application/MANSCDP+xml"),
        ]
        return bytes(gbsip.Request("NOTIFY", f"sip:{self.server_id}@{self.domain}",
                                   headers, body))

    def credentials(self, challenge: Challenge, *, password: str | None = None,
                    nc: int = 1, cnonce: str | None = None, nonce: str | None = None,
                    realm: str | None = None, username: str | None = None) -> str:
        """Digest credentials for REGISTER (RFC 2617 §3.2.2; qop=auth when
        offered, as GB platforms commonly do), uri = the Request-URI."""
        username = username or self.device_id
        realm = challenge.realm if realm is None else realm
        nonce = challenge.nonce if nonce is None else nonce
        secret = self.password if password is None else password
        qop = "auth" if "auth" in challenge.qop else None
        cnonce = cnonce or secrets.token_hex(8)
        response = compute_response(username=username, realm=realm, nonce=nonce,
                                    method="REGISTER", uri=self.ruri, password=secret,
                                    qop=qop, nc=nc if qop else None,
                                    cnonce=cnonce if qop else None)
        value = (f'Digest username="{username}",realm="{realm}",nonce="{nonce}",'
                 f'uri="{self.ruri}",response="{response}",algorithm=MD5')
        if challenge.opaque is not None:
            value += f',opaque="{challenge.opaque}"'
        if qop:
            value += f',qop=auth,nc={nc:08x},cnonce="{cnonce}"'
        return value

    # -- the wire --------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.trace.sent(data, self.peer)
        if self.transport == "udp":
            self.sock.sendto(data, (self.target.host, self.target.port))
        else:
            self.sock.sendall(data)

    def _read(self, timeout: float) -> bytes | None:
        """One message from the platform, or None when the time is up."""
        deadline = time.monotonic() + timeout
        while True:
            if self.transport == "tcp":
                try:
                    frame = self._stream.next_frame()
                except gbsip.SIPParseError as exc:
                    # the stream cannot resynchronise: nothing more will come
                    self.trace.note(f"unframeable stream from the platform: {exc.reason}")
                    self.sock.close()
                    return None
                if frame is not None:
                    return frame
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                if self.transport == "udp":
                    data, _addr = self.sock.recvfrom(65536)
                    return data
                chunk = self.sock.recv(65536)
            except (socket.timeout, BlockingIOError):
                return None
            except ConnectionError:
                return None
            if not chunk:
                return None
            self._stream.feed(chunk)

    def receive(self, timeout: float) -> gbsip.Response | None:
        """The next response (requests from the platform are answered 200)."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self._next(deadline)
            if msg is None or isinstance(msg, gbsip.Response):
                return msg

    def _next(self, deadline: float) -> gbsip.Response | gbsip.Request | None:
        """The next message before ``deadline`` (a request is recorded and
        answered first), or None when the time is up or the stream ended."""
        while True:
            data = self._read(max(0.0, deadline - time.monotonic()))
            if data is None:
                return None
            self.trace.received(data, self.peer)
            try:
                msg = gbsip.parse(data, lenient=gbsip.Lenient.ALL)
            except gbsip.SIPParseError as exc:
                self.trace.note(f"unparseable message from the platform: {exc}")
                continue
            if isinstance(msg, gbsip.Request):
                self._on_request(msg)
            return msg

    def _on_request(self, msg: gbsip.Request) -> None:
        """Record a request of the platform and answer it 200 (a SUBSCRIBE
        with the granted Expires, RFC 6665 §4.2.1.1)."""
        if msg.method == "ACK":
            return
        self.requests.append((time.monotonic(), msg))
        headers: list[tuple[str, str]] = []
        if msg.method == "SUBSCRIBE":
            asked = msg.expires if msg.expires is not None else 3600
            grant = asked if self.subscription_grant is None else min(
                asked, self.subscription_grant)
            headers = [("Expires", str(grant)),
                       ("Contact", f"<{self.contact_uri}>")]
        self.send(bytes(msg.reply(200, to_tag=self.from_tag, headers=headers)))

    def wait_request(self, match: Callable[[gbsip.Request], bool],
                     timeout: float) -> tuple[float, gbsip.Request] | None:
        """The next request of the platform (not returned before) that
        ``match`` accepts, with when it came; None after ``timeout``.
        Others met on the way are answered and recorded as usual."""
        deadline = time.monotonic() + timeout
        while True:
            while self._taken < len(self.requests):
                at, req = self.requests[self._taken]
                self._taken += 1
                if match(req):
                    return at, req
            if time.monotonic() >= deadline or self._next(deadline) is None:
                return None

    def transact(self, request: bytes, timeout: float | None = None,
                 retransmit: bool = True) -> gbsip.Response | None:
        """Send a request and return its final response (RFC 3261 §17.1.2:
        over UDP resent after T1, 2·T1 … T2), or None after ``timeout``."""
        timeout = self.timeout if timeout is None else timeout
        req = gbsip.parse(request)
        assert isinstance(req, gbsip.Request)
        branch = req.via.branch if req.via else None
        cseq = req.cseq
        self.send(request)
        deadline = time.monotonic() + timeout
        interval = T1
        resend_at = time.monotonic() + interval
        while True:
            now = time.monotonic()
            if now >= deadline:
                return None
            wait = min(deadline, resend_at if retransmit and self.transport == "udp"
                       else deadline) - now
            msg = self.receive(max(0.0, wait))
            if msg is None:
                if retransmit and self.transport == "udp" and time.monotonic() >= resend_at:
                    self.send(request)
                    interval = min(interval * 2, T2)
                    resend_at = time.monotonic() + interval
                continue
            if msg.via is not None and msg.via.branch != branch:
                continue  # an answer to something else (an earlier retransmission)
            if msg.cseq is not None and cseq is not None and msg.cseq != cseq:
                continue
            if msg.status < 200:
                interval = T2  # RFC 3261 §17.1.2.2: after a provisional, resend at T2
                continue
            return msg

    def drain(self, wait: float = 0.05) -> None:
        """Read and record whatever is still arriving (late retransmissions)."""
        while self.receive(wait) is not None:
            pass

    # -- flows -----------------------------------------------------------------

    def expect(self, request: bytes, what: str, timeout: float | None = None) -> gbsip.Response:
        """transact(), failing the check when nothing comes back."""
        answer = self.transact(request, timeout)
        if answer is None:
            raise self.trace.fail(f"no final answer to {what} within "
                                  f"{self.timeout if timeout is None else timeout:g} s")
        return answer

    def challenge_of(self, response: gbsip.Response) -> Challenge:
        """The Digest challenge of a 401, failing the check if unusable."""
        value = response.headers.get("WWW-Authenticate")
        if value is None:
            raise self.trace.fail(f"{response.status} without WWW-Authenticate "
                                  "(RFC 3261 §20.44)")
        try:
            return Challenge.parse(value)
        except gbsip.GBSIPError as exc:
            raise self.trace.fail(f"WWW-Authenticate is not a usable Digest challenge: "
                                  f"{value!r} ({exc})") from exc

    def register_flow(self, *, expires: int | None = None, password: str | None = None,
                      contact: str | None = None, what: str = "REGISTER",
                      extra: list[tuple[str, str]] | None = None) -> Flow:
        """REGISTER → (401 → REGISTER with credentials) → final answer."""
        first = self.expect(self.register(expires=expires, contact=contact, extra=extra), what)
        if first.status != 401:
            if first.status == 200:
                self.bound = expires != 0
            return Flow(first, first, None, None)
        challenge = self.challenge_of(first)
        auth = self.credentials(challenge, password=password)
        final = self.expect(self.register(expires=expires, contact=contact, extra=extra,
                                          authorization=auth),
                            f"{what} with credentials")
        if final.status == 200:
            self.bound = expires != 0
        return Flow(first, final, challenge, auth)

    def registered(self, *, expires: int | None = None) -> Flow:
        """A successful registration, or the check fails (it is a precondition)."""
        flow = self.register_flow(expires=expires)
        if flow.final.status != 200:
            raise self.trace.fail(
                f"precondition: registration with the right password was answered "
                f"{flow.final.status} {flow.final.reason}, not 200")
        return flow

    def unregister(self) -> gbsip.Response | None:
        """Best-effort cleanup: REGISTER Expires: 0 with credentials."""
        try:
            first = self.transact(self.register(expires=0), self.timeout)
            if first is None or first.status != 401:
                return first
            challenge = Challenge.parse(first.headers.get("WWW-Authenticate") or "")
            return self.transact(self.register(
                expires=0, authorization=self.credentials(challenge)), self.timeout)
        except (OSError, gbsip.GBSIPError):
            return None

