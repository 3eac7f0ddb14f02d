"""What printing events costs ``gbsip serve`` (issue 12, "The default gbsip
serve output path").

One load, several ways of running the same registrar, in the same run:

``quiet``
    ``gbsip serve --quiet``: no event is recorded or printed (the baseline).
``terminal``
    ``gbsip serve`` with its output on a terminal (a pseudo-terminal of 80
    columns whose other end is read and thrown away): the command as a
    person runs it.
``file``
    ``gbsip serve > FILE``: every event printed, one line each.
``json``
    ``gbsip serve --json > FILE``: every event as a JSON line.

For each variant a fresh ``gbsip serve`` (UDP, loopback, one process) is
loaded by ``gbsip simulate`` registering ``--devices`` devices at
``--rate`` per second with a keepalive every ``--keepalive`` seconds for
``--duration`` seconds; the server's CPU time over the load is read from
``/proc/PID/stat``.  Variants run in turn, ``--repeat`` times over, so a
noisy stretch of the machine is shared; the table shows each variant's
median CPU and its ratio to ``quiet``'s.  Everything is bounded in time and
stopped by its pid.

    python benchmarks/serve_output.py [--devices 20000] [--rate 4000]
        [--keepalive 5] [--duration 20] [--repeat 3] [--variants quiet,terminal,file,json]
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_load import PASSWORD, SERVER_ID, Proc, cpu_seconds, free_port, probe  # noqa: E402

VARIANTS = ("quiet", "terminal", "file", "json")


class Sink:
    """The reading end of the server's stdout: a pty master (a terminal of
    80 x 24) or a file; counts what arrives."""

    def __init__(self, variant: str, workdir: str) -> None:
        self.variant = variant
        self.bytes = 0
        self.lines = 0
        self._master = -1
        self._thread: threading.Thread | None = None
        self.file: Any = None
        if variant == "terminal":
            self._master, self.slave = pty.openpty()
            fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
            self._thread = threading.Thread(target=self._drain, daemon=True)
            self._thread.start()
        else:
            self.file = open(os.path.join(workdir, f"serve-{variant}.out"), "w+b")

    @property
    def stdout(self) -> Any:
        return self.slave if self.variant == "terminal" else self.file

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self._master, 65536)
            except OSError:
                return
            if not data:
                return
            self.bytes += len(data)
            self.lines += data.count(b"\n")

    def close(self) -> None:
        if self.variant == "terminal":
            os.close(self.slave)
            if self._thread is not None:
                self._thread.join(5)
            os.close(self._master)
        else:
            self.file.seek(0)
            data = self.file.read()
            self.bytes, self.lines = len(data), data.count(b"\n")
            self.file.close()


def serve_command(variant: str, port: int) -> list[str]:
    cmd = [sys.executable, "-m", "gbsip", "serve", "--port", str(port), "--transport", "udp",
           "--min-expires", "60", "--password", PASSWORD, "--server-id", SERVER_ID,
           "--rate-per-source", "0"]  # one loopback source at benchmark rates
    if variant == "quiet":
        cmd.append("--quiet")
    elif variant == "json":
        cmd.append("--json")
    return cmd


def one_run(variant: str, args: argparse.Namespace, workdir: str) -> dict[str, Any]:
    port = free_port()
    sink = Sink(variant, workdir)
    server = Proc(serve_command(variant, port), stdout=sink.stdout, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while not probe(port):
            if server.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gbsip serve ({variant}) did not start")
        time.sleep(0.3)
        cpu0 = cpu_seconds([server.pid])
        t0 = time.monotonic()
        sim = subprocess.run(
            [sys.executable, "-m", "gbsip", "simulate", "--server", f"udp://127.0.0.1:{port}",
             "--devices", str(args.devices), "--rate", str(args.rate),
             "--duration", str(args.duration), "--keepalive", str(args.keepalive),
             "--password", PASSWORD, "--server-id", SERVER_ID, "--json", "--quiet"],
            cwd=tempfile.gettempdir(), stdin=subprocess.DEVNULL, capture_output=True,
            timeout=args.duration + 120, check=False)
        wall = time.monotonic() - t0
        cpu = cpu_seconds([server.pid]) - cpu0
    finally:
        server.stop()
        sink.close()
    try:
        rep = json.loads(sim.stdout)
    except ValueError:
        raise RuntimeError(f"simulate wrote no report: {sim.stderr.decode()[-500:]}") from None
    tot = rep["totals"]
    events = tot["registrations"] + tot["refreshes"] + tot["keepalives_answered"] + \
        rep["unregistration"]["unregistered"]
    return {"variant": variant, "cpu_s": round(cpu, 3), "wall_s": round(wall, 2),
            "events": events, "us_per_event": round(cpu / events * 1e6, 2) if events else None,
            "registered": rep["result"]["ever_registered"], "ok": rep["ok"],
            "output_lines": sink.lines, "output_bytes": sink.bytes}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--devices", type=int, default=20000)
    p.add_argument("--rate", type=int, default=4000)
    p.add_argument("--keepalive", type=float, default=5)
    p.add_argument("--duration", type=float, default=20)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--out", help="write the runs as JSON here")
    args = p.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    for v in variants:
        if v not in VARIANTS:
            p.error(f"unknown variant {v!r}: {', '.join(VARIANTS)}")
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="gbsip-serve-output-") as workdir:
        for r in range(args.repeat):
            for v in variants:
                run = one_run(v, args, workdir)
                runs.append(run)
                print(f"round {r + 1} {v:<9} server CPU {run['cpu_s']:6.2f} s  "
                      f"{run['us_per_event']} µs/event  {run['events']} events  "
                      f"{run['output_lines']} lines out  ok={run['ok']}", flush=True)
    base = statistics.median(r["cpu_s"] for r in runs if r["variant"] == variants[0])
    print(f"\n{'variant':<10} {'server CPU (median)':>20} {'× ' + variants[0]:>10} "
          f"{'µs/event':>9} {'lines out':>10}")
    for v in variants:
        mine = [r for r in runs if r["variant"] == v]
        cpu = statistics.median(r["cpu_s"] for r in mine)
        print(f"{v:<10} {cpu:>18.2f} s {cpu / base:>10.2f} "
              f"{statistics.median(r['us_per_event'] for r in mine):>9.2f} "
              f"{statistics.median(r['output_lines'] for r in mine):>10.0f}")
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
