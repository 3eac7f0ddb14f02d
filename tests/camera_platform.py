"""A platform of a few lines, scripted by the camera tests: it answers
REGISTER and MESSAGE requests 200 (unless told to hold them), sends queries,
controls and subscriptions to the devices that registered with it, and
keeps every message it received, in arrival order.  Raw sockets, gbsip.parse
and gbsip.manscdp only: it shares no code with the device side it tests."""
from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import gbsip
from gbsip import manscdp

SERVER_ID = "34020000002000000001"
DOMAIN = "3402000000"

Held = Callable[[gbsip.Request], bool]


class Platform:
    """``received``: every message, in order; ``hold(request)`` True: that
    request gets no 200 (the camera must retransmit it over UDP)."""

    def __init__(self, transport: str = "udp") -> None:
        self.transport = transport
        self.received: list[gbsip.Request | gbsip.Response] = []
        self.hold: Held = lambda _req: False
        self.addr: dict[str, Any] = {}   # device ID -> UDP address or TCP writer
        self._changed = asyncio.Event()
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._readers: list[asyncio.Task[Any]] = []
        self._seq = itertools.count(1)
        self.port = 0

    async def __aenter__(self) -> Platform:
        loop = asyncio.get_running_loop()
        if self.transport == "udp":
            platform = self

            class Proto(asyncio.DatagramProtocol):
                def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                    platform._on_message(data, addr)

            udp, _ = await loop.create_datagram_endpoint(Proto, local_addr=("127.0.0.1", 0))
            self._udp = udp
            self.port = udp.get_extra_info("sockname")[1]
        else:
            self._server = await asyncio.start_server(self._on_connection, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._udp is not None:
            self._udp.close()
        for w in self._writers:
            w.close()
        if self._server is not None:
            self._server.close()
        await asyncio.gather(*self._readers, return_exceptions=True)

    @property
    def server(self) -> str:
        return f"{self.transport}://127.0.0.1:{self.port}"

    # -- receiving ------------------------------------------------------------

    async def _on_connection(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        task = asyncio.current_task()
        if task is not None:
            self._readers.append(task)
        frames = gbsip.StreamParser()
        while data := await reader.read(65536):  # until our close in __aexit__
            frames.feed(data)
            while (frame := frames.next_frame()) is not None:
                self._on_message(frame, writer)

    def _on_message(self, data: bytes, peer: Any) -> None:
        msg = gbsip.parse(data)
        self.received.append(msg)
        if isinstance(msg, gbsip.Request):
            user = gbsip.parse_uri(msg.from_.uri).user if msg.from_ is not None else None
            if msg.method == "REGISTER" and user:
                self.addr[user] = peer
            if msg.method in ("REGISTER", "MESSAGE", "NOTIFY") and not self.hold(msg):
                self._send(bytes(msg.reply(200, to_tag="platform")), peer)
        self._changed.set()

    def _send(self, data: bytes, peer: Any) -> None:
        if self._udp is not None:
            self._udp.sendto(data, peer)
        else:
            peer.write(data)

    async def wait(self, pred: Callable[[list[Any]], object], timeout: float = 5.0) -> None:
        """Until pred(received) holds."""
        async with asyncio.timeout(timeout):
            while not pred(self.received):
                self._changed.clear()
                await self._changed.wait()

    async def registered(self, *device_ids: str, timeout: float = 5.0) -> None:
        await self.wait(lambda _r: all(d in self.addr for d in device_ids), timeout)

    # -- sending --------------------------------------------------------------

    def request(self, device_id: str, method: str, body: bytes = b"", *,
                call_id: str | None = None, headers: Sequence[tuple[str, str]] = (),
                cseq: int | None = None, to_tag: str | None = None) -> gbsip.Request:
        """Send a request to a registered device; returns it (for its Call-ID)."""
        n = next(self._seq)
        proto = "UDP" if self.transport == "udp" else "TCP"
        to = f"<sip:{device_id}@{DOMAIN}>" + (f";tag={to_tag}" if to_tag else "")
        hdrs = [("Via", f"SIP/2.0/{proto} 127.0.0.1:{self.port};rport;branch=z9hG4bKp{n}x"),
                ("From", f"<sip:{SERVER_ID}@{DOMAIN}>;tag=p{n}"), ("To", to),
                ("Call-ID", call_id or f"q{n}@platform"),
                ("CSeq", f"{cseq or n} {method}"), ("Max-Forwards", "70"), *headers]
        if body:
            hdrs.append(("Content-Type", "Application/MANSCDP+xml"))
        req = gbsip.Request(method, f"sip:{device_id}@{DOMAIN}", hdrs, body)
        self._send(bytes(req), self.addr[device_id])
        return req

    def query(self, device_id: str, cmd_type: str, sn: int,
              fields: Sequence[manscdp.Field] = (), charset: str = "GB2312",
              root: str = "Query", target: str | None = None) -> gbsip.Request:
        """A MANSCDP query (or control: root "Control") MESSAGE to a device,
        its body naming ``target`` (a channel) or the device itself."""
        body = manscdp.build(root, cmd_type, sn, target or device_id, fields, charset=charset)
        return self.request(device_id, "MESSAGE", body)

    def answer(self, request: gbsip.Request, status: int = 200) -> None:
        """Answer a request the platform held."""
        user = gbsip.parse_uri(request.from_.uri).user if request.from_ is not None else None
        self._send(bytes(request.reply(status, to_tag="platform")), self.addr[user or ""])

    # -- reading what came ----------------------------------------------------

    def responses_to(self, req: gbsip.Request) -> list[gbsip.Response]:
        return [m for m in self.received
                if isinstance(m, gbsip.Response) and m.call_id == req.call_id]

    def requests(self, method: str, cmd_type: str | None = None,
                 sn: int | None = None) -> list[gbsip.Request]:
        """The requests of a method (whose MANSCDP body has this CmdType/SN)."""
        out = []
        for m in self.received:
            if not isinstance(m, gbsip.Request) or m.method != method:
                continue
            if cmd_type is not None or sn is not None:
                if not m.body:
                    continue
                doc = manscdp.parse(m.body)
                if (cmd_type is not None and doc.cmd_type != cmd_type) or \
                        (sn is not None and doc.sn != sn):
                    continue
            out.append(m)
        return out

    def answers(self, cmd_type: str, sn: int) -> list[manscdp.Document]:
        """The distinct answer MESSAGEs to a query (retransmissions once each)."""
        seen: dict[tuple[str | None, int | None], manscdp.Document] = {}
        for m in self.requests("MESSAGE", cmd_type, sn):
            cseq = m.cseq
            seen.setdefault((m.call_id, cseq.number if cseq else None), manscdp.parse(m.body))
        return list(seen.values())
