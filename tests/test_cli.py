"""The gbsip command line: subcommands, exit statuses, the JSON report.

Each test runs ``python -m gbsip`` in a subprocess, as a person would, on
both event loops (GBSIP_LOOP).  Peers are on loopback; runs last seconds.
"""
from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import struct
import sys
import tempfile
import termios
import time
from datetime import datetime, timezone
from collections.abc import Iterator
from typing import Any

import pytest

import gbsip as gbsip_pkg

from gbsip.events import DeviceRegistered, DeviceUnregistered
from gbsip.registrar import Registrar

from device_helpers import free_port

LOOPS = ["asyncio", "uvloop"]


@pytest.fixture(params=LOOPS)
def loop_name(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "uvloop":
        pytest.importorskip("uvloop")
    yield request.param


# Children import the gbsip this test imported (the installed package in CI),
# never a source tree that happens to be the working directory.
_GBSIP_HOME = os.path.dirname(os.path.dirname(os.path.abspath(gbsip_pkg.__file__)))
_CHILD = dict(cwd=tempfile.gettempdir(), stdin=subprocess.DEVNULL)


def _env(**extra: str) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=_GBSIP_HOME, **extra)


def gbsip(*args: str, loop: str = "asyncio", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gbsip", *args], capture_output=True,
                          text=True, timeout=timeout, env=_env(GBSIP_LOOP=loop), **_CHILD)


def _schema(report: dict[str, Any]) -> None:
    """The documented report fields (docs/simulate.md), with their types."""
    top = {"gbsip": str, "server": str, "transport": str, "devices": int, "started": int,
           "stopped": bool, "ok": bool,
           "config": dict, "result": dict, "ramp": dict, "totals": dict, "failures": dict,
           "latency_ms": dict, "messages": dict, "churn": dict, "faults": dict,
           "unregistration": dict, "final_states": dict, "elapsed": float,
           "cpu_seconds": float, "cpu_percent": float, "memory": dict}
    for key, kind in top.items():
        assert isinstance(report[key], kind), key
    assert set(report["result"]) == {"registered", "ever_registered", "not_started",
                                     "not_registered", "examples"}
    for name in ("register", "refresh", "message"):
        assert set(report["latency_ms"][name]) == {"count", "mean", "p50", "p95", "p99",
                                                   "p999", "max"}
    for key in ("registrations", "refreshes", "challenges", "failures", "timeouts",
                "keepalives_sent", "keepalives_answered", "keepalives_missed"):
        assert isinstance(report["totals"][key], int), key
    for key in ("sent", "received", "retransmitted", "strays"):
        assert isinstance(report["messages"][key], int), key
    assert set(report["failures"]) == {"by_reason", "by_status"}
    assert set(report["ramp"]) >= {"target_rate", "achieved_rate", "peak_rate", "seconds"}
    assert set(report["memory"]) >= {"rss_bytes", "rss_delta_bytes", "bytes_per_device"}
    assert set(report["final_states"]) == {"idle", "registering", "registered", "refreshing",
                                           "failed", "unregistering", "unregistered"}


def test_simulate_json_report(loop_name: str) -> None:
    """`gbsip simulate` against its embedded registrar: every device
    registers, exit status 0, and --json prints the report on stdout."""
    p = gbsip("simulate", "--devices", "200", "--duration", "3", "--json", loop=loop_name)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    _schema(report)
    assert report["ok"] and report["devices"] == 200
    assert report["result"]["registered"] == 200
    assert report["totals"]["keepalives_answered"] > 0  # keepalive defaults to duration / 4
    assert report["unregistration"]["unregistered"] == 200
    assert report["config"]["first_device"] == "34020000001320000001"


def test_simulate_summary_and_progress_lines() -> None:
    """Without --json: plain progress lines on stderr (not a terminal) and
    a summary table on stdout."""
    p = gbsip("simulate", "--devices", "100", "--duration", "1.5", "--interval", "0.5")
    assert p.returncode == 0, p.stderr
    progress = [line for line in p.stderr.splitlines() if line.startswith("[")]
    assert len(progress) >= 2 and "\r" not in p.stderr
    assert "registered 100/100" in p.stderr
    table = dict(line.split(None, 1) for line in p.stdout.strip().splitlines()
                 if line and not line.startswith(" "))
    assert table["devices"].strip() == "100"
    assert table["registered"].startswith("100 when the hold ended, 100 at least once")


def test_progress_and_summary_say_what_their_numbers_mean() -> None:
    """Issue 15: no "[done] registered 0/100" line before the summary;
    progress says registered now and ever, and over which window its rates
    are averaged; the peak rate is never below the achieved one."""
    p = gbsip("simulate", "--devices", "600", "--rate", "300", "--duration", "3",
              "--interval", "0.5", "--keepalive", "1")
    assert p.returncode == 0, p.stderr
    progress = [line for line in p.stderr.splitlines() if line.startswith("[")]
    assert progress and not any(line.startswith("[done") for line in progress)
    assert all("(ever " in line and "(5 s avg)" in line for line in progress), progress
    ramp = next(line for line in p.stdout.splitlines() if line.startswith("ramp"))
    m = re.search(r"(\d+)/s achieved .* peak (\d+)/s over 1 s", ramp)
    assert m is not None and int(m.group(2)) >= int(m.group(1)), ramp


