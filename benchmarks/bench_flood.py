"""Flood benchmark (issues 12 and 14): authenticated devices during a flood.

A gbsip Registrar runs in its own process (so its RSS and CPU are its own);
``gbsip simulate`` registers and keeps alive a fleet of valid devices
against it, while ``benchmarks/build/flood`` (C, sendmmsg, paced) sends from
eight other loopback addresses (127.0.0.2-9):

``none``      no flood: the baseline.
``garbage``   random bytes, half behind a SIP-looking request line.
``register``  unauthenticated REGISTERs for random device IDs, each a new
              transaction: every one costs the registrar a challenge.
``collide``   the same REGISTERs with Via branches chosen offline to collide
              under the registrar's old unkeyed FNV-1a (csrc/tests/old_hash.h),
              issue 14's hash flood.

Reported per run: devices registered (of the fleet) and their REGISTER
latency and retransmissions (from the simulator's report), the flood sent
and what the registrar received of it, the registrar's RSS at the start,
its peak and at the end, and its counters (challenges, cached answers
evicted, events dropped, drops by reason).  Then ``cost``: the registrar's
CPU per flood request (utime + stime from /proc over what its counter
received), random against colliding branches, in alternating rounds at a
rate it keeps up with; the best round of each.

Everything is bounded in time and count and stays on loopback; every
process started here is stopped by its pid.

    make -C benchmarks flood
    python benchmarks/bench_flood.py [--devices 3000] [--device-rate 300]
        [--seconds 12] [--runs none,garbage@60000,register@30000,...] [--quick]
        [--out flood.json]

Figures and the command that made them: docs/benchmarks.md, "Floods".
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FLOOD = HERE / "build" / "flood"
SERVER_ID = "34020000002000000001"
PASSWORD = "12345678"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
KINDS = ("none", "garbage", "register", "collide")
# below the registrar's CPU capacity on the 2-core test machine (about 60,000
# unauthenticated REGISTERs/s), at it, and far above it against a per-source
# limit; each flood sends 10x and more the 65,536 answers the registrar caches
DEFAULT_RUNS = ("none,garbage@60000,register@30000,collide@30000,register@60000,"
                "register@150000/2000")


def parse_run(spec: str) -> tuple[str, float, int]:
    """"register@30000/2000" -> ("register", 30000.0, 2000)."""
    rest, _, limit = spec.partition("/")
    kind, _, rate = rest.partition("@")
    if kind not in KINDS:
        raise SystemExit(f"bench_flood: unknown flood {kind!r} (one of {', '.join(KINDS)})")
    return kind, float(rate or 0), int(limit or 0)


# --------------------------------------------------------------------------
# The registrar process (``bench_flood.py serve``)


async def serve(args: argparse.Namespace) -> None:
    from gbsip.registrar import Registrar

    reg = Registrar(SERVER_ID, host="127.0.0.1", port=0, transports=("udp",),
                    passwords=PASSWORD, min_expires=60, keepalive_interval=args.keepalive,
                    rate_per_source=args.rate_per_source, keepalive_events=False)
    await reg.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, lambda: print(json.dumps(
        {"stats": reg.stats(), "drops": reg.drops(), "bindings": len(reg)}), flush=True))
    # events are left unconsumed (the worst case: nobody reads events())
    print(json.dumps({"port": reg.address[1], "pid": os.getpid()}), flush=True)
    await asyncio.wait_for(stop.wait(), timeout=args.max_seconds)
    await reg.close()


# --------------------------------------------------------------------------
# Measuring a process from outside


def proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


class Server:
    """The registrar in a child process; its stats on demand (SIGUSR1)."""

    def __init__(self, rate_per_source: int, max_seconds: float, keepalive: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "serve", "--rate-per-source",
             str(rate_per_source), "--max-seconds", str(max_seconds), "--keepalive",
             str(keepalive)],
            stdout=subprocess.PIPE, text=True, start_new_session=True, cwd=tempfile.gettempdir())
        assert self.proc.stdout is not None
        hello = json.loads(self.proc.stdout.readline())
        self.port, self.pid = int(hello["port"]), int(hello["pid"])
        self.peak = proc_rss(self.pid)
        self._sampling = True
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while self._sampling:
            try:
                self.peak = max(self.peak, proc_rss(self.pid))
            except OSError:
                return
            time.sleep(0.05)

    def stats(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        os.kill(self.pid, signal.SIGUSR1)
        return json.loads(self.proc.stdout.readline())

    def stop(self) -> None:
        self._sampling = False
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_flood(kind: str, port: int, rate: float, seconds: float) -> subprocess.Popen[str]:
    """The flooder, once it is ready (colliding branches take it a moment)."""
    flood = subprocess.Popen(
        [str(FLOOD), "--to", f"127.0.0.1:{port}", "--kind", kind, "--rate", str(rate),
         "--seconds", str(seconds), "--sources", "8"],
        stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert flood.stdout is not None
    flood.stdout.readline()  # {"ready": true}
    return flood


def stop_flood(flood: subprocess.Popen[str]) -> dict[str, Any]:
    try:
        out, _ = flood.communicate(timeout=700)
    except subprocess.TimeoutExpired:
        flood.kill()
        out, _ = flood.communicate()
    return json.loads(out) if out.strip() else {}


# --------------------------------------------------------------------------
# One run: the fleet against the registrar, with or without a flood


def run_once(args: argparse.Namespace, kind: str, flood_rate: float,
             rate_per_source: int) -> dict[str, Any]:
    seconds = args.seconds
    server = Server(rate_per_source, max_seconds=seconds * 4 + 60, keepalive=args.keepalive)
    try:
        rss0 = proc_rss(server.pid)
        flood = None
        if kind != "none":
            # the flood starts first and outlasts the fleet's registrations
            flood = start_flood(kind, server.port, flood_rate, seconds + 3)
            time.sleep(1.0)
        before = server.stats()
        cpu0 = proc_cpu(server.pid)
        sim = subprocess.run(
            [sys.executable, "-m", "gbsip", "simulate", "--server",
             f"udp://127.0.0.1:{server.port}", "--devices", str(args.devices), "--rate",
             str(args.device_rate), "--duration", str(seconds), "--keepalive",
             str(args.keepalive), "--json", "--quiet", "--seed", "7"],
            capture_output=True, text=True, timeout=seconds * 4 + 60,
            cwd=tempfile.gettempdir())
        cpu1 = proc_cpu(server.pid)
        after = server.stats()
        sent = stop_flood(flood) if flood else {}
        report = json.loads(sim.stdout) if sim.stdout.strip() else {}
        st0, st1 = before["stats"], after["stats"]
        reg = report.get("latency_ms", {}).get("register", {})
        return {
            "flood": kind,
            "rate_per_source": rate_per_source,
            "flood_sent": sent.get("sent", 0),
            "flood_rate": sent.get("rate", 0),
            "devices": args.devices,
            "registered": report.get("result", {}).get("registered", 0),
            "not_registered": report.get("result", {}).get("not_registered", {}),
            "register_p50_ms": reg.get("p50"),
            "register_p99_ms": reg.get("p99"),
            "register_max_ms": reg.get("max"),
            "retransmitted": report.get("messages", {}).get("retransmitted"),
            "keepalives_answered": report.get("totals", {}).get("keepalives_answered"),
            "registrar_received": st1["received"] - st0["received"],
            "registrar_cpu_s": round(cpu1 - cpu0, 2),
            "registrar_dropped_rate": st1["dropped_rate"],
            "rss0_mib": round(rss0 / 2**20, 1),
            "rss_peak_mib": round(server.peak / 2**20, 1),
            "challenges": st1["challenges"],
            "transactions_evicted": st1["transactions_evicted"],
            "trusted_evicted": st1["trusted_evicted"],
            "events_suppressed": st1["events_suppressed"],
            "events_dropped": st1["events_dropped"] + st1["events_dropped_python"],
            "events_dropped_state": st1["events_dropped_state"],
            "binding_bytes": st1["binding_bytes"],
            "drops": {k: v for k, v in after["drops"].items() if v},
            "simulate_exit": sim.returncode,
        }
    finally:
        server.stop()


# --------------------------------------------------------------------------
# Cost per flood request: random against colliding branches


def cost(args: argparse.Namespace) -> dict[str, Any]:
    server = Server(0, max_seconds=args.cost_rounds * 2 * (args.cost_seconds + 3) + 60,
                    keepalive=args.keepalive)
    best: dict[str, float] = {}
    try:
        for _ in range(args.cost_rounds):
            for kind in ("register", "collide"):
                before = server.stats()["stats"]["received"]
                cpu0 = proc_cpu(server.pid)
                stop_flood(start_flood(kind, server.port, args.cost_rate, args.cost_seconds))
                time.sleep(0.3)  # let the last batch be handled
                received = server.stats()["stats"]["received"] - before
                us = (proc_cpu(server.pid) - cpu0) * 1e6 / max(1, received)
                best[kind] = min(best.get(kind, 1e9), us)
    finally:
        server.stop()
    return {"rate": args.cost_rate, "seconds": args.cost_seconds, "rounds": args.cost_rounds,
            "us_per_request_random": round(best["register"], 2),
            "us_per_request_colliding": round(best["collide"], 2)}


def table(runs: list[dict[str, Any]], c: dict[str, Any] | None) -> str:
    head = ("flood", "limit/src", "flood/s", "registered", "p50 ms", "p99 ms", "retrans", "reg. CPU s",
            "RSS start", "RSS peak", "evicted", "of them trusted")
    rows = [head]
    for r in runs:
        rows.append((r["flood"], str(r["rate_per_source"] or "-"), f"{r['flood_rate']:,.0f}", f"{r['registered']}/{r['devices']}",
                     str(r["register_p50_ms"]), str(r["register_p99_ms"]),
                     str(r["retransmitted"]), str(r["registrar_cpu_s"]),
                     f"{r['rss0_mib']} MiB", f"{r['rss_peak_mib']} MiB",
                     str(r["transactions_evicted"]), str(r["trusted_evicted"])))
    w = [max(len(row[i]) for row in rows) for i in range(len(head))]
    out = "\n".join("  ".join(cell.rjust(w[i]) for i, cell in enumerate(row)) for row in rows)
    if c:
        out += (f"\n\nregistrar CPU per unauthenticated REGISTER at {c['rate']:,}/s "
                f"(best of {c['rounds']}): random branches {c['us_per_request_random']} us, "
                f"colliding under the old FNV-1a {c['us_per_request_colliding']} us")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd")
    s = sub.add_parser("serve", help="(internal) the registrar process")
    s.add_argument("--rate-per-source", type=int, default=0)
    s.add_argument("--keepalive", type=float, default=5)
    s.add_argument("--max-seconds", type=float, default=300)
    p.add_argument("--devices", type=int, default=3000)
    p.add_argument("--device-rate", type=float, default=300)
    p.add_argument("--keepalive", type=float, default=5)
    p.add_argument("--runs", default=DEFAULT_RUNS,
                   help="comma list of KIND[@RATE][/LIMIT]: the flood, datagrams/s, and the "
                        "registrar's rate_per_source (none when left out)")
    p.add_argument("--seconds", type=float, default=12,
                   help="simulate --duration; the flood starts 1 s before, ends 2 s after")
    p.add_argument("--cost-rate", type=float, default=20000)
    p.add_argument("--cost-seconds", type=float, default=4)
    p.add_argument("--cost-rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="small and short (a smoke check)")
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args()
    if args.cmd == "serve":
        from gbsip.cli import _run

        async def go() -> int:
            await serve(args)
            return 0

        return _run(go())
    if not FLOOD.exists():
        print(f"build the flooder first: make -C {HERE.relative_to(Path.cwd()) if HERE.is_relative_to(Path.cwd()) else HERE} flood",
              file=sys.stderr)
        return 2
    if args.quick:
        args.devices, args.seconds, args.cost_rounds, args.cost_seconds = 500, 4, 1, 2
        args.device_rate = 250
        args.runs = "none,garbage@60000,collide@30000,register@150000/2000"
    socket.getaddrinfo("127.0.0.2", 0)  # loopback aliases are needed for the sources
    runs = [run_once(args, *parse_run(spec)) for spec in args.runs.split(",")]
    c = cost(args) if args.cost_rounds else None
    print(table(runs, c))
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "runs": runs, "cost": c},
                                             indent=2) + "\n")
    return 0 if all(r["registered"] == r["devices"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
