"""The ``gbsip`` command line.

Each subcommand lives in its own function; errors a person can act on are
printed as one line and a non-zero exit status, never as a traceback.
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from gbsip._core import GBSIPError
from gbsip._version import __version__

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _run(coro: Any) -> int:
    """Run a coroutine on uvloop when installed, else on asyncio's loop;
    GBSIP_LOOP=asyncio (or uvloop) chooses."""
    choice = os.environ.get("GBSIP_LOOP", "").lower()
    if choice == "asyncio":
        return asyncio.run(coro)
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            coro.close()
            print("gbsip: GBSIP_LOOP=uvloop but uvloop is not installed", file=sys.stderr)
            return EXIT_FAILED
        return asyncio.run(coro)
    return uvloop.run(coro)  # type: ignore[no-any-return]


def _load_passwords(path: str) -> dict[str, str]:
    """CSV lines ``device_id,password`` (a header line is allowed)."""
    out: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.reader(f):
            if len(row) < 2 or not row[0].strip() or row[0].strip().lower() == "device_id":
                continue
            out[row[0].strip()] = row[1].strip()
    return out


def _event_dict(ev: Any) -> dict[str, Any]:
    d = asdict(ev)
    d["event"] = type(ev).__name__
    return d


def _format_event(ev: Any) -> str:
    d = _event_dict(ev)
    name = d.pop("event")
    d.pop("time", None)
    device = d.pop("device_id", None) or "-"
    src = d.pop("source", None)
    where = f"{src[0]}:{src[1]}/{d.pop('transport', '')}" if src else d.pop("transport", "")
    rest = " ".join(f"{k}={v}" for k, v in d.items() if v not in (None, ""))
    return f"{name:<12} {device:<22} {where:<28} {rest}".rstrip()


# --------------------------------------------------------------------------
# serve


def _serve_workers(args: argparse.Namespace) -> int:
    """``--workers N``: N registrar processes share the port (SO_REUSEPORT)."""
    import subprocess

    if args.port == 0:
        print("gbsip serve: --workers needs an explicit --port", file=sys.stderr)
        return EXIT_USAGE
    argv: list[str] = []
    skip = False
    for a in args.argv:  # the same command line, less --workers
        if skip:
            skip = False
        elif a == "--workers":
            skip = True
        elif not a.startswith("--workers="):
            argv.append(a)
    children = [subprocess.Popen([sys.executable, "-m", "gbsip", *argv, "--reuse-port"])
                for _ in range(args.workers - 1)]
    args.reuse_port = True
    try:
        return _run(_serve(args))
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()


async def _serve(args: argparse.Namespace) -> int:
    from gbsip.errors import ConfigurationError, RegistrarError
    from gbsip.registrar import Refresh, Registrar

    passwords: Any = args.password
    if args.passwords_file:
        passwords = _load_passwords(args.passwords_file)
    try:
        reg = Registrar(
            args.server_id,
            host=args.host,
            port=args.port,
            transports=args.transport.split(","),
            passwords=passwords,
            realm=args.realm,
            min_expires=args.min_expires,
            max_expires=args.max_expires,
            keepalive_interval=args.keepalive,
            keepalive_timeout_count=args.keepalive_count,
            qop="auth" if args.qop else None,
            refresh=Refresh.TRUST_CALL_ID if args.trust_refresh else Refresh.CHALLENGE,
            strict_ids=not args.any_id,
            gb_version=args.gb_version,
            keepalive_events=not (args.quiet_keepalives or args.quiet),
            events=() if args.quiet else None,
            reuse_port=args.reuse_port,
            max_connections=args.max_connections,
            raise_fd_limit=args.raise_fd_limit,
        )
        await reg.start()
    except ConfigurationError as exc:
        print(f"gbsip serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RegistrarError as exc:
        print(f"gbsip serve: {exc}", file=sys.stderr)
        return EXIT_FAILED
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    addrs = ", ".join(f"{t}://{h}:{p}" for t, (h, p) in reg.addresses.items())
    if not args.json:
        print(f"gbsip {__version__} registrar {args.server_id} realm {reg.realm} on {addrs}",
              flush=True)
    else:
        print(json.dumps({"event": "Listening", "server_id": args.server_id,
                          "realm": reg.realm, "addresses": reg.addresses}), flush=True)

    async def pump() -> None:
        async for ev in reg.events():
            if args.json:
                print(json.dumps(_event_dict(ev), default=str), flush=True)
            else:
                print(_format_event(ev), flush=True)

    printer = asyncio.ensure_future(pump())
    waiter = asyncio.ensure_future(stop.wait())
    duration = args.duration if args.duration and args.duration > 0 else None
    await asyncio.wait({printer, waiter}, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    await reg.close()
    await asyncio.gather(printer, return_exceptions=True)
    s = reg.stats()
    if args.json:
        print(json.dumps({"event": "Stopped", "stats": s}), flush=True)
    else:
        print(f"stopped: {s['bindings']} bindings, {s['registrations']} registrations, "
              f"{s['keepalives']} keepalives, {s['auth_failures']} auth failures", flush=True)
    return EXIT_OK


def _add_serve(sub: Any) -> None:
    p = sub.add_parser("serve", help="run a GB/T 28181 registrar (platform) and print events",
                       description="Run a GB/T 28181 registrar and print its events.")
    p.add_argument("--server-id", default="34020000002000000001",
                   help="20-digit platform ID (default %(default)s)")
    p.add_argument("--realm", help="Digest realm (default: first 10 digits of the server ID)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    p.add_argument("--port", type=int, default=5060, help="port, 0 for a free one (default %(default)s)")
    p.add_argument("--transport", default="udp,tcp", help="udp, tcp or udp,tcp (default %(default)s)")
    p.add_argument("--password", default="12345678",
                   help="one password for every device (default %(default)s)")
    p.add_argument("--passwords-file", help="CSV of device_id,password (overrides --password)")
    p.add_argument("--min-expires", type=int, default=3600)
    p.add_argument("--max-expires", type=int, default=86400)
    p.add_argument("--keepalive", type=float, default=60, help="keepalive interval, seconds")
    p.add_argument("--keepalive-count", type=int, default=3,
                   help="missed keepalives before a device is offline")
    p.add_argument("--qop", action="store_true", help='offer qop="auth" in challenges')
    p.add_argument("--trust-refresh", action="store_true",
                   help="accept refreshes on the same Call-ID without a challenge")
    p.add_argument("--any-id", action="store_true", help="accept device IDs that are not 20 digits")
    p.add_argument("--gb-version", help="send X-GB-Ver (2.0 = 2016, 3.0 = 2022)")
    p.add_argument("--quiet-keepalives", action="store_true", help="no event per keepalive")
    p.add_argument("--quiet", action="store_true",
                   help="record and print no events (for load tests); stats at exit")
    p.add_argument("--duration", type=float, default=0, help="stop after this many seconds")
    p.add_argument("--workers", type=int, default=1,
                   help="registrar processes sharing the port (SO_REUSEPORT); each keeps "
                        "its own bindings, and the kernel sends each source to one of them")
    p.add_argument("--max-connections", type=int, default=None,
                   help="TCP connections at once; more are refused and counted "
                        "(default: as many as the open-files limit allows)")
    p.add_argument("--raise-fd-limit", action=argparse.BooleanOptionalAction, default=True,
                   help="raise the open-files soft limit to the hard limit when TCP "
                        "connections need more (default: on)")
    p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="print JSON lines")
    p.set_defaults(func=lambda a: _serve_workers(a) if a.workers > 1 else _run(_serve(a)))


# --------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gbsip",
        description="GB/T 28181 SIP registration engine: simulate cameras, run a platform.",
    )
    parser.add_argument("--version", action="version", version=f"gbsip {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from gbsip.conformance.cli import add_parser as add_conformance
    from gbsip.simulate_cli import add_register, add_simulate

    add_simulate(sub, _run)
    _add_serve(sub)
    add_register(sub, _run)
    add_conformance(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except GBSIPError as exc:
        print(f"gbsip {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except FileNotFoundError as exc:
        print(f"gbsip {args.command}: {exc.filename}: no such file", file=sys.stderr)
        return EXIT_FAILED
