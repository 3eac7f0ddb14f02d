"""``gbsip simulate`` and ``gbsip register``: the simulator and one device
from the command line (registered in :func:`gbsip.cli.build_parser`).

Without ``--server`` both start an embedded gbsip Registrar on loopback
(a free port), so the first command on a fresh machine shows the whole
system working.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import AsyncIterator
from typing import Any, TextIO

from gbsip._version import __version__

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

DEFAULT_SERVER_ID = "34020000002000000001"
DEFAULT_PASSWORD = "12345678"
_FAULTS = ("drop_responses", "wrong_password", "skip_keepalives", "change_source_port")


def _err(cmd: str, msg: str) -> None:
    print(f"gbsip {cmd}: {msg}", file=sys.stderr, flush=True)


@contextlib.asynccontextmanager
async def _platform(args: argparse.Namespace, transport: str,
                    password: str) -> AsyncIterator[str]:
    """The server URL: --server, or an embedded registrar on loopback."""
    if args.server:
        yield args.server
        return
    from gbsip.registrar import Registrar

    keepalive = args.keepalive if getattr(args, "keepalive", None) else 60.0
    reg = Registrar(
        args.server_id,
        host="127.0.0.1",
        port=0,
        transports=(transport,),
        passwords=password,
        realm=args.domain,
        min_expires=min(args.expires, 3600),
        keepalive_interval=keepalive,
        keepalive_events=False,
        max_events=1024,
        max_connections=max(10000, getattr(args, "devices", 1) + 100),
        raise_fd_limit=getattr(args, "raise_fd_limit", True),
    )
    await reg.start()
    host, port = reg.addresses[transport]
    try:
        yield f"{transport}://{host}:{port}"
    finally:
        await reg.close()


def _print_message(out: TextIO, direction: str, data: bytes, who: str) -> None:
    """One SIP message as the seed shows them: a heading, then the text."""
    stamp = time.strftime("%H:%M:%S") + f".{int(time.time() * 1000) % 1000:03d}"
    arrow = "device → platform" if direction == "send" else "platform → device"
    text = data.decode("utf-8", "replace").replace("\r\n", "\n").rstrip("\n")
    print(f"\n#### {stamp} {arrow} ({who})\n```\n{text}\n```", file=out, flush=True)


# --------------------------------------------------------------------------
# simulate


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _ms(v: int) -> str:
    """Latencies are whole milliseconds (the core's clock): 0 means < 1."""
    return "<1 ms" if v == 0 else f"{v} ms"


def _progress_line(s: dict[str, Any]) -> str:
    st = s["by_state"]
    lat = s["latency_ms"]["register"]
    failed = st["failed"]
    return (f"[{s['phase']:<10} {s['elapsed']:6.1f}s] registered {s['registered']}/{s['devices']}"
            f"  registering {st['registering']}  failed {failed}"
            f"  {s['rates']['registrations_per_s']:.0f} reg/s"
            f"  {s['rates']['keepalives_per_s']:.0f} ka/s"
            f"  REGISTER p50 {_ms(lat['p50'])} p99 {_ms(lat['p99'])}"
            f"  RSS {_fmt_bytes(s['memory']['rss_bytes'])}")


def _summary(r: dict[str, Any]) -> str:
    res = r["result"]
    lat = r["latency_ms"]
    msg = r["messages"]
    tot = r["totals"]
    ramp = r["ramp"]
    rows: list[tuple[str, str]] = [
        ("server", f"{r['server']}  (devices {r['config']['first_device']}"
                   f" .. {r['config']['last_device']})"),
        ("devices", str(r["devices"])),
        ("registered", f"{res['registered']} at the end, {res['ever_registered']} at least once"),
    ]
    for why, n in res["not_registered"].items():
        rows.append(("  not registered", f"{n}  {why}"))
    if ramp["achieved_rate"] is not None:
        rows.append(("ramp", f"{ramp['achieved_rate']:.0f}/s achieved (target "
                             f"{ramp['target_rate'] or 'all at once'}), peak "
                             f"{ramp['peak_rate']:.0f}/s, {ramp['seconds']} s"))
    rows += [
        ("registrations", f"{tot['registrations']} + {tot['refreshes']} refreshes, "
                          f"{tot['challenges']} challenges, {tot['failures']} failures"),
        ("keepalives", f"{tot['keepalives_sent']} sent, {tot['keepalives_answered']} answered, "
                       f"{tot['keepalives_missed']} missed"),
    ]
    for name, key in (("REGISTER latency", "register"), ("refresh latency", "refresh"),
                      ("MESSAGE latency", "message")):
        h = lat[key]
        if h["count"]:
            rows.append((name, f"p50 {_ms(h['p50'])}  p95 {_ms(h['p95'])}  p99 {_ms(h['p99'])}"
                               f"  max {_ms(h['max'])}  ({h['count']})"))
    rows.append(("messages", f"{msg['sent']} sent ({msg['retransmitted']} retransmitted), "
                             f"{msg['received']} received, {msg['strays']} stray"))
    if r["failures"]["by_reason"]:
        rows.append(("failures", ", ".join(f"{k} {v}" for k, v in
                                           r["failures"]["by_reason"].items())
                     + "  (status: " + ", ".join(f"{k}: {v}" for k, v in
                                                 r["failures"]["by_status"].items()) + ")"))
    if r["churn"]["offline"]:
        rows.append(("churn", f"{r['churn']['offline']} went offline, "
                              f"{r['churn']['returned']} came back"))
    if r["faults"]:
        rows.append(("faults", ", ".join(f"{k} {v}" for k, v in r["faults"].items())))
    rows.append(("unregistered", str(r["unregistration"]["unregistered"])))
    mem = r["memory"]
    rows.append(("time", f"{r['elapsed']} s, CPU {r['cpu_seconds']} s ({r['cpu_percent']} %)"))
    rows.append(("memory", f"RSS {_fmt_bytes(mem['rss_bytes'])}, "
                           f"+{_fmt_bytes(mem['rss_delta_bytes'])} "
                           f"({mem['bytes_per_device']:.0f} B per device; core state "
                           f"{mem['bytes_per_device_core']} B)"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _verdict(r: dict[str, Any]) -> str | None:
    """None when every device registered, else one line saying why not."""
    res = r["result"]
    n = r["devices"]
    if res["registered"] == n:
        return None
    why = res["not_registered"]
    if res["ever_registered"] == 0 and why:
        keys = list(why)
        refused = [k for k in keys if k.startswith(("rejected 403", "auth_rejected"))]
        if refused and sum(why[k] for k in refused) == n:
            status = "403" if refused[0].startswith("rejected 403") else "401"
            return f"all devices refused ({status}): check --password"
        if all(k.startswith("timeout") for k in keys):
            return f"no answer from {r['server']}: is the platform running?"
        top = keys[0]
        return f"no device registered: {why[top]} × {top}"
    missing = n - res["registered"]
    detail = ", ".join(f"{v} {k}" for k, v in why.items())
    return f"{missing} of {n} devices are not registered ({detail})"


async def _simulate(args: argparse.Namespace) -> int:
    from gbsip._address import parse_target
    from gbsip.errors import RegistrarError, SimulatorError
    from gbsip.simulator import Simulator

    try:
        transport = args.transport or (parse_target(args.server).transport if args.server else "udp")
        faults: dict[str, float] = {}
        for spec in args.fault or []:
            kind, _, frac = spec.partition("=")
            kind = kind.strip().replace("-", "_")
            if kind not in _FAULTS or not frac:
                raise ValueError(f"--fault wants KIND=FRACTION with KIND one of "
                                 f"{', '.join(_FAULTS)}: {spec!r}")
            faults[kind] = float(frac)
    except ValueError as exc:
        _err("simulate", str(exc))
        return EXIT_USAGE
    keepalive = args.keepalive if args.keepalive is not None else min(60.0, args.duration / 4)
    args.keepalive = keepalive
    tty = sys.stderr.isatty()
    interval = args.interval or (1.0 if tty else 5.0)
    registrar_password = args.registrar_password or args.password
    out = sys.stderr if args.json else sys.stdout

    def progress(s: dict[str, Any]) -> None:
        if args.quiet:
            return
        line = _progress_line(s)
        if tty:
            end = "\n" if s["phase"] == "done" else ""
            print(f"\r\x1b[2K{line}", end=end, file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    trace_out = sys.stderr if args.json else sys.stdout
    try:
        async with _platform(args, transport, registrar_password) as server:
            sim = Simulator(
                args.devices,
                server=server,
                server_id=args.server_id,
                domain=args.domain,
                password=args.password,
                id_prefix=args.id_prefix,
                id_start=args.id_start,
                transport=transport,
                rate=args.rate or None,
                duration=args.duration,
                expires=args.expires,
                keepalive_interval=keepalive,
                keepalive_timeout_count=args.keepalive_count,
                retry_interval=args.retry,
                t1=args.t1,
                churn=args.churn,
                churn_offline=args.churn_offline,
                churn_mode=args.churn_mode,
                faults=faults,
                sockets=args.sockets,
                local_host=args.local_host,
                local_port=args.local_port,
                capability_header=not args.no_capability,
                gb_version=args.gb_version,
                unregister=not args.no_unregister,
                no_answer_timeout=args.no_answer_timeout,
                trace=args.trace,
                on_trace=lambda d, data: _print_message(trace_out, d, data, args.trace),
                raise_fd_limit=args.raise_fd_limit,
                seed=args.seed,
            )
            if not args.quiet:
                where = server if args.server else f"{server} (embedded gbsip registrar)"
                print(f"gbsip {__version__}: {args.devices} devices → {where}, "
                      f"{args.rate or 'all at once'}/s, {args.duration:g} s, "
                      f"keepalive {keepalive:g} s", file=sys.stderr, flush=True)
            async with sim:
                run = asyncio.ensure_future(sim.run(progress=progress, interval=interval))
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    with contextlib.suppress(NotImplementedError, RuntimeError):
                        loop.add_signal_handler(sig, stop.set)
                waiter = asyncio.ensure_future(stop.wait())
                await asyncio.wait({run, waiter}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if not run.done():
                    run.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await run
                    _err("simulate", "interrupted")
                    return 130
                report = run.result()
    except (SimulatorError, RegistrarError) as exc:
        if sys.stderr.isatty():
            print(file=sys.stderr)
        _err("simulate", str(exc))
        return EXIT_FAILED
    except ValueError as exc:
        _err("simulate", str(exc))
        return EXIT_USAGE
    except OSError as exc:
        _err("simulate", f"{exc.strerror or exc}")
        return EXIT_FAILED
    if args.json:
        print(json.dumps(report, indent=2), flush=True)
    else:
        print(file=out)
        print(_summary(report), file=out, flush=True)
    verdict = _verdict(report)
    if verdict is not None:
        _err("simulate", verdict)
        return EXIT_FAILED
    return EXIT_OK


def add_simulate(sub: Any, run: Any) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate many GB/T 28181 cameras registering to a platform",
        description="Simulate GB/T 28181 cameras: Digest registration, refresh, keepalive, "
                    "unregistration.  Without --server an embedded gbsip registrar on "
                    "loopback is the platform.  Exit status 0 only if every device "
                    "registered.",
    )
    p.add_argument("--server", help="platform address udp://HOST:PORT or tcp://HOST:PORT "
                                    "(default: an embedded registrar on 127.0.0.1)")
    p.add_argument("--server-id", default=DEFAULT_SERVER_ID,
                   help="20-digit platform ID (default %(default)s)")
    p.add_argument("--domain", help="SIP domain / realm (default: first 10 digits of the server ID)")
    p.add_argument("--password", default=DEFAULT_PASSWORD,
                   help="devices' password (default %(default)s)")
    p.add_argument("--registrar-password",
                   help="embedded registrar's password (default: --password)")
    p.add_argument("--devices", type=int, default=1000, help="how many devices (default %(default)s)")
    p.add_argument("--id-prefix", default="340200000013200",
                   help="device IDs: this prefix + serial, 20 digits (default %(default)s)")
    p.add_argument("--id-start", type=int, default=1, help="first serial (default %(default)s)")
    p.add_argument("--rate", type=float, default=1000,
                   help="devices started per second, 0: all at once (default %(default)s)")
    p.add_argument("--duration", type=float, default=10,
                   help="seconds from the first REGISTER to unregistration (default %(default)s)")
    p.add_argument("--expires", type=int, default=3600, help="requested lifetime, s (default %(default)s)")
    p.add_argument("--keepalive", type=float, default=None,
                   help="keepalive interval, s (default 60, or a quarter of --duration when shorter)")
    p.add_argument("--keepalive-count", type=int, default=3,
                   help="unanswered keepalives before re-registering (default %(default)s)")
    p.add_argument("--retry", type=float, default=60, help="seconds before retrying a failure (default %(default)s)")
    p.add_argument("--t1", type=float, default=0.5, help="RFC 3261 T1, s (default %(default)s)")
    p.add_argument("--transport", choices=("udp", "tcp"),
                   help="udp or tcp (default: from --server, else udp)")
    p.add_argument("--sockets", type=int, default=8,
                   help="UDP sockets shared by the devices, 0: one per device (default %(default)s)")
    p.add_argument("--local-host", help="local address to bind (default: loopback, or any)")
    p.add_argument("--local-port", type=int, default=0,
                   help="first local UDP port, 0: any (default %(default)s)")
    p.add_argument("--raise-fd-limit", action=argparse.BooleanOptionalAction, default=True,
                   help="raise the open-files soft limit to the hard limit when TCP devices "
                        "need more (default: on)")
    p.add_argument("--churn", type=float, default=0.0,
                   help="fraction of devices that go offline once and come back")
    p.add_argument("--churn-offline", type=float, default=5.0, help="seconds offline (default %(default)s)")
    p.add_argument("--churn-mode", choices=("unregister", "silent"), default="unregister",
                   help="go offline by unregistering or by going silent")
    p.add_argument("--fault", action="append", metavar="KIND=FRACTION",
                   help=f"fault injection, repeatable; KIND: {', '.join(_FAULTS)}")
    p.add_argument("--gb-version", help="send X-GB-Ver (2.0 = 2016, 3.0 = 2022)")
    p.add_argument("--no-capability", action="store_true",
                   help='do not send the seed\'s Authorization: Capability, algorithm="H:MD5"')
    p.add_argument("--no-unregister", action="store_true", help="leave the devices registered")
    p.add_argument("--no-answer-timeout", type=float, default=5.0,
                   help="give up when nothing answers for this long (default %(default)s s)")
    p.add_argument("--trace", metavar="DEVICE_ID", help="print this device's SIP messages")
    p.add_argument("--interval", type=float, default=None,
                   help="progress every N s (default 1 on a terminal, 5 otherwise)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--json", action="store_true", help="print the final report as JSON")
    p.add_argument("--seed", type=int, help="random seed (IDs of faults and churn, Call-IDs)")
    p.set_defaults(func=lambda a: run(_simulate(a)))


# --------------------------------------------------------------------------
# register


async def _register(args: argparse.Namespace) -> int:
    from gbsip._address import parse_target
    from gbsip.device import Device
    from gbsip.errors import RegistrarError, RegistrationError

    transport = args.transport or (parse_target(args.server).transport if args.server else "udp")
    args.keepalive = None
    out = sys.stdout

    def trace(direction: str, data: bytes) -> None:
        if not args.quiet:
            _print_message(out, direction, data, args.device_id)

    try:
        async with _platform(args, transport, args.registrar_password or args.password) as server:
            dev = Device(args.device_id, password=args.password, server=server,
                         server_id=args.server_id, domain=args.domain, transport=transport,
                         expires=args.expires, keepalive_interval=None,
                         capability_header=not args.no_capability,
                         gb_version=args.gb_version, trace=trace)
            print(f"gbsip {__version__}: device {args.device_id} → {server}"
                  + ("" if args.server else " (embedded gbsip registrar)"), flush=True)
            try:
                registered = await asyncio.wait_for(dev.start(), args.timeout)
            except asyncio.TimeoutError:
                await dev.close()
                _err("register", f"no answer from {server} in {args.timeout:g} s "
                                 "(is the platform running? check --server)")
                return EXIT_FAILED
            except RegistrationError as exc:
                hint = ""
                if exc.status == 403 or exc.kind == "auth_rejected":
                    hint = ": check --password and --device-id"
                elif exc.status == 0:
                    hint = f": no answer from {server}"
                _err("register", f"refused: {exc.status or ''} {exc.reason}{hint}".replace("  ", " "))
                return EXIT_FAILED
            print(f"\nregistered: expires {registered.expires} s, latency "
                  f"{registered.latency * 1000:.0f} ms"
                  + (f", platform clock {registered.date} (offset {registered.clock_offset:+.1f} s)"
                     if registered.date is not None and registered.clock_offset is not None
                     else ""), flush=True)
            ka = await dev.send_keepalive()
            print(f"keepalive: {type(ka).__name__} (status {ka.status})", flush=True)
            if args.hold > 0:
                await asyncio.sleep(args.hold)
            gone = await dev.close()
            if gone is not None:
                print(f"unregistered: {gone.status} {gone.reason}", flush=True)
    except RegistrarError as exc:
        _err("register", str(exc))
        return EXIT_FAILED
    except OSError as exc:
        _err("register", f"{exc.strerror or exc}")
        return EXIT_FAILED
    except ValueError as exc:
        _err("register", str(exc))
        return EXIT_USAGE
    return EXIT_OK


def add_register(sub: Any, run: Any) -> None:
    p = sub.add_parser(
        "register",
        help="register one device against a platform, showing every message",
        description="Register one GB/T 28181 device, send a keepalive and unregister, "
                    "printing the SIP exchange.  Without --server an embedded gbsip "
                    "registrar on loopback is the platform.",
    )
    p.add_argument("--server", help="platform address udp://HOST:PORT or tcp://HOST:PORT "
                                    "(default: an embedded registrar)")
    p.add_argument("--device-id", default="34020000001320000001",
                   help="20-digit device ID (default %(default)s)")
    p.add_argument("--server-id", default=DEFAULT_SERVER_ID,
                   help="20-digit platform ID (default %(default)s)")
    p.add_argument("--domain", help="SIP domain / realm (default: first 10 digits of the server ID)")
    p.add_argument("--password", default=DEFAULT_PASSWORD, help="password (default %(default)s)")
    p.add_argument("--registrar-password", help="embedded registrar's password (default: --password)")
    p.add_argument("--transport", choices=("udp", "tcp"), help="default: from --server, else udp")
    p.add_argument("--expires", type=int, default=3600, help="requested lifetime, s (default %(default)s)")
    p.add_argument("--hold", type=float, default=0, help="stay registered this many seconds")
    p.add_argument("--timeout", type=float, default=10,
                   help="give up when not registered after this many seconds (default %(default)s)")
    p.add_argument("--gb-version", help="send X-GB-Ver (2.0 = 2016, 3.0 = 2022)")
    p.add_argument("--no-capability", action="store_true",
                   help='do not send Authorization: Capability, algorithm="H:MD5"')
    p.add_argument("--quiet", action="store_true", help="do not print the messages")
    p.set_defaults(func=lambda a: run(_register(a)))
