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
import datetime as _dt
import json
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from gbsip import _cli_args as opt
from gbsip._console import EXIT_BROKEN_PIPE, Clock, Output, fit
from gbsip._version import __version__

if TYPE_CHECKING:  # imported when a command runs, so that --help stays fast
    from gbsip.device import Device
    from gbsip.events import Registered
    from gbsip.simulator import Simulator, SimulatorReport, SimulatorStats

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

DEFAULT_SERVER_ID = "34020000002000000001"
DEFAULT_PASSWORD = "12345678"
#: The platform's zone a GB/T 28181 Date (no zone of its own) is read in:
#: Beijing, as :class:`gbsip.Device` reads it.
PLATFORM_UTC_OFFSET = _dt.timedelta(hours=8)
# Channels a device may have (camera.h GB_CAM_MAX_CHANNELS).
_MAX_CHANNELS = 1024
_FAULTS = ("drop_responses", "wrong_password", "skip_keepalives", "change_source_port")


def _err(cmd: str, msg: str) -> None:
    Output(sys.stderr).line(f"gbsip {cmd}: {msg}")


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


_CLOCK = Clock()


def _print_message(out: Output, direction: str, data: bytes, who: str) -> None:
    """One SIP message as the seed shows them: a heading, then the text."""
    arrow = "device → platform" if direction == "send" else "platform → device"
    text = data.decode("utf-8", "replace").replace("\r\n", "\n").rstrip("\n")
    out.line(f"\n#### {_CLOCK.hms(time.time())} {arrow} ({who})\n```\n{text}\n```")


class _Signals:
    """Ctrl-C (and SIGTERM) for a command with a graceful stop: the first
    one calls ``stop`` and says so, the second one quits at once."""

    def __init__(self, loop: asyncio.AbstractEventLoop, err: Output, cmd: str) -> None:
        self.loop = loop
        self.err = err
        self.cmd = cmd
        self.count = 0
        self.signal = 0
        self.stop: Callable[[], str] | None = None
        self.stopped = asyncio.Event()
        self.quit = asyncio.Event()
        self.installed: list[int] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._on_signal, sig)
                self.installed.append(sig)

    def _on_signal(self, sig: int) -> None:
        self.count += 1
        self.signal = self.signal or sig
        if self.count == 1 and self.stop is not None:
            self.stopped.set()
            what = self.stop()
            self.err.line(f"\ngbsip {self.cmd}: {what} (Ctrl-C again to quit at once)")
            return
        self.quit.set()

    @property
    def exit_status(self) -> int:
        return 128 + self.signal

    def close(self) -> None:
        for sig in self.installed:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self.loop.remove_signal_handler(sig)
        self.installed.clear()


# --------------------------------------------------------------------------
# simulate: what it prints


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _ms(v: float) -> str:
    """Latencies are whole milliseconds (the core's clock): 0 means < 1."""
    return "<1 ms" if v == 0 else f"{v:.0f} ms"


def _progress_line(s: SimulatorStats, width: int) -> str:
    """One progress line, fitted to ``width`` columns: the least useful
    parts go first when it is narrow.  "registered" counts devices
    registered now (it falls to 0 as they unregister at the end); "ever"
    those that registered at least once; rates are averaged over the last
    ``rates.window_s`` seconds."""
    st = s["by_state"]
    lat = s["latency_ms"]["register"]
    rates = s["rates"]
    parts: list[tuple[int, str]] = [
        (0, f"[{s['phase']} {s['elapsed']:.1f}s]"),
        (1, f"registered {s['registered']}/{s['devices']}"),
        (3, f"(ever {s['ever_registered']})"),
        (2, f"registering {st['registering']}"),
        (1, f"failed {st['failed']}"),
    ]
    if s["phase"] == "unregister":
        parts.append((1, f"unregistered {st['unregistered']}"))
    parts += [
        (2, f"{rates['registrations_per_s']:.0f} reg/s {rates['keepalives_per_s']:.0f} ka/s "
            f"({rates['window_s']:g} s avg)"),
        (4, f"REGISTER p50 {_ms(lat['p50'])} p99 {_ms(lat['p99'])}"),
        (5, f"RSS {_fmt_bytes(s['memory']['rss_bytes'])}"),
    ]
    return fit(parts, width)


