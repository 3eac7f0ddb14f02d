"""A small scripted camera for the platform side's tests: a raw UDP socket
or TCP connection, gbsip.parse and gbsip.manscdp, nothing of gbsip's own
Device role.  It registers (GB/T 28181 §9.1), then answers the platform's
requests as its ``Script`` says: 200 first, then the ``<Response>``
MESSAGE(s) (§9.5), split by SumNum (Annex M), in any order, with parts
lost or repeated, a wrong SN, no SumNum, the answer before the 200...
"""
from __future__ import annotations

import asyncio
import itertools
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import gbsip
from gbsip import manscdp
from test_registrar_asyncio import (
    PASSWORD,
    REALM,
    SERVER_ID,
    authorization,
    register_request,
)

_branch = itertools.count(1)


@dataclass
class Script:
    """How the camera answers (the defaults: as the standard says)."""

    channels: int = 3                # Catalog items
    part_size: int = 2               # items per Catalog part
    order: list[int] | None = None   # part order (indices); None: in order
    lose: set[int] = field(default_factory=set)        # parts never sent
    repeat: set[int] = field(default_factory=set)      # parts sent twice (new transaction)
    broken: set[int] = field(default_factory=set)      # parts sent without </Response>
    status: int = 200                # the SIP answer to the query
    answer: bool = True              # send a SIP answer at all
    respond: bool = True             # send the <Response> MESSAGE(s)
    sn_offset: int = 0               # a wrong SN in the Response
    sum_num: bool = True             # write SumNum
    sum_num_text: str | None = None  # write this as SumNum instead of the count
    response_first: bool = False     # the Response before the 200
    result: str = "OK"               # Result of a control Response
    ptz_result: str | None = None    # a Response to PTZ control too, with this Result
    notify_after_subscribe: bool = True
    device_status: bool = True       # DeviceStatus with Online/Status/DeviceTime
    config_expiration: int = 3600    # BasicParam Expiration (it registers for 3600 s)
    positions: bool = True           # MobilePosition NOTIFYs every Interval s
    notify_state: str = "active;expires=3600"  # the NOTIFYs' Subscription-State


