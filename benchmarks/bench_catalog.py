#!/usr/bin/env python3
"""Catalog from every camera of one simulator process (issue 13, scale).

The cameras: one process running a gbsip.Simulator (DEVICES cameras with
CHANNELS channels each plus NVRS recorders with NVR_CHANNELS channels,
nvr_fraction; UDP on loopback, keepalives off), or with --cameras sipp one
sipp process playing DEVICES 4-channel cameras (benchmarks/sipp/), or
--cameras both, one after the other in the same run.

The platform (--driver registrar, the default): a gbsip.Registrar in this
process lets the cameras register with Digest, then awaits
reg.query(id, "Catalog") for every registered device, at most --window
outstanding, and checks each QueryResult is complete with the right item
count.  --driver raw: the earlier scripted platform of raw sockets (answers
the REGISTERs 200 itself, sends the queries, checks SumNum and each part's
DeviceList Num).  Prints queries answered per second, answer MESSAGEs per
second, answers lost (partial, timed out, refused, turned away), latencies,
the platform's and the cameras' CPU during the query phase and the cameras'
memory per device; --json for the figures alone.  Loopback only, bounded by
--max-seconds; every process is stopped by its pid.

    .venv/bin/python -P benchmarks/bench_catalog.py --window 500    # 100,000 + 1,000 NVRs
    .venv/bin/python -P benchmarks/bench_catalog.py --cameras both --devices 100000 --nvrs 0 --window 500
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
PASSWORD = "12345678"  # gbsip.Simulator's default


def simulator(port: int, args: argparse.Namespace, done: Any, out: Any,
              ready: Any = None) -> None:
    """The simulator process: run until the platform says it is done."""
    total = args.devices + args.nvrs
    if ready is not None and not ready.wait(30):
        return  # the platform never came up

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


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def memory_figures(report: dict[str, Any] | None, total: int) -> dict[str, Any]:
    mem = report["memory_at_end_of_queries"] if report else {}
    return {
        "simulator_rss_delta_bytes": mem.get("rss_delta_bytes"),
        "simulator_rss_per_device": round(mem["rss_delta_bytes"] / total) if mem else None,
        "fleet_state_bytes": mem.get("fleet_state_bytes"),
        "fleet_bytes_per_device": round(mem["fleet_state_bytes"] / total) if mem else None,
        "camera_bytes": mem.get("camera_bytes"),
        "answers": report["camera"] if report else None,
    }


class GbsipFleet:
    """The gbsip.Simulator in a child process, forked before any event loop
    runs here; it registers once the registrar is up (ready)."""

    name = "gbsip"

    def __init__(self, port: int, args: argparse.Namespace) -> None:
        ctx = mp.get_context("fork")
        self.done, self.out, self.ready = ctx.Event(), ctx.Queue(), ctx.Event()
        self.child = ctx.Process(target=simulator,
                                 args=(port, args, self.done, self.out, self.ready))
        self.child.start()
        self.pid = self.child.pid or 0

    async def start(self) -> None:
        self.ready.set()

    def alive(self) -> bool:
        return self.child.is_alive()

    def memory(self) -> dict[str, Any]:
        return {}

    async def finish(self, until: float) -> dict[str, Any] | None:
        """Tell it to stop (it unregisters: the registrar keeps serving) and
        take its report."""
        loop = asyncio.get_running_loop()
        self.done.set()
        while loop.time() < until:
            try:
                return self.out.get_nowait()  # type: ignore[no-any-return]
            except Exception:  # queue.Empty
                if not self.child.is_alive():
                    try:
                        return self.out.get(timeout=2)  # type: ignore[no-any-return]
                    except Exception:  # it died without a report
                        return None
                await asyncio.sleep(0.1)
        return None

    def stop(self) -> None:
        self.child.join(15)
        if self.child.is_alive():
            self.child.kill()  # by its pid (multiprocessing's own handle)
            self.child.join(5)


SIPP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp")


class SippFleet:
    """sipp as N cameras in one process (benchmarks/sipp/): REGISTER with
    Digest, then answer each Catalog query with 4 one-Item MESSAGEs."""

    name = "sipp"

    def __init__(self, port: int, args: argparse.Namespace) -> None:
        import tempfile
        self.port, self.args = port, args
        self.tmp = tempfile.TemporaryDirectory(prefix="bench_catalog_sipp")
        self.proc: Any = None
        self.pid = 0

    async def start(self) -> None:
        import subprocess
        a = self.args
        inf = os.path.join(self.tmp.name, "cameras.csv")
        with open(inf, "w", encoding="ascii") as f:
            f.write("SEQUENTIAL\n")
            for i in range(a.devices):
                f.write(f"340200000013{i + 1:08d};{SERVER_ID};{PASSWORD};\n")
        cmd = ["sipp", "-sf", os.path.join(SIPP_DIR, "camera_register.xml"),
               "-oocsf", os.path.join(SIPP_DIR, "camera_catalog_ooc.xml"),
               "-inf", inf, "-t", "u1", "-i", "127.0.0.1", "-p", str(free_udp_port()),
               "-m", str(a.devices), "-r", str(int(a.sipp_rate)), "-l", str(a.devices),
               "-d", str(int(a.max_seconds * 1000)), "-buff_size", str(4 << 20),
               "-timeout", f"{int(a.max_seconds) + 30}s", "-nostdin",
               f"127.0.0.1:{self.port}"]
        if os.environ.get("BENCH_SIPP_TRACE"):  # debugging: sipp's messages kept there
            cmd[1:1] = ["-trace_msg", "-message_file", os.environ["BENCH_SIPP_TRACE"],
                        "-trace_err", "-error_file", os.environ["BENCH_SIPP_TRACE"] + ".err"]
        self.proc = subprocess.Popen(cmd, cwd=self.tmp.name, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def memory(self) -> dict[str, Any]:
        rss = 0
        try:
            with open(f"/proc/{self.pid}/status", encoding="ascii") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss = int(line.split()[1]) * 1024
        except OSError:
            pass
        return {"sipp_rss_bytes": rss,
                "sipp_rss_per_camera": round(rss / self.args.devices) if rss else None}

    async def finish(self, until: float) -> dict[str, Any] | None:
        return {"sipp_exit": self.proc.poll() if self.proc is not None else None}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # our own child, by its pid
            try:
                self.proc.wait(10)
            except Exception:  # subprocess.TimeoutExpired
                self.proc.kill()
                self.proc.wait(5)
        self.tmp.cleanup()


def run_registrar(args: argparse.Namespace, cameras: str = "gbsip") -> tuple[dict[str, Any], bool]:
    """The platform is a gbsip.Registrar in this process; the cameras a
    gbsip.Simulator child process or one sipp process."""
    port = free_udp_port()
    fleet: Any = GbsipFleet(port, args) if cameras == "gbsip" else SippFleet(port, args)
    try:
        return asyncio.run(registrar_platform(port, args, fleet))
    finally:
        fleet.stop()


async def registrar_platform(port: int, args: argparse.Namespace,
                             fleet: Any) -> tuple[dict[str, Any], bool]:
    total = args.devices + args.nvrs
    loop = asyncio.get_running_loop()
    t_start = loop.time()
    deadline = t_start + args.max_seconds
    reg = gbsip.Registrar(
        SERVER_ID, host="127.0.0.1", port=port, transports=("udp",), passwords=PASSWORD,
        keepalive_timeout_count=0, keepalive_events=False, events=(),
        min_expires=60, max_requests=args.max_requests)
    me = os.getpid()
    async with reg:
        await fleet.start()
        while len(reg) < total and loop.time() < deadline and fleet.alive():
            await asyncio.sleep(0.1)
        registered = len(reg)
        t_reg = loop.time() - t_start
        ids = list(reg.bindings)
        sem = asyncio.Semaphore(args.window)
        c = {"answered": 0, "partial": 0, "timeouts": 0, "refused": 0, "turned_away": 0,
             "wrong_count": 0, "items": 0, "parts": 0, "duplicates": 0, "nvr_catalogs": 0,
             "camera_catalogs": 0, "early": 0}
        errors: list[str] = []
        latencies: list[float] = []

        async def one(device_id: str) -> None:
            try:
                r = await reg.query(device_id, "Catalog", timeout=args.query_timeout)
                c["parts"] += r.parts_received
                c["duplicates"] += r.duplicates
                c["early"] += r.response_before_answer
                n = len(r.items)
                c["items"] += n
                if r.error is not None:
                    c["turned_away"] += 1
                elif r.complete:
                    c["answered"] += 1
                    latencies.append(r.elapsed)
                    if n == args.nvr_channels and r.sum_num == n:
                        c["nvr_catalogs"] += 1
                    elif n == args.channels and r.sum_num == n:
                        c["camera_catalogs"] += 1
                    else:
                        c["wrong_count"] += 1
                        if len(errors) < 10:
                            errors.append(f"{device_id}: {n} items, SumNum {r.sum_num}")
                elif r.status is not None and r.status >= 300:
                    c["refused"] += 1
                elif r.parts_received:
                    c["partial"] += 1
                    if len(errors) < 10:
                        errors.append(f"{device_id}: partial {n}/{r.sum_num}")
                else:
                    c["timeouts"] += 1
            except Exception as e:  # noqa: BLE001 - counted, the run goes on
                if len(errors) < 10:
                    errors.append(f"{device_id}: {type(e).__name__}: {e}")
                c["timeouts"] += 1
            finally:
                sem.release()

        cpu_sim0, cpu_me0, t0 = cpu_of(fleet.pid), cpu_of(me), loop.time()
        tasks = set()
        sent = 0
        for device_id in ids:
            await sem.acquire()
            if loop.time() >= deadline:
                sem.release()
                break
            sent += 1
            t = asyncio.ensure_future(one(device_id))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=max(1.0, deadline + args.query_timeout
                                                  - loop.time()))
        t_q = loop.time() - t0
        cpu_q = cpu_of(fleet.pid) - cpu_sim0
        cpu_p = cpu_of(me) - cpu_me0
        stats = reg.stats()
        fleet_memory = fleet.memory()
        report = await fleet.finish(deadline + 60)
    lost = sent - c["answered"]
    channels = args.devices * args.channels + args.nvrs * args.nvr_channels
    latencies.sort()

    def pct(q: float) -> float | None:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000,
                     1) if latencies else None

    figures = {
        "driver": "registrar", "simulator": fleet.name, "devices": args.devices, "nvrs": args.nvrs,
        "channels": channels, "window": args.window,
        "registered": registered, "registration_seconds": round(t_reg, 1),
        "queries": sent, **c, "lost": lost, "errors": errors,
        "query_seconds": round(t_q, 2),
        "queries_per_s": round(c["answered"] / t_q) if t_q else 0,
        "answer_messages_per_s": round(c["parts"] / t_q) if t_q else 0,
        "latency_ms_p50_p99_max": [pct(0.5), pct(0.99), pct(1.0)],
        "platform_cpu_seconds_queries": round(cpu_p, 2),
        "platform_cpu_percent_queries": round(100 * cpu_p / t_q) if t_q else 0,
        "simulator_cpu_seconds_queries": round(cpu_q, 2),
        "simulator_cpu_percent_queries": round(100 * cpu_q / t_q) if t_q else 0,
        "registrar_requests": {k: v for k, v in stats.items() if "request" in k},
        "loadavg": os.getloadavg(),
        **(memory_figures(report, total) if fleet.name == "gbsip" else
           {**fleet_memory, **(report or {})}),
    }
    ok = lost == 0 and registered == total and not c["wrong_count"] and \
        c["items"] == channels
    return figures, ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--driver", choices=("registrar", "raw"), default="registrar",
                    help="the platform: a gbsip.Registrar (reg.query) or raw sockets")
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--channels", type=int, default=4)
    ap.add_argument("--nvrs", type=int, default=1_000)
    ap.add_argument("--nvr-channels", type=int, default=64)
    ap.add_argument("--rate", type=float, default=20_000, help="registrations per second")
    ap.add_argument("--window", type=int, default=2_000, help="queries outstanding at most")
    ap.add_argument("--max-requests", type=int, default=4_096,
                    help="the Registrar's max_requests (its default; finished requests "
                         "in Timer K give their slots up when the pool is full)")
    ap.add_argument("--query-timeout", type=float, default=30.0,
                    help="reg.query's timeout (s)")
    ap.add_argument("--max-seconds", "--timeout", dest="max_seconds", type=float,
                    default=200, help="the whole run at most (s)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--cameras", choices=("gbsip", "sipp", "both", "gbsip,sipp", "sipp,gbsip"),
                    default="gbsip",
                    help="who plays the cameras for the registrar driver: gbsip's "
                         "simulator, sipp (benchmarks/sipp/, 4-channel cameras only, "
                         "no NVRs), or both one after the other in this run (both = "
                         "gbsip,sipp; sipp,gbsip the other order)")
    ap.add_argument("--sipp-rate", type=float, default=2_000,
                    help="sipp's registrations per second")
    args = ap.parse_args()
    args.timeout = args.max_seconds
    if args.cameras != "gbsip" and (args.driver != "registrar" or args.channels != 4):
        ap.error("--cameras sipp/both: the registrar driver and --channels 4 only")
    if args.cameras != "gbsip":
        args.nvrs = 0  # the sipp cameras are 4-channel IPCs
    if args.driver == "raw":
        figures, ok = run_raw(args)
    elif args.cameras != "gbsip" and args.cameras != "sipp":
        runs = {}
        ok = True
        order = args.cameras.split(",") if "," in args.cameras else ["gbsip", "sipp"]
        for cameras in order:
            runs[cameras], ok1 = run_registrar(args, cameras)
            ok = ok and ok1
        figures = runs
    else:
        figures, ok = run_registrar(args, args.cameras)
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        for k, v in figures.items():
            print(f"{k:32} {v}")
    return 0 if ok else 1


def run_raw(args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    total = args.devices + args.nvrs
    p = Platform(args)
    ctx = mp.get_context("fork")
    done, out = ctx.Event(), ctx.Queue()
    child = ctx.Process(target=simulator, args=(p.port, args, done, out))
    t_start = time.monotonic()
    child.start()
    deadline = t_start + args.max_seconds
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
    channels = args.devices * args.channels + args.nvrs * args.nvr_channels
    figures = {
        "driver": "raw", "devices": args.devices, "nvrs": args.nvrs, "channels": channels,
        "registered": registered, "registration_seconds": round(t_reg, 1),
        "queries": sn, "answered": p.complete, "lost": sn - p.complete,
        "answer_parts": p.parts, "items": p.items, "errors": p.bad[:10],
        "query_seconds": round(t_q, 2),
        "queries_per_s": round(p.complete / t_q) if t_q else 0,
        "answer_messages_per_s": round(p.parts / t_q) if t_q else 0,
        "simulator_cpu_seconds_queries": round(cpu_q, 2),
        "simulator_cpu_percent_queries": round(100 * cpu_q / t_q) if t_q else 0,
        "loadavg": os.getloadavg(),
        **memory_figures(report, args.devices + args.nvrs),
    }
    return figures, figures["lost"] == 0 and not p.bad


if __name__ == "__main__":
    sys.exit(main())