def _table(out: str) -> dict[str, str]:
    return dict(line.split(None, 1) for line in out.strip().splitlines()
                if line and not line.startswith(" "))


def test_summary_says_how_many_registered_when_some_failed() -> None:
    """Devices refused by a fault: the ramp row counts those that
    registered out of those started, never "all registered"."""
    p = gbsip("simulate", "--devices", "100", "--duration", "1.5",
              "--fault", "wrong_password=0.2", "--seed", "1")
    assert p.returncode == 1, p.stderr
    ramp = _table(p.stdout)["ramp"]
    assert "80 of 100 started devices registered in" in ramp, ramp
    assert "all" not in ramp.replace("all at once", ""), ramp


def test_summary_says_which_unregistrations_the_platform_confirmed() -> None:
    """Devices refused by a fault have nothing to unregister: the
    unregistered row says how many of its devices the platform confirmed
    and why the others were not."""
    p = gbsip("simulate", "--devices", "50", "--duration", "1.5",
              "--fault", "wrong_password=0.2", "--seed", "1")
    assert p.returncode == 1, p.stderr
    row = _table(p.stdout)["unregistered"]
    assert row == "50: 40 confirmed by the platform, 10 not registered (nothing to unregister)", row


def test_summary_gives_no_peak_rate_for_a_ramp_shorter_than_a_second() -> None:
    """A peak over a 1 s window means nothing for a ramp that took 0.05 s:
    the summary says there is none instead of repeating the average."""
    p = gbsip("simulate", "--devices", "50", "--rate", "0", "--duration", "1")
    assert p.returncode == 0, p.stderr
    ramp = _table(p.stdout)["ramp"]
    assert "no peak rate (the ramp took under 1 s)" in ramp and "over 1 s" not in ramp, ramp
    assert "(target all at once)" in ramp and "all 50 registered in" in ramp, ramp


def test_first_line_says_how_the_devices_start() -> None:
    """The first line gives each number with what it is: the start rate
    (or all at once, never "all at once/s"), the run time, the keepalive
    interval."""
    p = gbsip("simulate", "--devices", "20", "--rate", "0", "--duration", "1", "--keepalive",
              "0.5")
    assert p.returncode == 0, p.stderr
    first = p.stderr.splitlines()[0]
    assert first.endswith(", starting all at once, for 1 s, keepalive every 0.5 s"), first
    p = gbsip("simulate", "--devices", "20", "--rate", "200", "--duration", "1", "--keepalive",
              "0")
    first = p.stderr.splitlines()[0]
    assert first.endswith(", starting 200 a second, for 1 s, no keepalives"), first


def test_simulate_wrong_password_fails_with_advice(loop_name: str) -> None:
    """All devices refused (403): non-zero exit and a message naming the
    option to check, not a traceback."""
    p = gbsip("simulate", "--devices", "50", "--duration", "1", "--registrar-password",
              "other", "--quiet", loop=loop_name)
    assert p.returncode == 1
    assert "all devices refused (403): check --password" in p.stderr
    assert "Traceback" not in p.stderr


def test_simulate_unanswering_server() -> None:
    """A platform that reads and never answers: 'no answer from udp://… in
    1 s' after --no-answer-timeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        p = gbsip("simulate", "--server", f"udp://127.0.0.1:{port}", "--devices", "10",
                  "--duration", "5", "--no-answer-timeout", "1", "--quiet")
    assert p.returncode == 1
    assert f"no answer from udp://127.0.0.1:{port} in 1 s" in p.stderr
    assert "Traceback" not in p.stderr


def test_simulate_tcp_refused() -> None:
    """TCP with nothing listening: the connection error, named."""
    port = free_port()
    p = gbsip("simulate", "--server", f"tcp://127.0.0.1:{port}", "--devices", "5",
              "--duration", "1", "--quiet")
    assert p.returncode == 1
    assert f"cannot connect to tcp://127.0.0.1:{port}" in p.stderr


def test_simulate_local_port_in_use() -> None:
    """--local-port already taken: a message saying so and what to do."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        p = gbsip("simulate", "--devices", "4", "--sockets", "1", "--local-port", str(port),
                  "--duration", "1", "--quiet")
    assert p.returncode == 1
    assert "in use" in p.stderr and "another local port" in p.stderr


def test_simulate_tcp(loop_name: str) -> None:
    """--transport tcp against the embedded registrar: one connection each."""
    p = gbsip("simulate", "--transport", "tcp", "--devices", "50", "--duration", "1",
              "--json", loop=loop_name)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["transport"] == "tcp" and report["ok"]


