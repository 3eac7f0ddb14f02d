#!/usr/bin/env python3
"""Catalog from every camera of one simulator process (issue 13, scale).

One process runs a gbsip.Simulator: DEVICES cameras with CHANNELS channels
each plus NVRS recorders with NVR_CHANNELS channels (nvr_fraction), UDP on
loopback, keepalives off.  This process is a scripted platform of raw
sockets: it answers the REGISTERs 200, then sends a Catalog query MESSAGE
to every device (at most --window outstanding), answers every answer part
200, and checks each Catalog is complete (items == SumNum, every part's
DeviceList Num right).  Prints queries answered per second, answer
MESSAGEs per second, answers lost, the simulator's memory per device and
its CPU during the query phase; --json for the figures alone.

    .venv/bin/python -P benchmarks/bench_catalog.py                 # 100,000 + 1,000 NVRs
    .venv/bin/python -P benchmarks/bench_catalog.py --devices 2000 --nvrs 20   # a quick look
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import selectors
import socket
import sys
import time
from typing import Any

import gbsip
from gbsip import manscdp

SERVER_ID = "34020000002000000001"
DOMAIN = "3402000000"


def simulator(port: int, args: argparse.Namespace, done: Any, out: Any) -> None:
    """The simulator process: run until the platform says it is done."""
    total = args.devices + args.nvrs

    async def main() -> dict[str, Any]:
        sim = gbsip.Simulator(total, server=f"udp://127.0.0.1:{port}", server_id=SERVER_ID,
                              rate=args.rate, duration=args.timeout, keepalive_interval=None,
                              channels=args.channels, nvr_fraction=args.nvrs / total,
                              nvr_channels=args.nvr_channels, sockets=8, t1=0.5,
                              settle_timeout=5)
        async with sim:
            run = asyncio.ensure_future(sim.run())
            while not done.is_set() and not run.done():
                await asyncio.sleep(0.1)
            mem = sim.stats()["memory"]  # before unregistering
            sim.stop()
            report = await run
        report["memory_at_end_of_queries"] = mem
        return report

    out.put(asyncio.run(main()))


def cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Platform:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.addr: dict[str, tuple[str, int]] = {}
        self.pending: dict[int, dict[str, Any]] = {}   # SN -> state of the query
        self.complete = 0
        self.parts = 0
        self.items = 0
        self.bad: list[str] = []
        self.unregistered = 0

    def serve(self, timeout: float) -> int:
        """Take what arrives for up to timeout seconds; returns datagrams handled."""
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ)
        n = 0
        if sel.select(timeout):
            while True:
                try:
                    data, peer = self.sock.recvfrom(65536)
                except BlockingIOError:
                    break
                self.handle(data, peer)
                n += 1
        sel.close()
        return n

    def send(self, data: bytes, peer: tuple[str, int]) -> None:
        while True:
            try:
                self.sock.sendto(data, peer)
                return
            except BlockingIOError:
                time.sleep(0.0005)

    def handle(self, data: bytes, peer: tuple[str, int]) -> None:
        msg = gbsip.parse(data)
        if not isinstance(msg, gbsip.Request):
            return  # the 200s to our queries
        if msg.method == "REGISTER":
            user = gbsip.parse_uri(msg.from_.uri).user if msg.from_ else None
            if user:
                self.addr[user] = peer
                if msg.expires == 0:
                    self.unregistered += 1
            self.send(bytes(msg.reply(200, to_tag="p", headers=[("Expires",
                                                                  str(msg.expires or 3600))])),
                      peer)
            return
        self.send(bytes(msg.reply(200, to_tag="p")), peer)
        if msg.method != "MESSAGE" or not msg.body:
            return
        doc = manscdp.parse(msg.body)
        q = self.pending.get(doc.sn)
        if doc.cmd_type != "Catalog" or q is None:
            return
        key = (msg.call_id, msg.cseq.number if msg.cseq else 0)
        if key in q["seen"]:
            return  # a retransmission
        q["seen"].add(key)
        items = len(doc.items)
        if doc.attr("DeviceList", "Num") != str(items):
            self.bad.append(f"SN {doc.sn}: DeviceList Num {doc.attr('DeviceList', 'Num')} "
                            f"with {items} items")
        q["sum"] = int(doc.text("SumNum") or -1)
        q["items"] += items
        self.parts += 1
        self.items += items
        if q["items"] >= q["sum"]:
            if q["items"] != q["sum"]:
                self.bad.append(f"SN {doc.sn}: {q['items']} items, SumNum {q['sum']}")
            del self.pending[doc.sn]
            self.complete += 1

    def query(self, device_id: str, sn: int) -> None:
        body = manscdp.build("Query", "Catalog", sn, device_id)
        req = gbsip.Request("MESSAGE", f"sip:{device_id}@{DOMAIN}", [
            ("Via", f"SIP/2.0/UDP 127.0.0.1:{self.port};rport;branch=z9hG4bKc{sn}"),
            ("From", f"<sip:{SERVER_ID}@{DOMAIN}>;tag=c{sn}"),
            ("To", f"<sip:{device_id}@{DOMAIN}>"), ("Call-ID", f"cat{sn}@platform"),
            ("CSeq", "1 MESSAGE"), ("Max-Forwards", "70"),
            ("Content-Type", "Application/MANSCDP+xml")], body)
        self.pending[sn] = {"items": 0, "sum": -1, "seen": set(), "id": device_id}
        self.send(bytes(req), self.addr[device_id])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--channels", type=int, default=4)
    ap.add_argument("--nvrs", type=int, default=1_000)
    ap.add_argument("--nvr-channels", type=int, default=64)
    ap.add_argument("--rate", type=float, default=20_000, help="registrations per second")
    ap.add_argument("--window", type=int, default=2_000, help="queries outstanding at most")
    ap.add_argument("--timeout", type=float, default=150, help="the whole run at most (s)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    total = args.devices + args.nvrs
    p = Platform(args)
    ctx = mp.get_context("fork")
    done, out = ctx.Event(), ctx.Queue()
    child = ctx.Process(target=simulator, args=(p.port, args, done, out))
    t_start = time.monotonic()
    child.start()
    deadline = t_start + args.timeout
    while len(p.addr) < total and time.monotonic() < deadline:
        p.serve(0.2)
    registered = len(p.addr)
    t_reg = time.monotonic() - t_start
    ids = list(p.addr)
    cpu0, t0 = cpu_of(child.pid or 0), time.monotonic()
    sn, last_progress = 0, t0
    while (sn < len(ids) or p.pending) and time.monotonic() < deadline:
        while sn < len(ids) and len(p.pending) < args.window:
            sn += 1
            p.query(ids[sn - 1], sn)
        before = p.complete + p.parts
        p.serve(0.05)
        now = time.monotonic()
        if p.complete + p.parts != before:
            last_progress = now
        elif now - last_progress > 40:  # Timer F (32 s) and more: nothing comes any more
            break
    t_q = time.monotonic() - t0
    cpu_q = cpu_of(child.pid or 0) - cpu0
    done.set()
    report: dict[str, Any] | None = None
    while report is None and time.monotonic() < deadline + 60:
        p.serve(0.1)
        try:
            report = out.get_nowait()
        except Exception:  # queue.Empty
            pass
    child.join(10)
    mem = report["memory_at_end_of_queries"] if report else {}
    channels = args.devices * args.channels + args.nvrs * args.nvr_channels
    figures = {
        "devices": args.devices, "nvrs": args.nvrs, "channels": channels,
        "registered": registered, "registration_seconds": round(t_reg, 1),
        "queries": sn, "answered": p.complete, "lost": sn - p.complete,
        "answer_parts": p.parts, "items": p.items, "errors": p.bad[:10],
        "query_seconds": round(t_q, 2),
        "queries_per_s": round(p.complete / t_q) if t_q else 0,
        "answer_messages_per_s": round(p.parts / t_q) if t_q else 0,
        "simulator_cpu_seconds_queries": round(cpu_q, 2),
        "simulator_cpu_percent_queries": round(100 * cpu_q / t_q) if t_q else 0,
        "simulator_rss_delta_bytes": mem.get("rss_delta_bytes"),
        "simulator_rss_per_device": round(mem["rss_delta_bytes"] / total) if mem else None,
        "fleet_state_bytes": mem.get("fleet_state_bytes"),
        "fleet_bytes_per_device": round(mem["fleet_state_bytes"] / total) if mem else None,
        "camera_bytes": mem.get("camera_bytes"),
        "answers": report["camera"] if report else None,
    }
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        for k, v in figures.items():
            print(f"{k:32} {v}")
    return 0 if figures["lost"] == 0 and not p.bad else 1


if __name__ == "__main__":
    sys.exit(main())
