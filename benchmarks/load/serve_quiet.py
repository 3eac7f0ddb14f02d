"""A gbsip Registrar for load runs: no per-event output, stats as JSON at exit.

``gbsip serve`` prints one line (and flushes) per event, which at tens of
thousands of registrations per second is the costliest part of the process;
this driver runs the same ``gbsip.Registrar`` with the same options as
``gbsip serve --quiet-keepalives`` but only counts events.  It stops on
SIGTERM/SIGINT or after --duration seconds and prints one JSON line:
the registrar's stats(), event counts, RSS and CPU time; SIGUSR1 prints
the same line without stopping (the scale benchmark polls with it).

    python benchmarks/load/serve_quiet.py --port 5060 [--duration 300]
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import resource
import signal
import sys
import time
from typing import Any

from gbsip.cli import _run
from gbsip.registrar import Registrar


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def serve(args: argparse.Namespace) -> int:
    reg = Registrar(args.server_id, host=args.host, port=args.port,
                    transports=args.transport.split(","),
                    passwords=args.password, min_expires=args.min_expires,
                    max_expires=args.max_expires, keepalive_interval=args.keepalive,
                    max_bindings=args.max_bindings, max_events=args.max_events,
                    keepalive_events=False, max_connections=args.max_connections,
                    raise_fd_limit=True)
    rss0 = rss_bytes()
    await reg.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # the benchmark reads this line to learn that the registrar is up
    print(json.dumps({"listening": reg.address, "pid": os.getpid(), "rss0": rss0}), flush=True)
    counts: collections.Counter[str] = collections.Counter()

    async def drain() -> None:
        async for ev in reg.events():
            counts[type(ev).__name__] += 1

    def report() -> dict[str, Any]:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return {"stats": reg.stats(), "bindings": len(reg), "events": dict(counts),
                "rss0": rss0, "rss": rss_bytes(), "cpu_user": ru.ru_utime,
                "cpu_sys": ru.ru_stime, "time": time.time()}

    loop.add_signal_handler(signal.SIGUSR1, lambda: print(json.dumps(report()), flush=True))
    drainer = asyncio.ensure_future(drain())
    try:
        await asyncio.wait_for(stop.wait(), timeout=args.duration or None)
    except asyncio.TimeoutError:
        pass
    final = report()
    await reg.close()
    drainer.cancel()
    print(json.dumps(final), flush=True)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--server-id", default="34020000002000000001")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5060)
    p.add_argument("--transport", default="udp", help="udp, tcp or udp,tcp (default udp)")
    p.add_argument("--max-connections", type=int, default=None,
                   help="TCP connections (default: as many as the open-files limit allows)")
    p.add_argument("--password", default="12345678")
    p.add_argument("--min-expires", type=int, default=60)
    p.add_argument("--max-expires", type=int, default=86400)
    p.add_argument("--keepalive", type=float, default=60)
    p.add_argument("--max-bindings", type=int, default=2_000_000)
    p.add_argument("--max-events", type=int, default=65536)
    p.add_argument("--duration", type=float, default=0)
    return _run(serve(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