def test_simulate_trace_prints_one_device() -> None:
    """--trace ID prints that device's messages like the seed: REGISTER,
    401 with the challenge, REGISTER with Digest credentials, 200."""
    device = "34020000001320000003"
    p = gbsip("simulate", "--devices", "5", "--duration", "0.5", "--trace", device, "--quiet")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert out.index("REGISTER sip:") < out.index("SIP/2.0 401 Unauthorized") \
        < out.index('Authorization: Digest username="' + device + '"') \
        < out.index("SIP/2.0 200 OK")
    assert "34020000001320000004" not in out.split("\nserver")[0]


def test_simulate_bad_fault_is_a_usage_error() -> None:
    p = gbsip("simulate", "--fault", "explode=0.5", "--devices", "1")
    assert p.returncode == 2
    assert "--fault: wants KIND=FRACTION" in p.stderr


@pytest.mark.parametrize("option, value, wants", [
    ("--channels", "5000", "a whole number from 0 to 1024"),
    ("--nvr-channels", "2000", "a whole number from 1 to 1024"),
    ("--answer-max-message", "100", "a whole number from 256 to 65000"),
    ("--answer-gap", "-1", "a number of seconds from 0 to 60"),
    ("--answer-window", "x", "a whole number from 0 to 1024"),
])
def test_simulate_out_of_range_camera_option_is_a_usage_error(option: str, value: str,
                                                              wants: str) -> None:
    """A channel count above the core's 1024, or an answer split option
    out of range: exit status 2 with one line naming the option and its
    range, no traceback, before anything runs."""
    p = gbsip("simulate", option, value, "--devices", "1")
    assert p.returncode == 2, p.stderr
    assert f"{option}: wants {wants}" in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_simulate_answer_split_options_reach_the_devices(loop_name: str) -> None:
    """--answer-max-message, --answer-gap and --answer-window are the
    Simulator's answer_* options (docs/simulate.md): accepted, and the run
    goes as usual."""
    p = gbsip("simulate", "--devices", "3", "--duration", "1", "--quiet",
              "--answer-max-message", "300", "--answer-gap", "0.05", "--answer-window", "1",
              loop=loop_name)
    assert p.returncode == 0, p.stderr
    help_text = gbsip("simulate", "--help").stdout
    for option in ("--answer-max-message", "--answer-gap", "--answer-window"):
        assert option in help_text


def test_simulate_faults_make_exit_status_nonzero() -> None:
    """Exit status 0 only if every device registered: wrong-password faults
    leave some unregistered, and the message counts them."""
    p = gbsip("simulate", "--devices", "100", "--duration", "1", "--fault",
              "wrong_password=0.1", "--quiet")
    assert p.returncode == 1
    assert "10 of 100 devices are not registered (10 rejected 403)" in p.stderr


def test_register_against_a_registrar_shows_the_exchange(loop_name: str) -> None:
    """`gbsip register --server` against a registrar started here: the
    exchange is printed, the registrar sees the device register and
    unregister, exit status 0."""

    async def scenario() -> tuple[int, str, list[Any]]:
        async with Registrar("34020000002000000001", port=0, transports=("udp",),
                             passwords="12345678") as reg:
            host, port = reg.address
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gbsip", "register", "--server", f"udp://{host}:{port}",
                "--device-id", "34020000001320000042",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env=_env(GBSIP_LOOP=loop_name), **_CHILD)
            out, err = await asyncio.wait_for(proc.communicate(), 30)
            events = []
            while True:
                try:
                    events.append(await reg.wait_for((DeviceRegistered, DeviceUnregistered), timeout=0.2))
                except asyncio.TimeoutError:
                    break
            assert proc.returncode is not None
            return proc.returncode, out.decode() + err.decode(), events

    rc, out, events = asyncio.run(scenario())
    assert rc == 0, out
    for line in ("REGISTER sip:34020000002000000001@3402000000 SIP/2.0",
                 "SIP/2.0 401 Unauthorized", "SIP/2.0 200 OK", "Expires: 0",
                 "registered: expires 3600 s", "unregistered: 200"):
        assert line in out
    assert [type(e).__name__ for e in events] == ["DeviceRegistered", "DeviceUnregistered"]
    assert all(e.device_id == "34020000001320000042" for e in events)


def test_register_prints_the_platforms_clock_as_iso_8601() -> None:
    """The 200 OK's Date is shown as the platform's clock in ISO 8601 with
    its zone (a GB/T 28181 Date has none: read as UTC+08:00, and it says
    so), beside its offset from ours."""
    p = gbsip("register", "--quiet")
    assert p.returncode == 0, p.stderr
    m = re.search(r"platform clock (\S+) \(the 200 OK's Date header, which has no zone: "
                  r"read as UTC\+08:00; ([+-]\d+\.\d) s from ours\)", p.stdout)
    assert m is not None, p.stdout
    clock = datetime.fromisoformat(m.group(1))
    assert clock.utcoffset() is not None and clock.utcoffset().total_seconds() == 8 * 3600
    assert abs((clock - datetime.now(timezone.utc)).total_seconds()) < 60
    assert abs(float(m.group(2))) < 2


