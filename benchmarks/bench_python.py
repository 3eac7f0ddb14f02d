"""Messages per second through ``gbsip.parse`` from Python, beside a peer.

Each iteration does what a registrar does with every datagram: parse the
bytes, then read Call-ID and CSeq.  The same five messages as the C
benchmark (``benchmarks/messages/``) are used, and before any timing every
parser must return the expected Call-ID and CSeq number for each of them.

The peer is aiosipua, the fastest pure-Python SIP parser from PyPI that
parsed all five messages (see benchmarks/README.md for the others tried).
It is never a dependency of gbsip: ``--install-peer`` puts it into a
throwaway directory (``--peer-dir``), which this script adds to sys.path.

Usage:
    pip install .            # the gbsip under test, built with its normal flags
    python benchmarks/bench_python.py [--quick] [--install-peer]
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
MESSAGES = HERE / "messages"
PEER = "aiosipua"
PEER_VERSION = "0.7.1"
DEFAULT_PEER_DIR = Path("/tmp/gbsip-bench-peers")
TARGET_PER_SECOND = 1_000_000


@dataclass(frozen=True)
class BenchMessage:
    file: str
    label: str
    call_id: str
    cseq: int

    def load(self) -> bytes:
        return (MESSAGES / self.file).read_bytes()


BENCH_MESSAGES = (
    BenchMessage("register.sip", "seed REGISTER", "939764460", 1),
    BenchMessage("register_401.sip", "seed 401", "939764460", 1),
    BenchMessage("register_200.sip", "seed 200 OK", "939764460", 2),
    BenchMessage("keepalive.sip", "MANSCDP keepalive", "1951364270", 20),
    BenchMessage("invite_sdp.sip", "INVITE with SDP", "3201243987", 20),
)

# A runner parses `data` n times and returns the elapsed ns; a reader parses
# once and returns (Call-ID, CSeq number) for the check before timing.
Runner = Callable[[bytes, int], int]
Reader = Callable[[bytes], tuple[str, int]]


def gbsip_parser() -> tuple[Runner, Reader, str]:
    try:
        import gbsip
    except ImportError as exc:
        sys.exit(f"gbsip is not importable ({exc}); run `pip install .` first")

    parse = gbsip.parse

    def run(data: bytes, n: int) -> int:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            m = parse(data)
            m.call_id
            m.cseq
        return time.perf_counter_ns() - t0

    def read(data: bytes) -> tuple[str, int]:
        m = parse(data)
        cseq = m.cseq
        assert m.call_id is not None and cseq is not None
        return m.call_id, cseq.number

    return run, read, f"gbsip {gbsip.__version__}"


def peer_parser(peer_dir: Path) -> tuple[Runner, Reader, str]:
    if str(peer_dir) not in sys.path:
        sys.path.append(str(peer_dir))
    try:
        from aiosipua.message import SipMessage
    except ImportError:
        sys.exit(
            f"{PEER} is not importable; run with --install-peer (installs "
            f"{PEER}=={PEER_VERSION} into {peer_dir}, not into the project)"
        )
    parse = SipMessage.parse

    def run(data: bytes, n: int) -> int:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            m = parse(data)
            m.call_id
            m.cseq
        return time.perf_counter_ns() - t0

    def read(data: bytes) -> tuple[str, int]:
        m = parse(data)
        cseq = m.cseq
        assert m.call_id is not None and cseq is not None
        return m.call_id, cseq.seq

    return run, read, f"{PEER} {importlib.metadata.version(PEER)}"


def install_peer(peer_dir: Path) -> None:
    """pip install the peer into peer_dir unless that version is there."""
    found = importlib.metadata.distributions(name=PEER, path=[str(peer_dir)])
    if any(d.version == PEER_VERSION for d in found):
        return
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--upgrade",
         "--target", str(peer_dir), f"{PEER}=={PEER_VERSION}"],
        check=True,
    )


def calibrate(run: Runner, data: bytes, target_ns: int) -> int:
    """Iterations for one timed loop of about target_ns."""
    n = 8
    while True:
        elapsed = run(data, n)
        if elapsed >= target_ns // 4:
            return max(8, int(n * target_ns / elapsed))
        n *= 4


@dataclass(frozen=True)
class Result:
    best_ns: float
    median_ns: float


def measure(runs: dict[str, Runner], datas: list[bytes], reps: int,
            target_ns: int) -> list[dict[str, Result]]:
    """ns per message for every message and parser.

    Each round times every message with every parser once, so a quiet (or
    noisy) stretch of the machine is shared by all of them.
    """
    counts = [{name: calibrate(run, data, target_ns) for name, run in runs.items()}
              for data in datas]
    samples: list[dict[str, list[float]]] = [{name: [] for name in runs} for _ in datas]
    for _ in range(reps):
        for i, data in enumerate(datas):
            for name, run in runs.items():
                n = counts[i][name]
                samples[i][name].append(run(data, n) / n)
    return [{name: Result(min(s), statistics.median(s)) for name, s in per.items()}
            for per in samples]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="11 rounds of 5 ms loops")
    ap.add_argument("--reps", type=int, default=61, help="rounds")
    ap.add_argument("--ms", type=float, default=5.0, help="ms per timed loop")
    ap.add_argument("--peer-dir", type=Path, default=DEFAULT_PEER_DIR)
    ap.add_argument("--install-peer", action="store_true",
                    help=f"pip install {PEER}=={PEER_VERSION} into --peer-dir first")
    ap.add_argument("--no-peer", action="store_true", help="time gbsip alone")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.ms = 11, 5.0
    if not 1 <= args.reps <= 1000 or not 0 < args.ms <= 1000:
        ap.error("--reps must be 1..1000 and --ms 0..1000")

    if args.install_peer and not args.no_peer:
        install_peer(args.peer_dir)

    parsers = {"gbsip": gbsip_parser()}
    if not args.no_peer:
        parsers["peer"] = peer_parser(args.peer_dir)

    print(f"Python {platform.python_version()} ({sys.executable}), one core, gc off in loops")
    for name, (_, _, version) in parsers.items():
        print(f"  {name}: {version}")

    # Prove each parser really parsed before timing it.
    for bm in BENCH_MESSAGES:
        data = bm.load()
        for name, (_, read, _) in parsers.items():
            got = read(data)
            if got != (bm.call_id, bm.cseq):
                sys.exit(f"FAIL: {name} read {got!r} from {bm.file}, "
                         f"expected {(bm.call_id, bm.cseq)!r}")
    print("verified: every parser read the expected Call-ID and CSeq from every message")
    print(f"timing: {args.reps} rounds of one ~{args.ms:.0f} ms loop per parser and message\n")

    runs = {name: run for name, (run, _, _) in parsers.items()}
    target_ns = int(args.ms * 1e6)
    header = f"{'message':<18} {'bytes':>5}  {'gbsip msg/s best / median':>27}  {'ns':>5}"
    if "peer" in runs:
        header += f"  {PEER + ' msg/s best / median':>30}  {'ratio':>6}"
    print(header)

    datas = [bm.load() for bm in BENCH_MESSAGES]
    # Like timeit: the collector would add noise unrelated to parsing.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        results = measure(runs, datas, args.reps, target_ns)
    finally:
        if gc_was_enabled:
            gc.enable()

    worst_gbsip = float("inf")
    for bm, data, res in zip(BENCH_MESSAGES, datas, results):
        g = res["gbsip"]
        worst_gbsip = min(worst_gbsip, 1e9 / g.best_ns)
        line = (f"{bm.label:<18} {len(data):>5}  "
                f"{1e9 / g.best_ns:>12,.0f} / {1e9 / g.median_ns:>12,.0f}  {g.best_ns:>5.0f}")
        if "peer" in res:
            p = res["peer"]
            line += (f"  {1e9 / p.best_ns:>14,.0f} / {1e9 / p.median_ns:>13,.0f}"
                     f"  {p.best_ns / g.best_ns:>5.0f}x")
        print(line)

    verdict = "met" if worst_gbsip >= TARGET_PER_SECOND else "NOT met"
    print(f"\ntarget >= {TARGET_PER_SECOND:,} parse + Call-ID + CSeq per second on every "
          f"message (best): {verdict} (slowest message {worst_gbsip:,.0f}/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
