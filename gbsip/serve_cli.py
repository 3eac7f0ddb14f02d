"""``gbsip serve``: a GB/T 28181 registrar (platform) printing its events
(registered in :func:`gbsip.cli.build_parser`).

Every line carries the wall-clock time of its event (``--json``: ISO 8601
with the UTC offset), the one clock users see everywhere else
(``Binding.expires_at``, ``gbsip simulate``'s reports).

Printing is the costly part of the command, so it is made cheap: each
event class gets its formatter once (no per-event reflection), lines are
written in batches (one write per wake-up of the loop, not one per event),
and on a terminal at most ``--max-lines`` events a second are shown: past
that, one line a second counts the rest by kind.  A pipe or a file gets
every event.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import fields
from operator import attrgetter
from pathlib import Path
from typing import Any

from gbsip import _cli_args as opt
from gbsip._console import EXIT_BROKEN_PIPE, Clock, Output
from gbsip._version import __version__
from gbsip.registrar import Registrar
from gbsip.events import (
    DeviceRefreshed,
    DeviceRegistered,
    DeviceUnregistered,
    Expired,
    Offline,
    Online,
    QueryCompleted,
    RegistrarEvent,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

#: Events a second shown on a terminal before they are only counted.
MAX_LINES = 50

_COMMON = ("device_id", "time", "source", "transport")
_JSON = json.JSONEncoder(default=str, ensure_ascii=False)


def load_passwords(path: str) -> dict[str, str]:
    """CSV lines ``device_id,password`` (a header line is allowed)."""
    out: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.reader(f):
            if len(row) < 2 or not row[0].strip() or row[0].strip().lower() == "device_id":
                continue
            out[row[0].strip()] = row[1].strip()
    return out


# --------------------------------------------------------------------------
# Formatting: one formatter per event class, made once


Formatter = Callable[[RegistrarEvent], str]


class EventFormats:
    """Text and JSON lines for registrar events, with a formatter made once
    per event class from its fields (``dataclasses.asdict`` per event was
    a third of the command's formatting time)."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self._text: dict[type, Formatter] = {}
        self._json: dict[type, Formatter] = {}

    def text(self, ev: RegistrarEvent) -> str:
        fmt = self._text.get(type(ev))
        if fmt is None:
            fmt = self._text[type(ev)] = self._make_text(type(ev))
        return fmt(ev)

    def json(self, ev: RegistrarEvent) -> str:
        fmt = self._json.get(type(ev))
        if fmt is None:
            fmt = self._json[type(ev)] = self._make_json(type(ev))
        return fmt(ev)

    def _make_text(self, cls: type) -> Formatter:
        name = cls.__name__
        if cls is QueryCompleted:
            return self._query_text
        names = tuple(f.name for f in fields(cls) if f.name not in _COMMON)
        get = attrgetter(*names) if names else None
        hms = self.clock.hms

        def fmt(ev: RegistrarEvent) -> str:
            src = ev.source
            where = f"{src[0]}:{src[1]}/{ev.transport}" if src else ev.transport
            line = f"{hms(ev.time)} {name:<18} {ev.device_id or '-':<20} {where:<24}"
            if get is None:
                return line.rstrip()
            values = get(ev)
            if len(names) == 1:
                values = (values,)
            rest = " ".join(f"{k}={v}" for k, v in zip(names, values) if v is not None and v != "")
            return f"{line} {rest}".rstrip()

        return fmt

    def _query_text(self, ev: RegistrarEvent) -> str:
        """A query's outcome in one short line: a Catalog's channel count."""
        assert isinstance(ev, QueryCompleted)
        r = ev.result
        src = ev.source
        where = f"{src[0]}:{src[1]}/{ev.transport}" if src else ev.transport
        line = f"{self.clock.hms(ev.time)} {'QueryCompleted':<18} {r.device_id:<20} {where:<24}"
        state = "complete" if r.complete else (
            f"status={r.status}" if r.status and r.status >= 300 else "incomplete")
        if r.cmd_type == "Catalog":
            total = r.sum_num if r.sum_num is not None else "?"
            what = f"channels={len(r.items)}/{total}"
        else:
            name = r.text("DeviceName") or r.text("Result")
            what = f"{name}" if name else f"parts={r.parts_received}"
        return f"{line} {r.cmd_type} {what} {state} ({r.elapsed:.2f} s)"

    def _make_json(self, cls: type) -> Formatter:
        name = cls.__name__
        if cls is QueryCompleted:
            iso = self.clock.iso

            def fmt_query(ev: RegistrarEvent) -> str:
                assert isinstance(ev, QueryCompleted)
                src = ev.source
                return _JSON.encode({"event": name, "time": iso(ev.time),
                                     "device_id": ev.device_id,
                                     "source": [src[0], src[1]] if src else None,
                                     "transport": ev.transport,
                                     "result": ev.result.as_dict()})

            return fmt_query
        names = tuple(f.name for f in fields(cls) if f.name not in _COMMON)
        get = attrgetter(*names) if names else None
        iso = self.clock.iso
        encode = _JSON.encode

        def fmt(ev: RegistrarEvent) -> str:
            src = ev.source
            d: dict[str, Any] = {"event": name, "time": iso(ev.time), "device_id": ev.device_id,
                                 "source": [src[0], src[1]] if src else None,
                                 "transport": ev.transport}
            if get is not None:
                values = get(ev)
                if len(names) == 1:
                    values = (values,)
                d.update(zip(names, values))
            return encode(d)

        return fmt


class EventPrinter:
    """Prints events as they come: lines gathered and written once per
    wake-up of the loop.  With ``limit`` (a terminal), at most that many
    events a second are printed; the others are counted by kind and shown
    as one line a second.  While the rate stays above the limit the
    registrar is asked not to make event objects at all
    (``Registrar.suppress_events``): it only counts them, which is what
    keeps the command close to ``--quiet``'s cost under load."""

    def __init__(self, out: Output, fmt: Formatter, clock: Clock,
                 limit: int | None, loop: asyncio.AbstractEventLoop,
                 registrar: Registrar | None = None) -> None:
        self.out = out
        self.fmt = fmt
        self.clock = clock
        self.limit = limit
        self.loop = loop
        self.registrar = registrar
        self.lines: list[str] = []
        self.shown = 0
        self.hidden: dict[str, int] = {}
        self._scheduled = False
        self._ticker: asyncio.TimerHandle | None = None
        if limit is not None:
            self._ticker = loop.call_later(1.0, self._tick)

    def __call__(self, ev: RegistrarEvent) -> None:
        if self.limit is not None:
            self.shown += 1
            if self.shown > self.limit:
                name = type(ev).__name__
                self.hidden[name] = self.hidden.get(name, 0) + 1
                if self.registrar is not None:
                    self.registrar.suppress_events = True  # until the next tick
                return
        self.lines.append(self.fmt(ev))
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if self.lines:
            text = "\n".join(self.lines) + "\n"
            self.lines.clear()
            self.out.write(text)

    def _tick(self) -> None:
        self._ticker = self.loop.call_later(1.0, self._tick)
        hidden = self.hidden
        reg = self.registrar
        if reg is not None and reg.suppressed:
            for name, n in reg.suppressed.items():
                hidden[name] = hidden.get(name, 0) + n
            reg.suppressed.clear()
        total = sum(hidden.values())
        if reg is not None:
            # a second past the limit: the next one is only counted too
            reg.suppress_events = self.limit is not None and \
                min(self.shown, self.limit) + total > self.limit
        self.shown = 0
        if total:
            kinds = ", ".join(f"{n} {k}" for k, n in sorted(hidden.items(), key=lambda kv: -kv[1]))
            self.lines.append(f"{self.clock.hms(time.time())} … {total} more events in the "
                              f"last second ({kinds}); a terminal shows {self.limit} a second, "
                              "a pipe or --json all of them")
            hidden.clear()
            self.flush()

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        self._tick()
        if self._ticker is not None:
            self._ticker.cancel()
        self.flush()


class StatusDir:
    """``--status-dir``: one file per device holding ``online``,
    ``offline``, ``unregistered`` or ``expired``, rewritten (atomically) when
    that changes, so a shell can ask: ``grep -qx offline DIR/<device_id>``
    (the platform suite's ``--gb-offline-cmd``)."""

    KINDS: tuple[type[RegistrarEvent], ...] = (
        DeviceRegistered, DeviceRefreshed, Online, Offline, DeviceUnregistered, Expired)
    _STATE = {DeviceRegistered: "online", DeviceRefreshed: "online", Online: "online",
              Offline: "offline", DeviceUnregistered: "unregistered", Expired: "expired"}

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._last: dict[str, str] = {}

    def __call__(self, ev: RegistrarEvent) -> None:
        state = self._STATE.get(type(ev))
        device = ev.device_id
        if state is None or not device or self._last.get(device) == state:
            return
        if not device.replace("-", "").replace("_", "").isalnum():
            return  # never a path out of the directory
        self._last[device] = state
        tmp = self.path / f".{device}.tmp"
        tmp.write_text(state + "\n")
        os.replace(tmp, self.path / device)


# --------------------------------------------------------------------------
# The command


def default_store_path() -> str:
    """Where `gbsip serve` keeps bindings unless told: the XDG state dir."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    path = base / "gbsip"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise opt.UsageError("--store", f"cannot create {path} ({exc.strerror or exc}): "
                                        "give --store PATH or --no-store") from None
    return str(path / "bindings.db")


def _serve_workers(args: argparse.Namespace, run: Callable[[Any], int]) -> int:
    """``--workers N``: N registrar processes share the port (SO_REUSEPORT)."""
    if args.port == 0:
        print("gbsip serve: --workers: needs an explicit --port", file=sys.stderr)
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
    children = [subprocess.Popen([sys.executable, "-m", "gbsip", *argv, "--reuse-port",
                                  "--worker-index", str(k)])
                for k in range(1, args.workers)]
    args.reuse_port = True
    try:
        return run(serve(args))
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()


# A flood from one address is cut here; a simulator at its default rate
# (1,000 registrations/s, ~2,000 requests/s from one address) stays under it.
RATE_PER_SOURCE = 5000


def query_list(text: str) -> tuple[str, ...]:
    """--query-on-register: comma-separated query names, or none."""
    from gbsip.queries import QUERY_TYPES
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if names in ((), ("none",)):
        return ()
    bad = [n for n in names if n.lower() not in QUERY_TYPES]
    if bad:
        raise opt.UsageError("--query-on-register", f"unknown query {bad[0]!r}: use "
                                                    f"{', '.join(QUERY_TYPES.values())} or none")
    return tuple(QUERY_TYPES[n.lower()] for n in names)


async def serve(args: argparse.Namespace) -> int:
    from gbsip.errors import ConfigurationError, RegistrarError
    from gbsip.registrar import KeepalivePolicy, Lockout, Refresh, Registrar
    from gbsip.store import StoreError

    prog = "gbsip serve"
    try:
        opt.server_id_domain(args.server_id, args.realm, "--realm")
        if args.max_expires < args.min_expires:
            raise opt.UsageError("--max-expires", f"{args.max_expires} is below --min-expires "
                                                  f"{args.min_expires}")
        passwords: Any = args.password
        if args.passwords_file:
            try:
                passwords = load_passwords(args.passwords_file)
            except OSError as exc:
                raise opt.UsageError("--passwords-file", f"cannot read {args.passwords_file}: "
                                                         f"{exc.strerror or exc}") from None
        status = StatusDir(args.status_dir) if args.status_dir else None
        # --quiet is for load tests: no events, so no queries to report either
        queries = () if args.quiet else query_list(args.query_on_register)
        store = None if args.no_store else (args.store or default_store_path())
    except opt.UsageError as exc:
        return opt.fail(prog, exc)
    except OSError as exc:
        return opt.fail(prog, opt.UsageError("--status-dir", f"{exc.strerror or exc}"))
    if args.quiet:
        kinds: tuple[type[RegistrarEvent], ...] | None = StatusDir.KINDS if status else ()
    else:
        kinds = None
    out = Output(sys.stdout)
    try:
        reg = Registrar(
            args.server_id,
            host=args.host,
            port=args.port,
            transports=args.transport,
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
            nonce_lifetime=args.nonce_lifetime,
            keepalive_events=not (args.quiet_keepalives or args.quiet),
            events=kinds,
            reuse_port=args.reuse_port,
            max_connections=args.max_connections,
            raise_fd_limit=args.raise_fd_limit,
            rate_per_source=args.rate_per_source,
            lockout=None if args.no_lockout else Lockout(
                failures=args.lockout_failures, source_failures=args.lockout_source_failures,
                window=args.lockout_window, duration=args.lockout_time),
            keepalive_policy=KeepalivePolicy[args.keepalive_policy.upper()],
            require_qop=not args.allow_qop_downgrade,
            store=store,
            store_flush_interval=args.store_flush,
            node=args.node or f"{args.host}:{args.port}/{args.worker_index}",
            query_on_register=queries,
        )
        await reg.start()
    except ConfigurationError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (RegistrarError, StoreError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    out.on_closed = stop.set  # the reader went away (| head): stop serving
    stopped_by: list[int] = []  # the signal that stopped it, for the exit status

    def on_signal(sig: int) -> None:
        stopped_by.append(sig)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, sig)
    clock = Clock()
    formats = EventFormats(clock)
    addrs = ", ".join(f"{t}://{h}:{p}" for t, (h, p) in reg.addresses.items())
    restored = reg.stats().get("store_restored")
    if args.json:
        out.line(_JSON.encode({"event": "Listening", "time": clock.iso(time.time()),
                               "server_id": args.server_id, "realm": reg.realm,
                               "addresses": reg.addresses, "store": store,
                               "restored": restored}))
    else:
        kept = (f"; bindings kept in {store} ({restored} restored)" if store is not None
                else "; bindings in memory only")
        out.line(f"{clock.iso(time.time())} gbsip {__version__} registrar {args.server_id} "
                 f"realm {reg.realm} on {addrs}{kept}")
    printer: EventPrinter | None = None
    if not args.quiet:
        limit = None if args.json or not out.isatty() else args.max_lines
        printer = EventPrinter(out, formats.json if args.json else formats.text, clock,
                               limit, loop, registrar=None if status else reg)

    async def pump() -> None:
        async for ev in reg.events():
            if status is not None:
                status(ev)
            if printer is not None:
                printer(ev)

    consumer = asyncio.ensure_future(pump())
    waiter = asyncio.ensure_future(stop.wait())
    duration = args.duration if args.duration and args.duration > 0 else None
    await asyncio.wait({consumer, waiter}, timeout=duration,
                       return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    await reg.close()
    await asyncio.gather(consumer, return_exceptions=True)
    if printer is not None:
        printer.close()
    s = reg.stats()
    if args.json:
        out.line(_JSON.encode({"event": "Stopped", "time": clock.iso(time.time()), "stats": s}))
    else:
        out.line(f"{clock.iso(time.time())} stopped: {s['bindings']} bindings, "
                 f"{s['registrations']} registrations, {s['keepalives']} keepalives, "
                 f"{s['auth_failures']} auth failures")
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(sig)
    if out.closed:
        return EXIT_BROKEN_PIPE
    # stopped by Ctrl-C (SIGTERM): 128 + the signal, as the shell reports a
    # process the signal ended and as gbsip simulate exits; --duration: 0
    return 128 + stopped_by[0] if stopped_by else EXIT_OK


def add_serve(sub: Any, run: Callable[[Any], int]) -> None:
    p = sub.add_parser(
        "serve", help="run a GB/T 28181 registrar (platform) and print events",
        description="Run a GB/T 28181 registrar and print its events, one line each with "
                    "its wall-clock time (--json: JSON lines, ISO 8601 times).  On a "
                    "terminal at most --max-lines events a second are printed, then one "
                    "line a second counts the rest; a pipe or a file gets every event.  "
                    "Ctrl-C (SIGTERM) stops it after a last line of counters, exit status "
                    "130 (143); --duration stops it with exit status 0.")
    p.add_argument("--server-id", default="34020000002000000001",
                   help="20-digit platform ID (default %(default)s)")
    p.add_argument("--realm", help="Digest realm (default: first 10 digits of the server ID)")
    p.add_argument("--host", default="127.0.0.1", type=opt.ip_address,
                   help="address to listen on (default %(default)s)")
    p.add_argument("--port", type=opt.port, default=5060,
                   help="port, 0 for a free one (default %(default)s)")
    p.add_argument("--transport", type=opt.transports, default="udp,tcp",
                   help="udp, tcp or udp,tcp (default %(default)s)")
    p.add_argument("--password", default="12345678",
                   help="one password for every device (default %(default)s)")
    p.add_argument("--passwords-file", help="CSV of device_id,password (overrides --password; "
                                            "other devices are refused 403)")
    p.add_argument("--min-expires", type=opt.whole(1), default=3600,
                   help="shortest registration lifetime granted, s; a device asking less is "
                        "answered 423 with Min-Expires (default %(default)s)")
    p.add_argument("--max-expires", type=opt.whole(1), default=86400,
                   help="longest registration lifetime granted, s; longer requests are "
                        "shortened to it (default %(default)s)")
    p.add_argument("--nonce-lifetime", type=opt.whole(1), default=300,
                   help="seconds a Digest nonce stays valid; older ones get 401 stale=true "
                        "(default %(default)s)")
    p.add_argument("--keepalive", type=opt.seconds(), default=60,
                   help="keepalive interval expected of devices, s (default %(default)s)")
    p.add_argument("--keepalive-count", type=opt.whole(1), default=3,
                   help="missed keepalives before a device is offline (default %(default)s)")
    p.add_argument("--qop", action="store_true", help='offer qop="auth" in challenges')
    p.add_argument("--trust-refresh", action="store_true",
                   help="accept refreshes on the same Call-ID without a challenge")
    p.add_argument("--any-id", action="store_true", help="accept device IDs that are not 20 digits")
    p.add_argument("--gb-version", choices=("2.0", "3.0"),
                   help="send X-GB-Ver (2.0 = 2016, 3.0 = 2022)")
    p.add_argument("--status-dir", metavar="DIR",
                   help="keep one file per device in DIR saying online, offline, unregistered "
                        "or expired (for scripts and the platform suite's --gb-offline-cmd)")
    p.add_argument("--quiet-keepalives", action="store_true", help="no event per keepalive")
    p.add_argument("--quiet", action="store_true",
                   help="record and print no events (for load tests); stats at exit")
    p.add_argument("--max-lines", type=opt.whole(1), default=MAX_LINES,
                   help="on a terminal, events printed a second before the rest are only "
                        "counted (default %(default)s)")
    p.add_argument("--duration", type=opt.seconds(at_least=0), default=0,
                   help="stop after this many seconds (0: run until Ctrl-C)")
    p.add_argument("--store", metavar="PATH|redis://HOST:PORT/DB",
                   help="keep bindings across restarts in this SQLite file or Redis server "
                        "(default: a SQLite file under $XDG_STATE_HOME/gbsip, "
                        "~/.local/state/gbsip when unset)")
    p.add_argument("--no-store", action="store_true",
                   help="keep bindings in memory only: a restart forgets them")
    p.add_argument("--store-flush", type=opt.seconds(), default=1.0, metavar="SECONDS",
                   help="write changed bindings every this many seconds (default %(default)s)")
    p.add_argument("--node", help="this registrar's name in a shared store "
                                  "(default HOST:PORT/WORKER)")
    p.add_argument("--rate-per-source", type=opt.whole(0), default=RATE_PER_SOURCE, metavar="N",
                   help="requests per second accepted from one source address (an IPv6 "
                        "source is its /64); more are "
                        "dropped and counted (default %(default)s; 0: no limit)")
    p.add_argument("--lockout-failures", type=opt.whole(0), default=5, metavar="N",
                   help="wrong Digest answers for one device from one address, within the "
                        "window, that lock the pair out (403) (default %(default)s; 0: off)")
    p.add_argument("--lockout-source-failures", type=opt.whole(0), default=100, metavar="N",
                   help="wrong answers from one address for any devices that lock the address "
                        "out (default %(default)s; 0: off)")
    p.add_argument("--lockout-window", type=opt.seconds(), default=60.0, metavar="SECONDS",
                   help="window the failures are counted in (default %(default)s)")
    p.add_argument("--lockout-time", type=opt.seconds(), default=300.0, metavar="SECONDS",
                   help="how long a lockout lasts (default %(default)s)")
    p.add_argument("--max-connections", type=opt.whole(1), default=None, metavar="N",
                   help="TCP connections at once; more are refused and counted "
                        "(default: as many as the open-files limit allows)")
    p.add_argument("--raise-fd-limit", action=argparse.BooleanOptionalAction, default=True,
                   help="raise the open-files soft limit to the hard limit when TCP "
                        "connections need more (default: on)")
    p.add_argument("--no-lockout", action="store_true",
                   help="never lock out password guessers")
    p.add_argument("--keepalive-policy", choices=("refuse", "challenge"), default="refuse",
                   help="a keepalive without credentials from another address than the "
                        "device's binding: 403 (refuse) or 401 (challenge); it never moves "
                        "the binding (default %(default)s)")
    p.add_argument("--allow-qop-downgrade", action="store_true",
                   help='with --qop, accept Digest answers that leave qop="auth" out')
    p.add_argument("--worker-index", type=opt.whole(0), default=0, help=argparse.SUPPRESS)
    p.add_argument("--workers", type=opt.whole(1), default=1,
                   help="registrar processes sharing the port (SO_REUSEPORT); each keeps "
                        "its own bindings, and the kernel sends each source to one of them")
    p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true",
                   help="print JSON lines (every event, time as ISO 8601)")
    p.add_argument("--query-on-register", default="DeviceInfo,Catalog", metavar="LIST",
                   help="queries sent to each device after its first registration, as WVP "
                        "does; each answer is a QueryCompleted line (a Catalog's with its "
                        "channel count); 'none' for none; --quiet sends none "
                        "(default %(default)s)")
    p.set_defaults(func=lambda a: _serve_workers(a, run) if a.workers > 1 else run(serve(a)))