def test_simulate_tcp_devices_connect_from_the_sources_given() -> None:
    """--tcp-sources: the TCP devices connect from those addresses in turn,
    so several simulate processes against one server port each have their
    own ephemeral ports (docs/simulate.md)."""

    async def scenario() -> tuple[int, str, set[str]]:
        async with Registrar("34020000002000000001", port=0, transports=("tcp",),
                             passwords="12345678", keepalive_events=False) as reg:
            host, port = reg.addresses["tcp"]
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gbsip", "simulate", "--server", f"tcp://{host}:{port}",
                "--devices", "6", "--rate", "0", "--duration", "1", "--no-unregister",
                "--tcp-sources", "127.0.0.21,127.0.0.22,127.0.0.23", "--quiet",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env=_env(), **_CHILD)
            out, err = await asyncio.wait_for(proc.communicate(), 30)
            assert proc.returncode is not None
            sources = {b.source[0] for b in reg.bindings.values() if b.source}
            return proc.returncode, out.decode() + err.decode(), sources

    rc, out, sources = asyncio.run(scenario())
    assert rc == 0, out
    assert sources == {"127.0.0.21", "127.0.0.22", "127.0.0.23"}


def test_register_wrong_password() -> None:
    p = gbsip("register", "--registrar-password", "other", "--quiet")
    assert p.returncode == 1
    assert "refused: 403" in p.stderr and "check --password" in p.stderr


def test_register_no_answer() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        p = gbsip("register", "--server", f"udp://127.0.0.1:{port}", "--timeout", "1",
                  "--quiet")
    assert p.returncode == 1
    assert f"no answer from udp://127.0.0.1:{port} in 1 s" in p.stderr


def test_serve_for_a_duration() -> None:
    """`gbsip serve --duration` listens, then stops by itself with exit 0."""
    p = gbsip("serve", "--port", "0", "--duration", "0.5")
    assert p.returncode == 0, p.stderr
    assert "registrar 34020000002000000001 realm 3402000000 on udp://127.0.0.1:" in p.stdout
    assert "stopped: 0 bindings" in p.stdout


@pytest.mark.parametrize("sig,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
def test_serve_stopped_by_a_signal_exits_128_plus_it(sig: int, status: int) -> None:
    """Ctrl-C (SIGTERM) stops `gbsip serve` cleanly, with its last line of
    counters, and the exit status says a signal stopped it (130, 143), as
    `gbsip simulate`'s does."""
    proc = _start("serve", "--port", "0", "--no-store", stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert " registrar 34020000002000000001 " in proc.stdout.readline()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == status, err
    assert "stopped: 0 bindings" in out and "Traceback" not in err


def test_serve_port_in_use() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        p = gbsip("serve", "--port", str(port), "--transport", "udp", "--duration", "0.5")
    assert p.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in p.stderr


def test_serve_workers_share_one_port_and_all_devices_register() -> None:
    """`gbsip serve --workers 2`: two registrar processes on one port
    (SO_REUSEPORT); a simulation against it registers every device."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gbsip", "serve", "--port", str(port), "--transport", "udp",
         "--workers", "2", "--quiet", "--duration", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), **_CHILD)
    try:
        lines = [server.stdout.readline() for _ in range(2)] if server.stdout else []
        assert all(f"udp://127.0.0.1:{port}" in line for line in lines), lines
        p = gbsip("simulate", "--server", f"udp://127.0.0.1:{port}", "--devices", "300",
                  "--rate", "300", "--duration", "3", "--json", "--quiet")
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["result"]["ever_registered"] == 300
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.mark.parametrize("args,message", [
    (["simulat"], "gbsip: unknown command 'simulat' (did you mean 'simulate'?)"),
    (["regster"], "gbsip: unknown command 'regster' (did you mean 'register'?)"),
    (["conformance", "platfrm"],
     "gbsip conformance: unknown command 'platfrm' (did you mean 'platform'?)"),
    (["frobnicate"], "gbsip: unknown command 'frobnicate' (one of simulate, serve, register, "
                     "query, conformance)"),
], ids=["simulat", "regster", "conformance-platfrm", "frobnicate"])
def test_unknown_command_is_one_line_suggesting_the_nearest(args: list[str],
                                                            message: str) -> None:
    """A mistyped subcommand: one line naming it and the command meant (or
    the commands there are), no help page, exit status 2."""
    p = gbsip(*args)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), p.stderr


def test_no_command_prints_help() -> None:
    p = gbsip()
    assert p.returncode == 2
    assert "simulate" in p.stdout and "register" in p.stdout and "serve" in p.stdout


# --------------------------------------------------------------------------
# Issue 15: Ctrl-C, closed pipes, terminals, clocks, option checks, reports


def _start(*args: str, loop: str = "asyncio", **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "gbsip", *args], text=True,
                            env=_env(GBSIP_LOOP=loop), **_CHILD, **kw)


def on_a_terminal(*args: str, columns: int = 80, timeout: float = 60,
                  until: Any = None) -> tuple[int, str]:
    """Run gbsip with stdout and stderr on a pseudo-terminal ``columns``
    wide; everything it wrote (``until(proc)`` runs once it started)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "gbsip", *args], stdout=slave, stderr=slave,
                            env=_env(), cwd=tempfile.gettempdir(), stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks: list[bytes] = []
    if until is not None:
        until(proc, master, chunks)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child side is closed
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace")


def test_ctrl_c_stops_the_run_unregisters_and_prints_the_summary(loop_name: str) -> None:
    """First Ctrl-C: no more devices start, the started ones unregister (the
    platform keeps none), the summary says what happened, exit status 130."""

    async def scenario() -> tuple[int, str, str, int, int]:
        async with Registrar("34020000002000000001", port=0, transports=("udp",),
                             passwords="12345678", keepalive_events=False) as reg:
            host, port = reg.address
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gbsip", "simulate", "--server", f"udp://{host}:{port}",
                "--devices", "3000", "--rate", "500", "--duration", "60",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env=_env(GBSIP_LOOP=loop_name), **_CHILD)
            while len(reg) < 300:
                await asyncio.sleep(0.05)
            peak = len(reg)
            proc.send_signal(signal.SIGINT)
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode is not None
            return proc.returncode, out.decode(), err.decode(), peak, len(reg)

    rc, out, err, peak, left = asyncio.run(scenario())
    assert rc == 130, err
    assert "stopping: no more devices start" in err and "Traceback" not in err
    table = dict(line.split(None, 1) for line in out.strip().splitlines()
                 if line and not line.startswith(" "))
    started = int(table["devices"].split(", ")[1].split()[0])
    assert peak <= started < 3000
    assert table["stopped"].startswith("early")
    # stopped during the ramp: no hold happened, and the summary says so
    assert table["registered"].startswith(f"{started} when the run was stopped early,"), table
    assert int(table["unregistered"].split(":")[0]) == started
    assert left == 0


