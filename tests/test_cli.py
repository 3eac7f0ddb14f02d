"""The gbsip command line: subcommands, exit statuses, the JSON report.

Each test runs ``python -m gbsip`` in a subprocess, as a person would, on
both event loops (GBSIP_LOOP).  Peers are on loopback; runs last seconds.
"""
from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
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
    assert table["registered"].startswith("100 at the end")


def test_simulate_wrong_password_fails_with_advice(loop_name: str) -> None:
    """All devices refused (403): non-zero exit and a message naming the
    option to check, not a traceback."""
    p = gbsip("simulate", "--devices", "50", "--duration", "1", "--registrar-password",
              "other", "--quiet", loop=loop_name)
    assert p.returncode == 1
    assert "all devices refused (403): check --password" in p.stderr
    assert "Traceback" not in p.stderr


def test_simulate_unreachable_server() -> None:
    """Nothing listening: 'no answer from udp://…' after --no-answer-timeout."""
    port = free_port()
    p = gbsip("simulate", "--server", f"udp://127.0.0.1:{port}", "--devices", "10",
              "--duration", "5", "--no-answer-timeout", "1", "--quiet")
    assert p.returncode == 1
    assert f"no answer from udp://127.0.0.1:{port}" in p.stderr
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
    assert "--fault wants KIND=FRACTION" in p.stderr


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


def test_register_wrong_password() -> None:
    p = gbsip("register", "--registrar-password", "other", "--quiet")
    assert p.returncode == 1
    assert "refused: 403" in p.stderr and "check --password" in p.stderr


def test_register_no_answer() -> None:
    port = free_port()
    p = gbsip("register", "--server", f"udp://127.0.0.1:{port}", "--timeout", "1", "--quiet")
    assert p.returncode == 1
    assert f"no answer from udp://127.0.0.1:{port} in 1 s" in p.stderr


def test_serve_for_a_duration() -> None:
    """`gbsip serve --duration` listens, then stops by itself with exit 0."""
    p = gbsip("serve", "--port", "0", "--duration", "0.5")
    assert p.returncode == 0, p.stderr
    assert "registrar 34020000002000000001 realm 3402000000 on udp://127.0.0.1:" in p.stdout
    assert "stopped: 0 bindings" in p.stdout


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


def test_no_command_prints_help() -> None:
    p = gbsip()
    assert p.returncode == 2
    assert "simulate" in p.stdout and "register" in p.stdout and "serve" in p.stdout