def _preset(name: str) -> str:
    from gbsip.camera import PRESETS

    if name not in PRESETS:
        raise argparse.ArgumentTypeError(f"wants one of {', '.join(sorted(PRESETS))}")
    return name


def _plan(args: argparse.Namespace) -> str:
    """The run asked for, as the first line says it: each number with its
    unit and what it is."""
    start = f"starting {args.rate:g} a second" if args.rate else "starting all at once"
    ka = f"keepalive every {args.keepalive:g} s" if args.keepalive else "no keepalives"
    return f"{start}, for {args.duration:g} s, {ka}"


def _summary(r: SimulatorReport) -> str:
    from gbsip.report import ramp_text, registered_text, unregistered_text

    res = r["result"]
    lat = r["latency_ms"]
    msg = r["messages"]
    tot = r["totals"]
    rows: list[tuple[str, str]] = [
        ("server", f"{r['server']}  (devices {r['config']['first_device']}"
                   f" .. {r['config']['last_device']})"),
        ("devices", str(r["devices"]) if r["started"] == r["devices"]
         else f"{r['devices']}, {r['started']} started"),
    ]
    if r["stopped"]:
        rows.append(("stopped", f"early (Ctrl-C or stop()); {res['not_started']} never started"))
    rows.append(("registered", registered_text(r)))
    for why, n in res["not_registered"].items():
        rows.append(("  not registered", f"{n}  {why}"))
    if r["ramp"]["achieved_rate"] is not None:
        rows.append(("ramp", ramp_text(r)))
    rows += [
        ("registrations", f"{tot['registrations']} + {tot['refreshes']} refreshes, "
                          f"{tot['challenges']} challenges (unregistering REGISTERs' too), "
                          f"{tot['failures']} failures"),
        ("keepalives", f"{tot['keepalives_sent']} sent, {tot['keepalives_answered']} answered, "
                       f"{tot['keepalives_missed']} missed"),
    ]
    for name, key in (("REGISTER latency", "register"), ("refresh latency", "refresh"),
                      ("MESSAGE latency", "message")):
        h = lat[key]  # type: ignore[literal-required]
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
    cam = r["camera"]
    if cam["requests_received"]:
        queries = ", ".join(f"{k} {v}" for k, v in sorted(cam["queries"].items()))
        rows.append(("platform asked", f"{cam['requests_received']} requests"
                                       + (f" (queries: {queries})" if queries else "")
                                       + f", {cam['requests_refused']} refused"))
        rows.append(("answers", f"{cam['answers_sent']} sent ({cam['answers_retransmitted']} "
                                f"retransmitted), {cam['answers_failed']} failed; "
                                f"{cam['notifies_sent']} NOTIFYs"))
    if r["churn"]["offline"]:
        rows.append(("churn", f"{r['churn']['offline']} went offline, "
                              f"{r['churn']['returned']} came back"))
    if r["faults"]:
        rows.append(("faults", ", ".join(f"{k} {v}" for k, v in r["faults"].items())))
    rows.append(("unregistered", unregistered_text(r)))
    mem = r["memory"]
    rows.append(("time", f"{r['elapsed']} s from {r['started_at']}, CPU {r['cpu_seconds']} s "
                         f"({r['cpu_percent']} %)"))
    rows.append(("memory", f"RSS {_fmt_bytes(mem['rss_bytes'])}, "
                           f"+{_fmt_bytes(mem['rss_delta_bytes'])} "
                           f"({mem['bytes_per_device']:.0f} B per device; core state "
                           f"{mem['bytes_per_device_core']} B)"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _verdict(r: SimulatorReport) -> str | None:
    """None when every started device registered, else one line saying why not."""
    res = r["result"]
    n = r["started"] if r["stopped"] else r["devices"]
    if res["registered"] >= n and n > 0:
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


class _Files:
    """``--report``, ``--csv`` and ``--stats-json``: opened before the run
    (a path that cannot be written is an error before anything starts),
    written as it goes (stats) and at its end (report, CSV)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stats: Output | None = None
        self._stats_file: TextIO | None = None
        self._clock = Clock()
        for option, path in (("--report", args.report), ("--csv", args.csv)):
            if path:
                self._open(option, path)
        if args.stats_json:
            if args.stats_json == "-":
                self.stats = Output(sys.stdout)
            else:
                self._stats_file = self._open("--stats-json", args.stats_json, keep=True)
                self.stats = Output(self._stats_file)

    def _open(self, option: str, path: str, keep: bool = False) -> TextIO:
        try:
            f = open(path, "w", encoding="utf-8", newline="")
        except OSError as exc:
            raise opt.UsageError(option, f"cannot write {path}: {exc.strerror or exc}") from None
        if not keep:
            f.close()  # written at the end; opened now to fail early
        return f

    @property
    def wanted(self) -> bool:
        return bool(self.args.report or self.args.csv or self.args.stats_json)

    def stats_line(self, sim: Simulator, s: SimulatorStats) -> None:
        if self.stats is None:
            return
        from gbsip.report import stats_record

        points = sim.timeline()
        self.stats.line(json.dumps(stats_record(s, points[-1] if points else None,
                                                self._clock)))

    def finish(self, sim: Simulator, report: SimulatorReport) -> None:
        from gbsip.report import write_csv, write_html

        points = sim.timeline()
        if self.args.csv:
            write_csv(self.args.csv, points)
        if self.args.report:
            write_html(self.args.report, report, points)
        if self._stats_file is not None:
            self._stats_file.close()


# --------------------------------------------------------------------------
# simulate: the command


def _check_simulate(args: argparse.Namespace) -> dict[str, float]:
    """Checks across options; the faults.  Raises UsageError."""
    args.transport = opt.transport_of(args.server, args.transport)
    args.domain = opt.server_id_domain(args.server_id, args.domain)
    opt.check_serials(args.id_prefix, args.id_start, args.devices)
    if args.sockets and args.local_port and args.local_port + args.sockets - 1 > 65535:
        raise opt.UsageError("--local-port", f"{args.local_port} + {args.sockets} sockets "
                                              "runs past port 65535")
    if args.tcp_sources and args.transport != "tcp":
        raise opt.UsageError("--tcp-sources", "is for TCP devices: give tcp:// in --server "
                                              "(or --transport tcp)")
    if args.json and args.stats_json == "-":
        raise opt.UsageError("--stats-json", "- (stdout) would mix with --json: give a file")
    if args.trace is not None:
        serial = int(args.trace) - int(args.id_prefix) * 10 ** (20 - len(args.id_prefix)) \
            if args.trace.isdigit() else -1
        if not args.id_start <= serial < args.id_start + args.devices:
            raise opt.UsageError("--trace", f"{args.trace} is not one of the simulated devices "
                                            "(see --id-prefix, --id-start, --devices)")
    faults: dict[str, float] = {}
    for spec in args.fault or []:
        kind, _, frac = spec.partition("=")
        kind = kind.strip().replace("-", "_")
        try:
            value = opt.fraction(frac)
        except argparse.ArgumentTypeError:
            value = -1.0
        if kind not in _FAULTS or not 0 <= value <= 1:
            raise opt.UsageError("--fault", f"wants KIND=FRACTION with KIND one of "
                                            f"{', '.join(_FAULTS)} and FRACTION from 0 to 1, "
                                            f"not {spec!r}")
        faults[kind] = faults.get(kind, 0.0) + value
    if sum(faults.values()) > 1 + 1e-9:
        raise opt.UsageError("--fault", "the fractions add up to more than 1 (a device has "
                                        "at most one fault)")
    if args.keepalive is None:
        args.keepalive = min(60.0, args.duration / 4)
    if args.churn and args.churn_offline + 1 >= args.duration:
        raise opt.UsageError("--churn-offline", f"{args.churn_offline:g} s offline does not "
                                                f"fit in --duration {args.duration:g} s")
    return faults


async def _simulate(args: argparse.Namespace) -> int:
    from gbsip.errors import RegistrarError, SimulatorError
    from gbsip.simulator import Simulator

    prog = "gbsip simulate"
    try:
        faults = _check_simulate(args)
        files = _Files(args)
    except opt.UsageError as exc:
        return opt.fail(prog, exc)
    err = Output(sys.stderr)
    out = Output(sys.stdout)  # the summary, or the JSON report
    tty = err.isatty()
    screen_interval = args.interval or (1.0 if tty else 5.0)
    registrar_password = args.registrar_password or args.password
    loop = asyncio.get_running_loop()
    signals = _Signals(loop, err, "simulate")
    sim: Simulator | None = None

    def reader_gone() -> None:
        if sim is not None:
            sim.stop()  # nobody reads: end the run, still unregistering

    out.on_closed = reader_gone
    next_screen = 0.0

    def progress(s: SimulatorStats) -> None:
        nonlocal next_screen
        assert sim is not None
        files.stats_line(sim, s)
        now = time.monotonic()
        if args.quiet or s["phase"] == "done" or now < next_screen:
            return
        next_screen = now + screen_interval - 0.01
        if tty:
            err.write(f"\r\x1b[2K{_progress_line(s, err.width() - 1)}")
        else:
            err.line(_progress_line(s, 200))

    def end_progress_line() -> None:
        if tty and not args.quiet:
            err.write("\r\x1b[2K")

    trace_out = err if args.json else out
    report: SimulatorReport | None = None
    failure: str | None = None
    try:
        async with _platform(args, args.transport, registrar_password) as server:
            sim = Simulator(
                args.devices,
                server=server,
                server_id=args.server_id,
                domain=args.domain,
                password=args.password,
                id_prefix=args.id_prefix,
                id_start=args.id_start,
                transport=args.transport,
                rate=args.rate or None,
                duration=args.duration,
                expires=args.expires,
                keepalive_interval=args.keepalive,
                keepalive_timeout_count=args.keepalive_count,
                retry_interval=args.retry,
                t1=args.t1,
                churn=args.churn,
                churn_offline=args.churn_offline,
                churn_mode=args.churn_mode,
                faults=faults,
                sockets=args.sockets,
                local_host=args.local_host,
                local_hosts=args.tcp_sources,
                local_port=args.local_port,
                capability_header=not args.no_capability,
                gb_version=args.gb_version,
                unregister=not args.no_unregister,
                no_answer_timeout=args.no_answer_timeout,
                trace=args.trace,
                on_trace=lambda d, data: _print_message(trace_out, d, data, args.trace),
                timeline=1.0 if files.wanted else None,
                raise_fd_limit=args.raise_fd_limit,
                profile=args.profile,
                channels=args.channels,
                nvr_fraction=args.nvr_fraction,
                nvr_channels=args.nvr_channels,
                answer_max_message=args.answer_max_message,
                answer_gap=args.answer_gap,
                answer_window=args.answer_window,
                seed=args.seed,
            )
            running = sim

            def stop() -> str:
                end_progress_line()
                running.stop()
                return (f"stopping: no more devices start; the {running.stats()['started']} "
                        "started unregister")

            signals.stop = stop
            if signals.count:  # Ctrl-C while the embedded registrar started
                _err("simulate", "interrupted")
                return signals.exit_status
            if not args.quiet:
                where = server if args.server else f"{server} (embedded gbsip registrar)"
                err.line(f"gbsip {__version__}: {args.devices} devices → {where}, "
                         f"{_plan(args)}")
            try:
                async with sim:
                    run = asyncio.ensure_future(sim.run(
                        progress=progress,
                        interval=min(1.0, screen_interval) if files.stats else screen_interval))
                    quit_ = asyncio.ensure_future(signals.quit.wait())
                    await asyncio.wait({run, quit_}, return_when=asyncio.FIRST_COMPLETED)
                    quit_.cancel()
                    if not run.done():  # the second Ctrl-C: no unregistration, no summary
                        run.cancel()
                        with contextlib.suppress(asyncio.CancelledError, SimulatorError):
                            await run
                        end_progress_line()
                        _err("simulate", "interrupted")
                        return signals.exit_status
                    report = run.result()
            except SimulatorError as exc:
                failure = str(exc)
                report = sim.report()
    except (SimulatorError, RegistrarError) as exc:
        failure = str(exc)
    except OSError as exc:
        failure = f"{exc.strerror or exc}"
    finally:
        signals.close()
    end_progress_line()
    if report is not None and sim is not None:
        files.finish(sim, report)
    if failure is not None:
        if args.json:
            out.line(json.dumps(report if report is not None else
                                {"gbsip": __version__, "ok": False, "error": failure},
                                indent=2))
        _err("simulate", failure)
        return EXIT_BROKEN_PIPE if out.closed else EXIT_FAILED
    assert report is not None
    if args.json:
        out.line(json.dumps(report, indent=2))
    else:
        out.line()
        out.line(_summary(report))
    if out.closed:
        return EXIT_BROKEN_PIPE
    if signals.count:
        return signals.exit_status
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
                    "registered; Ctrl-C stops the run (the devices unregister, the summary "
                    "is printed, exit status 130), a second Ctrl-C quits at once.",
    )
    p.add_argument("--server", type=opt.server_url,
                   help="platform address udp://HOST:PORT or tcp://HOST:PORT "
                        "(default: an embedded registrar on 127.0.0.1)")
    p.add_argument("--server-id", default=DEFAULT_SERVER_ID,
                   help="20-digit platform ID (default %(default)s)")
    p.add_argument("--domain", help="SIP domain / realm (default: first 10 digits of the server ID)")
    p.add_argument("--password", default=DEFAULT_PASSWORD,
                   help="devices' password (default %(default)s)")
    p.add_argument("--registrar-password",
                   help="embedded registrar's password (default: --password)")
    p.add_argument("--devices", type=opt.whole(1), default=1000,
                   help="how many devices (default %(default)s)")
    p.add_argument("--id-prefix", type=opt.id_prefix, default="340200000013200",
                   help="device IDs: this prefix + serial, 20 digits; at least centre code, "
                        "industry and type (default %(default)s)")
    p.add_argument("--id-start", type=opt.whole(0), default=1,
                   help="first serial (default %(default)s)")
    p.add_argument("--rate", type=opt.number(0, " (0: all at once)"), default=1000,
                   help="devices started per second, 0: all at once (default %(default)s)")
    p.add_argument("--duration", type=opt.seconds(), default=10,
                   help="seconds from the first REGISTER to unregistration (default %(default)s)")
    p.add_argument("--expires", type=opt.whole(10, note=" seconds (0 would unregister)"),
                   default=3600, help="requested lifetime, s (default %(default)s)")
    p.add_argument("--keepalive", type=opt.seconds(at_least=0, note=" (0: none)"), default=None,
                   help="keepalive interval, s, 0: none (default 60, or a quarter of "
                        "--duration when shorter)")
    p.add_argument("--keepalive-count", type=opt.whole(1), default=3,
                   help="unanswered keepalives before re-registering (default %(default)s)")
    p.add_argument("--retry", type=opt.seconds(), default=60,
                   help="seconds before retrying a failure (default %(default)s)")
    p.add_argument("--t1", type=opt.seconds(), default=0.5,
                   help="RFC 3261 T1, s (default %(default)s)")
    p.add_argument("--transport", choices=("udp", "tcp"),
                   help="udp or tcp (default: from --server, else udp)")
    p.add_argument("--sockets", type=opt.whole(0, note=" (0: one per device)"), default=8,
                   help="UDP sockets shared by the devices, 0: one per device (default %(default)s)")
    p.add_argument("--local-host", type=opt.ip_address,
                   help="local address to bind (default: loopback, or any)")
    p.add_argument("--tcp-sources", type=opt.ip_addresses, metavar="A[,A...]",
                   help="TCP: the addresses the devices connect from, in turn (default: "
                        "against a loopback server, one 127.0.0.x per 4,000 devices from "
                        "127.0.0.1; give each of several simulate processes its own)")
    p.add_argument("--local-port", type=opt.port, default=0,
                   help="first local UDP port, 0: any (default %(default)s)")
    p.add_argument("--raise-fd-limit", action=argparse.BooleanOptionalAction, default=True,
                   help="raise the open-files soft limit to the hard limit when TCP devices "
                        "need more (default: on)")
    p.add_argument("--profile", type=_preset, default="generic",
                   help="what the devices answer a platform's queries as: DeviceInfo, "
                        "channel names...: generic, generic-nvr, hikvision-ipc, "
                        "hikvision-nvr, dahua-ipc, dahua-nvr (default %(default)s; "
                        "docs/device.md)")
    p.add_argument("--channels", type=opt.whole(0, _MAX_CHANNELS), default=None,
                   help="channels per device in Catalog answers, 0 to 1024 (default: the "
                        "profile's)")
    p.add_argument("--nvr-fraction", type=opt.fraction, default=0.0,
                   help="this fraction of the devices are recorders (generic-nvr) instead")
    p.add_argument("--nvr-channels", type=opt.whole(1, _MAX_CHANNELS), default=None,
                   help="channels per recorder, 1 to 1024 (default 64)")
    p.add_argument("--answer-max-message", type=opt.whole(256, 65000), default=1400,
                   metavar="BYTES",
                   help="bytes of one answer MESSAGE before a Catalog or RecordInfo answer "
                        "is split into SumNum parts, 256 to 65000 (default %(default)s)")
    p.add_argument("--answer-gap", type=opt.seconds(at_least=0.0, at_most=60.0), default=0.0,
                   metavar="SECONDS",
                   help="seconds between the parts of one split answer, 0 to 60 (default 0)")
    p.add_argument("--answer-window", type=opt.whole(0, 1024), default=1, metavar="N",
                   help="parts of one answer in flight at once, 0 to 1024 (default 1: each "
                        "after the previous one's 200, as GB/T 28181-2022 Annex M; 0: all "
                        "at once)")
    p.add_argument("--churn", type=opt.fraction, default=0.0,
                   help="fraction of devices that go offline once and come back")
    p.add_argument("--churn-offline", type=opt.seconds(), default=5.0,
                   help="seconds offline (default %(default)s)")
    p.add_argument("--churn-mode", choices=("unregister", "silent"), default="unregister",
                   help="go offline by unregistering or by going silent")
    p.add_argument("--fault", action="append", metavar="KIND=FRACTION",
                   help=f"fault injection, repeatable; KIND: {', '.join(_FAULTS)}")
    p.add_argument("--gb-version", choices=("2.0", "3.0"),
                   help="send X-GB-Ver (2.0 = 2016, 3.0 = 2022)")
    p.add_argument("--no-capability", action="store_true",
                   help='do not send the seed\'s Authorization: Capability, algorithm="H:MD5"')
    p.add_argument("--no-unregister", action="store_true", help="leave the devices registered")
    p.add_argument("--no-answer-timeout", type=opt.seconds(), default=5.0,
                   help="give up when nothing answers for this long (default %(default)s s; "
                        "at once on an ICMP port unreachable)")
    p.add_argument("--trace", metavar="DEVICE_ID", type=opt.device_id,
                   help="print this device's SIP messages")
    p.add_argument("--interval", type=opt.seconds(), default=None,
                   help="progress every N s (default 1 on a terminal, 5 otherwise)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--json", action="store_true",
                   help="print the final report as JSON on stdout (also when the run fails)")
    p.add_argument("--report", metavar="FILE.html",
                   help="write an HTML report with charts over time (one file, no network)")
    p.add_argument("--csv", metavar="FILE",
                   help="write the time series (one row a second) as CSV")
    p.add_argument("--stats-json", metavar="FILE",
                   help="append live statistics as JSON lines, one a second (- for stdout)")
    p.add_argument("--seed", type=int, help="random seed (IDs of faults and churn, Call-IDs)")
    p.set_defaults(func=lambda a: run(_simulate(a)))


# --------------------------------------------------------------------------
# register


class _Stopped(Exception):
    """Ctrl-C during a step of ``gbsip register``."""


class _Unreachable(Exception):
    """An ICMP port unreachable answered the REGISTER."""


async def _step(aw: Awaitable[T], signals: _Signals, timeout: float | None = None,
                dev: Device | None = None) -> T:
    """``aw``, unless Ctrl-C comes first (:class:`_Stopped`), ``timeout``
    passes (``TimeoutError``) or ICMP says the port is closed
    (:class:`_Unreachable`, when ``dev`` is given)."""
    task = asyncio.ensure_future(aw)
    stop = asyncio.ensure_future(signals.stopped.wait())
    waits: set[asyncio.Future[Any]] = {task, stop}
    if dev is not None:
        waits.add(asyncio.ensure_future(_port_unreachable(dev)))
    try:
        done, _ = await asyncio.wait(waits, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits - {task}:
            w.cancel()
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    if stop in done:
        raise _Stopped
    if done:
        raise _Unreachable
    raise asyncio.TimeoutError


async def _port_unreachable(dev: Device) -> None:
    """Returns once ICMP errors came and half a second passed without an
    answer (a retransmission's worth of patience)."""
    while not dev.transport_errors:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)


def _platform_clock(registered: Registered) -> str:
    """The platform's clock from the 200 OK's Date header, as ISO 8601 with
    its UTC offset: a GB/T 28181 Date (§9.10) is the platform's local time
    without a zone, read as :data:`PLATFORM_UTC_OFFSET`, as the device does."""
    date, offset = registered.date, registered.clock_offset
    if date is None or offset is None:
        return ""
    how = "the 200 OK's Date header"
    if date.tzinfo is None:
        zone = _dt.timezone(PLATFORM_UTC_OFFSET)
        date = date.replace(tzinfo=zone)
        how += f", which has no zone: read as {zone.tzname(None)}"
    return (f", platform clock {date.isoformat(timespec='milliseconds')} ({how}; "
            f"{round(offset, 1) + 0.0:+.1f} s from ours)")


async def _register(args: argparse.Namespace) -> int:
    from gbsip.device import Device
    from gbsip.errors import RegistrarError

    prog = "gbsip register"
    try:
        transport = opt.transport_of(args.server, args.transport)
        args.domain = opt.server_id_domain(args.server_id, args.domain)
    except opt.UsageError as exc:
        return opt.fail(prog, exc)
    args.keepalive = None
    out = Output(sys.stdout)
    err = Output(sys.stderr)

    def trace(direction: str, data: bytes) -> None:
        if not args.quiet:
            _print_message(out, direction, data, args.device_id)

    signals = _Signals(asyncio.get_running_loop(), err, "register")
    try:
        async with _platform(args, transport, args.registrar_password or args.password) as server:
            dev = Device(args.device_id, password=args.password, server=server,
                         server_id=args.server_id, domain=args.domain, transport=transport,
                         expires=args.expires, keepalive_interval=None,
                         capability_header=not args.no_capability,
                         gb_version=args.gb_version, trace=trace,
                         platform_utc_offset=PLATFORM_UTC_OFFSET)
            out.line(f"gbsip {__version__}: device {args.device_id} → {server}"
                     + ("" if args.server else " (embedded gbsip registrar)"))
            signals.stop = lambda: "stopping: unregistering"
            rc = await _register_steps(args, dev, server, out, signals)
    except RegistrarError as exc:
        _err("register", str(exc))
        return EXIT_FAILED
    except OSError as exc:
        _err("register", f"{exc.strerror or exc}")
        return EXIT_FAILED
    finally:
        signals.close()
    return EXIT_BROKEN_PIPE if out.closed else rc


async def _register_steps(args: argparse.Namespace, dev: Device, server: str, out: Output,
                          signals: _Signals) -> int:
    """Register, keep alive once, hold, unregister; Ctrl-C skips to the
    unregistration, a second one quits."""
    from gbsip.errors import RegistrationError

    try:
        try:
            registered = await _step(dev.start(), signals, args.timeout, dev)
        except (asyncio.TimeoutError, _Unreachable):
            dev.abort()
            if dev.transport_errors:
                _err("register", f"no answer from {server}: port unreachable "
                                 "(is the platform running on that port?)")
            else:
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
        out.line(f"\nregistered: expires {registered.expires} s, latency "
                 f"{registered.latency * 1000:.0f} ms{_platform_clock(registered)}")
        ka = await _step(dev.send_keepalive(), signals)
        out.line(f"keepalive: {type(ka).__name__} (status {ka.status})")
        if args.hold > 0:
            await _step(asyncio.sleep(args.hold), signals)
    except _Stopped:
        pass
    close = asyncio.ensure_future(dev.close())
    quit_ = asyncio.ensure_future(signals.quit.wait())
    await asyncio.wait({close, quit_}, return_when=asyncio.FIRST_COMPLETED)
    quit_.cancel()
    if not close.done():
        close.cancel()
        dev.abort()
        _err("register", "interrupted")
        return signals.exit_status
    gone = close.result()
    if gone is not None:
        out.line(f"unregistered: {gone.status} {gone.reason}")
    return signals.exit_status if signals.count else EXIT_OK


def add_register(sub: Any, run: Any) -> None:
    p = sub.add_parser(
        "register",
        help="register one device against a platform, showing every message",
        description="Register one GB/T 28181 device, send a keepalive and unregister, "
                    "printing the SIP exchange.  Without --server an embedded gbsip "
                    "registrar on loopback is the platform.  Ctrl-C unregisters and stops.",
    )
    p.add_argument("--server", type=opt.server_url,
                   help="platform address udp://HOST:PORT or tcp://HOST:PORT "
                        "(default: an embedded registrar)")
    p.add_argument("--device-id", type=opt.device_id, default="34020000001320000001",
                   help="20-digit device ID (default %(default)s)")
    p.add_argument("--server-id", default=DEFAULT_SERVER_ID,
                   help="20-digit platform ID (default %(default)s)")
    p.add_argument("--domain", help="SIP domain / realm (default: first 10 digits of the server ID)")
    p.add_argument("--password", default=DEFAULT_PASSWORD, help="password (default %(default)s)")
    p.add_argument("--registrar-password", help="embedded registrar's password (default: --password)")
    p.add_argument("--transport", choices=("udp", "tcp"), help="default: from --server, else udp")
    p.add_argument("--expires", type=opt.whole(10, note=" seconds (0 would unregister)"),
                   default=3600, help="requested lifetime, s (default %(default)s)")
    p.add_argument("--hold", type=opt.seconds(at_least=0), default=0,
                   help="stay registered this many seconds")
    p.add_argument("--timeout", type=opt.seconds(), default=10,
                   help="give up when not registered after this many seconds (default "
                        "%(default)s; at once on an ICMP port unreachable)")
    p.add_argument("--gb-version", choices=("2.0", "3.0"),
                   help="send X-GB-Ver (2.0 = 2016, 3.0 = 2022)")
    p.add_argument("--no-capability", action="store_true",
                   help='do not send Authorization: Capability, algorithm="H:MD5"')
    p.add_argument("--quiet", action="store_true", help="do not print the messages")
    p.set_defaults(func=lambda a: run(_register(a)))