class ScriptedCamera:
    """One device ID on one socket (UDP) or connection (TCP)."""

    def __init__(self, device_id: str, server: tuple[str, int], transport: str = "udp",
                 script: Script | None = None) -> None:
        self.device_id = device_id
        self.server = server
        self.transport = transport
        self.script = script or Script()
        self.requests: list[gbsip.Request] = []     # what the platform sent
        self.answers: asyncio.Queue[gbsip.Response] = asyncio.Queue()
        self.sent_subscribe_answers = 0
        self._sock: socket.socket | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._buf = bytearray()
        self._task: asyncio.Task[None] | None = None
        self._timers: set[asyncio.Future[None]] = set()
        self.local: tuple[str, int] = ("", 0)

    # -- wire ---------------------------------------------------------------

    async def open(self) -> ScriptedCamera:
        loop = asyncio.get_running_loop()
        if self.transport == "udp":
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
            self._sock.bind(("127.0.0.1", 0))
            self._sock.connect(self.server)
        else:
            self._reader, self._writer = await asyncio.open_connection(*self.server)
        self.local = (self._sock.getsockname() if self._sock else
                      self._writer.get_extra_info("sockname"))[:2]  # type: ignore[union-attr]
        self._task = loop.create_task(self._serve())
        return self

    async def _recv(self) -> bytes:
        if self._sock is not None:
            return await asyncio.get_running_loop().sock_recv(self._sock, 65536)
        assert self._reader is not None
        while True:
            framed = gbsip.frame(self._buf)
            if framed is not None:
                skip, length = framed
                data = bytes(self._buf[skip:skip + length])
                del self._buf[:skip + length]
                return data
            chunk = await self._reader.read(65536)
            if not chunk:
                raise ConnectionError("closed")
            self._buf += chunk

    def send(self, data: bytes) -> None:
        if self._sock is not None:
            self._sock.send(data)
        else:
            assert self._writer is not None
            self._writer.write(data)

    async def close(self) -> None:
        for timer in list(self._timers):
            timer.cancel()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, ConnectionError):
                pass
        if self._sock is not None:
            self._sock.close()
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except ConnectionError:
                pass

    # -- registration -------------------------------------------------------

    async def register(self, password: str = PASSWORD) -> None:
        t = self.transport.upper()
        self.send(register_request(self.device_id, self.local, transport=t))
        first = await asyncio.wait_for(self.answers.get(), 5)
        assert first.status == 401, first
        auth = authorization(self.device_id, password, first.headers["WWW-Authenticate"])
        self.send(register_request(self.device_id, self.local, transport=t, cseq=2, auth=auth))
        ok = await asyncio.wait_for(self.answers.get(), 5)
        assert ok.status == 200, ok

    # -- the platform's requests --------------------------------------------

    async def _serve(self) -> None:
        while True:
            data = await self._recv()
            msg = gbsip.parse(data)
            if isinstance(msg, gbsip.Response):
                if msg.cseq and msg.cseq.method == "REGISTER":
                    self.answers.put_nowait(msg)
                continue
            assert isinstance(msg, gbsip.Request)
            self.requests.append(msg)
            if msg.method in ("MESSAGE", "SUBSCRIBE"):
                # a retransmission of a request already seen gets nothing new
                if sum(1 for r in self.requests if r.via and msg.via and
                       r.via.branch == msg.via.branch) > 1:
                    continue
                await self._answer(msg)

    async def _answer(self, req: gbsip.Request) -> None:
        s = self.script
        doc = manscdp.parse(req.body)
        bodies = self._responses(doc) if s.respond else []
        reply = bytes(req.reply(s.status, headers=[("Expires", req.headers["Expires"])]
                                if req.method == "SUBSCRIBE" and "Expires" in req.headers
                                else []))
        if s.response_first:
            for body in bodies:
                self.send(self._message(body))
                await asyncio.sleep(0.01)
        if s.answer:
            self.send(reply)
        if s.status >= 300 or s.response_first:
            return
        if req.method == "SUBSCRIBE":
            if s.notify_after_subscribe and req.headers.get("Expires") != "0":
                await asyncio.sleep(0.01)
                self.send(self._notify(req, doc))
                if doc.cmd_type == "MobilePosition" and s.positions:
                    self._positions(req, doc)
            return
        for body in bodies:
            await asyncio.sleep(0.005)
            self.send(self._message(body))

    def _positions(self, req: gbsip.Request, q: manscdp.Document) -> None:
        """A NOTIFY every Interval seconds for Expires seconds (§9.11.1)."""
        interval = float(q.text("Interval") or 5)
        count = int(int(req.headers.get("Expires") or 0) / max(interval, 0.1))

        async def run() -> None:
            for _ in range(min(count, 100)):
                await asyncio.sleep(interval)
                self.send(self._notify(req, q))

        task = asyncio.ensure_future(run())
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    def _responses(self, q: manscdp.Document) -> list[bytes]:
        """The <Response> bodies answering q, in the order the script says."""
        s = self.script
        sn = q.sn + s.sn_offset
        if q.root is manscdp.Root.CONTROL:
            if q.text("PTZCmd") is not None and s.ptz_result is not None:
                return [manscdp.build("Response", "DeviceControl", sn, self.device_id,
                                      [("Result", s.ptz_result)])]
            if q.text("PTZCmd") is not None or q.text("TeleBoot") is not None:
                return []
            return [manscdp.build("Response", "DeviceControl", sn, self.device_id,
                                  [("Result", s.result)])]
        if q.cmd_type == "Catalog" and q.root is manscdp.Root.QUERY:
            items = [[("DeviceID", f"{self.device_id[:14]}{i + 1:06d}"),
                      ("Name", f"通道{i + 1}"), ("Status", "ON")]
                     for i in range(s.channels)]
            parts = [items[i:i + s.part_size]
                     for i in range(0, len(items), s.part_size)] or [[]]
            bodies = []
            for part in parts:
                sum_value: Any = s.channels if s.sum_num_text is None else s.sum_num_text
                fields: list[Any] = [("SumNum", sum_value)] if s.sum_num else []
                fields.append(("DeviceList",
                               [("Item", item) for item in part], {"Num": len(part)}))
                bodies.append(manscdp.build("Response", "Catalog", sn, self.device_id, fields))
            order = s.order if s.order is not None else list(range(len(bodies)))
            out = []
            for i in order:
                if i in s.lose:
                    continue
                out.append(bodies[i][:bodies[i].rindex(b"</Response>")] if i in s.broken
                           else bodies[i])
                if i in s.repeat:
                    out.append(bodies[i])
            return out
        if q.cmd_type == "RecordInfo":
            records = [[("DeviceID", self.device_id), ("Name", "cam"),
                        ("StartTime", f"2026-12-03T0{i}:00:00"),
                        ("EndTime", f"2026-12-03T0{i}:30:00"), ("Type", "time")]
                       for i in range(s.channels)]
            parts = [records[i:i + s.part_size] for i in range(0, len(records), s.part_size)]
            return [manscdp.build("Response", "RecordInfo", sn, self.device_id, [
                ("Name", "cam"), *([("SumNum", s.channels)] if s.sum_num else []),
                ("RecordList", [("Item", r) for r in part], {"Num": len(part)})])
                for part in reversed(parts)]
        if q.cmd_type == "DeviceStatus":
            extra: list[Any] = [("Online", "ONLINE"), ("Status", "OK"),
                                ("DeviceTime", time.strftime("%Y-%m-%dT%H:%M:%S")),
                                ("Encode", "ON"), ("Record", "OFF")] if s.device_status else []
            return [manscdp.build("Response", "DeviceStatus", sn, self.device_id,
                                  [("Result", "OK"), *extra])]
        if q.cmd_type == "ConfigDownload":
            return [manscdp.build("Response", "ConfigDownload", sn, self.device_id, [
                ("Result", "OK"), ("BasicParam", [
                    ("Name", "cam"), ("Expiration", s.config_expiration),
                    ("HeartBeatInterval", 60), ("HeartBeatCount", 3)])])]
        if q.cmd_type == "DeviceInfo":
            return [manscdp.build("Response", "DeviceInfo", sn, self.device_id, [
                ("DeviceName", "大门"), ("Result", "OK"), ("Manufacturer", "gbsip-test"),
                ("Model", "T1"), ("Firmware", "1.0"), ("Channel", s.channels)])]
        return [manscdp.build("Response", q.cmd_type, sn, self.device_id, [("Result", "OK")])]

    def _message(self, body: bytes) -> bytes:
        n = next(_branch)
        t = self.transport.upper()
        return bytes(gbsip.Request("MESSAGE", f"sip:{SERVER_ID}@{REALM}", [
            ("Via", f"SIP/2.0/{t} {self.local[0]}:{self.local[1]};rport;branch=z9hG4bKr{n}"),
            ("From", f"<sip:{self.device_id}@{REALM}>;tag=r{n}"),
            ("To", f"<sip:{SERVER_ID}@{REALM}>"),
            ("Call-ID", f"resp-{n}@{self.local[0]}"),
            ("CSeq", "20 MESSAGE"),
            ("Max-Forwards", "70"),
            ("Content-Type", "Application/MANSCDP+xml"),
        ], body))

    def _notify(self, sub: gbsip.Request, q: manscdp.Document) -> bytes:
        n = next(_branch)
        t = self.transport.upper()
        body = manscdp.build("Notify", q.cmd_type, q.sn, self.device_id,
                             [("SumNum", 1), ("DeviceList", [("Item", [
                                 ("DeviceID", f"{self.device_id[:14]}000001"),
                                 ("Event", "ON")])], {"Num": 1})])
        assert sub.from_ is not None and sub.to is not None
        return bytes(gbsip.Request("NOTIFY", f"sip:{SERVER_ID}@{REALM}", [
            ("Via", f"SIP/2.0/{t} {self.local[0]}:{self.local[1]};rport;branch=z9hG4bKn{n}"),
            ("From", f"<sip:{self.device_id}@{REALM}>;tag=camtag"),
            ("To", f"<sip:{SERVER_ID}@{REALM}>;tag={sub.from_.params.get('tag', '')}"),
            ("Call-ID", sub.call_id or ""),
            ("CSeq", f"{n} NOTIFY"),
            ("Max-Forwards", "70"),
            ("Event", sub.headers["Event"]),
            ("Subscription-State", self.script.notify_state),
            ("Content-Type", "Application/MANSCDP+xml"),
        ], body))