def test_second_ctrl_c_quits_at_once() -> None:
    """A second Ctrl-C while the devices unregister quits at once: exit
    status 130, "interrupted", no summary."""
    proc = _start("simulate", "--devices", "400", "--rate", "100", "--duration", "60",
                  "--interval", "0.2", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    while not proc.stderr.readline().startswith("[ramp"):  # the run is going
        assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    while "stopping:" not in proc.stderr.readline():
        assert proc.poll() is None
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert time.monotonic() - t0 < 3
    assert "interrupted" in err and "Traceback" not in err
    assert "unregistered" not in out


def test_register_ctrl_c_unregisters() -> None:
    """`gbsip register --hold`: Ctrl-C ends the hold and unregisters."""
    proc = _start("register", "--hold", "60", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.stdout.readline().startswith("keepalive:"):
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "unregistered: 200 OK" in out


NO_UVLOOP = 'raise ImportError("uvloop is not installed here")\n'


@pytest.mark.parametrize("command", [["serve", "--port", "0"],
                                     ["simulate", "--devices", "5", "--duration", "5",
                                      "--trace", "34020000001320000001", "--quiet"]],
                         ids=["serve", "simulate-trace"])
@pytest.mark.parametrize("uvloop", ["installed", "missing"])
def test_closed_pipe_ends_the_command_quietly(command: list[str], uvloop: str,
                                              tmp_path: Any) -> None:
    """`gbsip serve | head -0`, `gbsip simulate --trace ... | head`: the
    reader goes away; the command stops without a traceback (none chained
    to the uvloop probe either), exit status 141."""
    env = _env()
    if uvloop == "missing":
        (tmp_path / "uvloop.py").write_text(NO_UVLOOP)
        env["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{env['PYTHONPATH']}"
    r, w = os.pipe()
    os.close(r)  # the reader is gone before the first line
    try:
        done = subprocess.run([sys.executable, "-m", "gbsip", *command], stdout=w,
                              stderr=subprocess.PIPE, text=True, env=env, timeout=60, **_CHILD)
    finally:
        os.close(w)
    assert done.returncode == 141, done.stderr
    assert done.stderr == ""


def test_progress_line_fits_an_80_column_terminal() -> None:
    """On a terminal the progress line is redrawn in place and cut to the
    terminal's width, so no update leaves a wrapped line behind."""
    rc, text = on_a_terminal("simulate", "--devices", "300", "--duration", "2.5",
                             "--interval", "0.5", columns=80)
    assert rc == 0, text
    updates = [piece.replace("\x1b[2K", "") for piece in re.split(r"[\r\n]", text)]
    updates = [u for u in updates if u.startswith("[")]
    assert len(updates) >= 3, text
    assert all(len(u) <= 80 for u in updates), [u for u in updates if len(u) > 80]
    assert all("registered" in u for u in updates)


def test_closed_udp_port_fails_at_once_and_json_still_reports() -> None:
    """Nothing listens on the UDP port: the ICMP port unreachable ends the
    run at once (not after --no-answer-timeout), and --json still writes
    the report, saying why."""
    port = free_port()
    t0 = time.monotonic()
    p = gbsip("simulate", "--server", f"udp://127.0.0.1:{port}", "--devices", "10",
              "--no-answer-timeout", "20", "--json", "--quiet")
    assert time.monotonic() - t0 < 8
    assert p.returncode == 1
    assert "port unreachable" in p.stderr and "Traceback" not in p.stderr
    report = json.loads(p.stdout)
    assert report["ok"] is False and "port unreachable" in report["error"]
    assert report["messages"]["icmp_errors"] > 0
    assert report["result"]["registered"] == 0


def test_register_against_a_closed_udp_port_fails_at_once() -> None:
    port = free_port()
    t0 = time.monotonic()
    p = gbsip("register", "--server", f"udp://127.0.0.1:{port}", "--timeout", "20", "--quiet")
    assert time.monotonic() - t0 < 8
    assert p.returncode == 1
    assert f"no answer from udp://127.0.0.1:{port}: port unreachable" in p.stderr


BAD_OPTIONS = [
    (["simulate", "--duration", "-3"], "--duration: wants a number of seconds above 0, not -3"),
    (["simulate", "--rate", "-1"], "--rate: wants a number, at least 0 (0: all at once)"),
    (["simulate", "--retry", "-1"], "--retry: wants a number of seconds above 0, not -1"),
    (["simulate", "--server-id", "123"], "--server-id: '123' is not a 20-digit"),
    (["simulate", "--churn-offline", "-1"], "--churn-offline: wants"),
    (["simulate", "--no-answer-timeout", "0"], "--no-answer-timeout: wants"),
    (["simulate", "--interval", "0"], "--interval: wants"),
    (["simulate", "--id-start", "9999999999"], "--id-start: serials 9999999999"),
    (["simulate", "--id-prefix", "12"], "--id-prefix: wants the first 13 to 19 digits"),
    (["simulate", "--id-prefix", "990200000013200"], "province code"),
    (["simulate", "--id-prefix", "340200000020000"], "device type 200"),
    (["simulate", "--server", "udp://127.0.0.1:5060", "--transport", "tcp"],
     "--transport: tcp contradicts --server udp://127.0.0.1:5060"),
    (["simulate", "--expires", "0"], "--expires: wants a whole number, at least 10"),
    (["simulate", "--devices", "0"], "--devices: wants a whole number, at least 1"),
    (["simulate", "--churn", "2"], "--churn: wants a fraction from 0 to 1"),
    (["simulate", "--fault", "wrong_password=2"], "--fault: wants KIND=FRACTION"),
    (["simulate", "--local-port", "70000"], "--local-port: wants a whole number from 0 to 65535"),
    (["simulate", "--trace", "34020000001320099999"], "--trace: 34020000001320099999 is not one"),
    (["simulate", "--server", "garbage"], "--server: wants udp://HOST:PORT or tcp://HOST:PORT"),
    (["simulate", "--server", "udp://127.0.0.1:70000"],
     "--server: port 70000 out of range 1-65535 in 'udp://127.0.0.1:70000'"),
    (["register", "--server", "tcp://[::1]:0"], "--server: port 0 out of range 1-65535"),
    (["simulate", "--tcp-sources", "127.0.0.1,nowhere"], "--tcp-sources: wants an IP address"),
    (["simulate", "--tcp-sources", "127.0.0.2"], "--tcp-sources: is for TCP devices"),
    (["register", "--timeout", "0"], "--timeout: wants"),
    (["register", "--device-id", "123"], "--device-id: wants a 20-digit"),
    (["serve", "--min-expires", "600", "--max-expires", "60"], "--max-expires: 60 is below"),
    (["serve", "--port", "-1"], "--port: wants a whole number from 0 to 65535"),
    (["serve", "--keepalive", "0"], "--keepalive: wants"),
    (["serve", "--transport", "sctp"], "--transport: wants udp, tcp or udp,tcp"),
    (["serve", "--transport", "udp,udp"], "--transport: udp is given twice in 'udp,udp'"),
    (["query", "34020000001320000001", "catalog", "--transport", "tcp,udp,tcp"],
     "--transport: tcp is given twice"),
    (["serve", "--server-id", "123"], "platform's 20-digit ID, or --realm"),
    (["query", "34020000001320000001", "recordinfo", "--start", "yesterday", "--end",
      "2026-12-03T00:00:00"], "--start: wants a time like 2026-12-03T00:00:00, not 'yesterday'"),
    (["query", "34020000001320000001", "recordinfo", "--start", "2026-12-03T10:00:00",
      "--end", "2026-12-03T09:00:00"], "--end: 2026-12-03T09:00:00 is not after --start"),
    (["query", "34020000001320000001", "catalog", "--server-id", "123"],
     "so the SIP domain cannot be taken from it: give the platform's 20-digit ID"),
]


@pytest.mark.parametrize("args,message", BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_bad_option_is_one_line_naming_it(args: list[str], message: str) -> None:
    """Every option is checked before anything starts; the message is one
    line, names the option and says what it wants; exit status 2."""
    p = gbsip(*args)
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], p.stderr
    assert lines[0].startswith(f"gbsip {args[0]}: --")


def test_report_csv_and_stats_json(tmp_path: Any) -> None:
    """--report writes one self-contained HTML page with the charts over
    time (inline SVG, nothing fetched), --csv the time series, --stats-json
    a JSON line a second while the run goes."""
    html, csv_path, stats = (tmp_path / "run.html", tmp_path / "run.csv", tmp_path / "s.jsonl")
    p = gbsip("simulate", "--devices", "300", "--rate", "300", "--duration", "3",
              "--keepalive", "1", "--report", str(html), "--csv", str(csv_path),
              "--stats-json", str(stats), "--quiet")
    assert p.returncode == 0, p.stderr
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 5
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert set(re.findall(r"https?://[^\s\"'<]+", page)) <= {"http://www.w3.org/2000/svg"}
    for title in ("Devices", "Rates (per second)", "Failures (per second)",
                  "REGISTER latency", "Keepalive (MESSAGE) latency"):
        assert title in page
    from gbsip.simulator import TIMELINE_FIELDS

    rows = csv_path.read_text().splitlines()
    assert tuple(rows[0].split(",")) == TIMELINE_FIELDS
    points = [dict(zip(TIMELINE_FIELDS, r.split(","))) for r in rows[1:]]
    assert len(points) >= 4 and points[0]["elapsed"] == "0.0"
    assert max(int(pt["registered"]) for pt in points) == 300
    assert points[-1]["phase"] == "done"
    assert all(datetime.fromisoformat(pt["time"]).tzinfo is not None for pt in points)
    lines = [json.loads(line) for line in stats.read_text().splitlines()]
    assert len(lines) >= 3
    times = [datetime.fromisoformat(line["time"]) for line in lines]
    assert times == sorted(times)
    assert abs((times[-1] - datetime.now(timezone.utc)).total_seconds()) < 60
    assert {"phase", "registered", "rates", "latency_ms", "interval"} <= set(lines[-1])
    assert lines[-1]["phase"] == "done"


def test_stats_json_gives_every_time_as_iso_8601(tmp_path: Any) -> None:
    """--stats-json uses one clock, as `gbsip serve --json` and --csv do:
    the line's time and its interval's are ISO 8601 with the UTC offset;
    seconds since the start are the separate `elapsed` fields."""
    stats = tmp_path / "s.jsonl"
    p = gbsip("simulate", "--devices", "50", "--duration", "2", "--stats-json", str(stats),
              "--quiet")
    assert p.returncode == 0, p.stderr
    lines = [json.loads(line) for line in stats.read_text().splitlines()]
    intervals = [line["interval"] for line in lines if line["interval"] is not None]
    assert intervals, lines
    for line, interval in zip(lines, intervals):
        for when in (line["time"], interval["time"]):
            assert isinstance(when, str) and datetime.fromisoformat(when).tzinfo is not None
        assert isinstance(interval["elapsed"], float) and isinstance(line["elapsed"], float)


def _serve_until_registered(*args: str, device: str = "34020000001320000007") -> str:
    port = free_port()
    server = _start("serve", "--port", str(port), "--transport", "udp", "--duration", "5",
                    *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        p = gbsip("register", "--server", f"udp://127.0.0.1:{port}", "--device-id", device,
                  "--quiet")
        assert p.returncode == 0, p.stderr
        out, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0, err
    return first + out


def test_serve_json_lines_carry_iso_wall_clock_time() -> None:
    """`gbsip serve --json`: every line's time is wall-clock ISO 8601 with
    its UTC offset (the clock of Binding.expires_at), not the loop's
    monotonic seconds."""
    lines = [json.loads(line) for line in _serve_until_registered("--json").splitlines()]
    assert lines[0]["event"] == "Listening" and lines[-1]["event"] == "Stopped"
    events = {d["event"]: d for d in lines}
    for name in ("Listening", "DeviceRegistered", "Keepalive", "DeviceUnregistered", "Stopped"):
        when = datetime.fromisoformat(events[name]["time"])
        assert when.tzinfo is not None, events[name]
        assert abs((when - datetime.now(timezone.utc)).total_seconds()) < 60
    reg = events["DeviceRegistered"]
    assert reg["device_id"] == "34020000001320000007" and reg["expires"] == 3600
    assert reg["source"][0] == "127.0.0.1" and reg["transport"] == "udp"


def test_serve_text_lines_start_with_the_time() -> None:
    out = _serve_until_registered()
    events = [line for line in out.splitlines() if "34020000001320000007" in line]
    # serve queries each new device (--query-on-register): its answers are
    # QueryCompleted lines among the others.  `gbsip register` unregisters
    # at once, but finishes the answers it has in flight first, so none of
    # them is refused as coming from an unregistered device (no Rejected).
    kinds = [line.split()[1] for line in events]
    assert [k for k in kinds if k != "QueryCompleted"] == ["DeviceRegistered", "Keepalive",
                                                           "DeviceUnregistered"], kinds
    for line in events:
        assert re.match(r"\d\d:\d\d:\d\d\.\d{3} ", line), line


def test_serve_on_a_terminal_counts_what_it_cannot_show() -> None:
    """On a terminal, past --max-lines events a second one line a second
    counts the rest by kind (a pipe would get every event).  Stopped
    (SIGTERM) once the load is over, --duration 12 at the latest: its last
    line counts what the last second hid."""
    port = free_port()

    def load(proc: Any, _master: int, _chunks: list[bytes]) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            p = gbsip("register", "--server", f"udp://127.0.0.1:{port}", "--timeout", "1",
                      "--quiet")
            if p.returncode == 0:
                break
        p = gbsip("simulate", "--server", f"udp://127.0.0.1:{port}", "--devices", "400",
                  "--rate", "0", "--duration", "2", "--keepalive", "0.5", "--quiet")
        assert p.returncode == 0, p.stderr
        proc.send_signal(signal.SIGTERM)

    rc, text = on_a_terminal("serve", "--port", str(port), "--transport", "udp",
                             "--max-lines", "20", "--duration", "12", until=load)
    assert rc == 143, text  # stopped by the SIGTERM
    lines = text.splitlines()
    shown = [line for line in lines if re.match(r"\d\d:\d\d:\d\d\.\d{3} [A-Z]", line)]
    counted = [line for line in lines if "more events in the last second" in line]
    assert counted and "DeviceRegistered" in "".join(counted), text
    assert len(shown) <= 20 * 13, text
    total = sum(int(m) for line in counted for m in re.findall(r"… (\d+) more events", line))
    assert total + len(shown) >= 400 * 3  # registered, keepalives, unregistered


def test_serve_help_explains_every_option() -> None:
    text = " ".join(gbsip("serve", "--help").stdout.split())
    for option, words in (("--min-expires MIN_EXPIRES", "shortest registration lifetime"),
                          ("--max-expires MAX_EXPIRES", "longest registration lifetime"),
                          ("--nonce-lifetime NONCE_LIFETIME", "seconds a Digest nonce stays"),
                          ("--status-dir DIR", "keep one file per device")):
        assert f"{option} {words}" in text, option


def test_conformance_help_lists_each_suites_own_options() -> None:
    platform = gbsip("conformance", "platform", "--help").stdout
    device = gbsip("conformance", "device", "--help").stdout
    for only_device in ("--gb-listen", "--gb-device-cmd", "--gb-unregister-cmd",
                        "--gb-grant-expires", "--gb-register-timeout"):
        assert only_device in device and only_device not in platform
    for only_platform in ("--gb-platform", "--gb-offline-cmd", "--gb-nonce-lifetime",
                          "--gb-unknown-device-id", "--gb-any-device", "--gb-expires "):
        assert only_platform in platform and only_platform not in device
    for both in ("--gb-server-id", "--gb-password", "--gb-keepalive-interval"):
        assert both in platform and both in device


def test_conformance_run_prints_no_pytest_warnings() -> None:
    """No PytestAssertRewriteWarning (gbsip is imported before pytest starts)
    nor pytest-asyncio's loop-scope warning in a conformance run."""
    p = gbsip("conformance", "platform", "--gb-platform", f"udp://127.0.0.1:{free_port()}",
              "--gb-timeout", "1", "--", "-x")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "Warning" not in p.stdout + p.stderr, p.stdout + p.stderr
    assert "did not answer a REGISTER" in p.stdout


def test_serve_locks_out_a_password_guesser_as_configured() -> None:
    """`gbsip serve --lockout-failures 2`: the second wrong Digest answer for
    one device from one address locks the pair out (403, a LockedOut
    line); the device's later right answer from that address is refused
    too until --lockout-time passes (issue 12: Monibuca-style lockout)."""
    port = free_port()
    server = _start("serve", "--port", str(port), "--transport", "udp", "--duration", "6",
                    "--json", "--lockout-failures", "2", "--lockout-time", "60",
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    device = "34020000001320000009"
    try:
        assert server.stdout is not None
        server.stdout.readline()
        codes = []
        for password in ("guess1", "guess2", "12345678"):
            p = gbsip("register", "--server", f"udp://127.0.0.1:{port}", "--device-id", device,
                      "--password", password, "--timeout", "3")
            codes.append(p.returncode)
        out, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    locked = [e for e in events if e["event"] == "LockedOut"]
    assert len(locked) == 1 and locked[0]["device_id"] == device, events
    assert locked[0]["scope"] == "device"
    assert not any(e["event"] == "DeviceRegistered" for e in events)
    assert all(code != 0 for code in codes), codes


def test_serve_security_options_are_checked() -> None:
    """A bad lockout or keepalive-policy value is one line naming the option."""
    p = gbsip("serve", "--lockout-failures", "-1")
    assert p.returncode == 2 and "--lockout-failures" in p.stderr
    p = gbsip("serve", "--keepalive-policy", "ignore")
    assert p.returncode == 2 and "--keepalive-policy" in p.stderr
