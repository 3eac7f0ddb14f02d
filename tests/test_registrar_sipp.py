"""A real peer: sipp registers thousands of devices with Digest to gbsip.

sipp (Debian ``sip-tester``) plays the devices with
``tests/data/sipp/register_digest.xml`` (GB/T 28181 §9.1.2.1: REGISTER, 401,
REGISTER with credentials, 200), one call per device, device IDs from an
injection file.  The gbsip Registrar runs on 127.0.0.1 with a free port in a
background thread with its own event loop; sipp runs as a child process
bounded by ``-timeout`` and is stopped by its pid if it overruns.
"""
from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import pytest

from gbsip.registrar import Registrar

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (Debian sip-tester) not on PATH"),
]

SERVER_ID = "34020000002000000001"
PASSWORD = "12345678"
SCENARIO = Path(__file__).parent / "data" / "sipp" / "register_digest.xml"
DEVICES = 3000
RATE = 500          # registrations started per second
SIPP_TIMEOUT = 25   # seconds; sipp's own global timeout

T = TypeVar("T")


@dataclass
class RunningRegistrar:
    """A Registrar served by a loop in another thread; call() runs code on that loop."""

    registrar: Registrar
    loop: asyncio.AbstractEventLoop
    port: int

    def call(self, fn: Callable[[Registrar], T]) -> T:
        async def on_loop() -> T:
            return fn(self.registrar)

        fut: Future[T] = asyncio.run_coroutine_threadsafe(on_loop(), self.loop)
        return fut.result(10)


@pytest.fixture
def gb_registrar() -> Iterator[RunningRegistrar]:
    """A gbsip Registrar on 127.0.0.1:<free port>, UDP and TCP, shared password."""
    loop = asyncio.new_event_loop()
    ready: Future[Registrar] = Future()
    stop = asyncio.Event()

    async def serve() -> None:
        try:
            reg = Registrar(SERVER_ID, host="127.0.0.1", port=0, transports=("udp", "tcp"),
                            passwords=PASSWORD, max_events=200_000)
            await reg.start()
        except BaseException as exc:
            ready.set_exception(exc)
            raise
        ready.set_result(reg)
        try:
            # consume events so the queue stays small; the test reads state
            async def drain() -> None:
                async for _ in reg.events():
                    pass
            drainer = asyncio.ensure_future(drain())
            await stop.wait()
        finally:
            await reg.close()
            await drainer

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    reg = ready.result(10)
    try:
        yield RunningRegistrar(reg, loop, reg.address[1])
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def free_port() -> int:
    """A port free on 127.0.0.1 for both UDP and TCP (sipp binds its -p on one of them)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return int(port)
    raise RuntimeError("no free port on 127.0.0.1")


def write_devices(path: Path, count: int) -> None:
    """sipp injection file: device ID; server ID; password."""
    lines = ["SEQUENTIAL"]
    lines += [f"340200000013{i:08d};{SERVER_ID};{PASSWORD};" for i in range(count)]
    path.write_text("\n".join(lines) + "\n")


@dataclass
class SippResult:
    returncode: int
    successful: int
    failed: int
    screen: str
    errors: str


def run_sipp(tmp: Path, port: int, transport: str, count: int) -> SippResult:
    devices = tmp / "devices.csv"
    write_devices(devices, count)
    screen, errors = tmp / "screen.log", tmp / "errors.log"
    cmd = [
        "sipp", "-sf", str(SCENARIO), "-inf", str(devices),
        "-t", transport, "-i", "127.0.0.1", "-p", str(free_port()),
        "-m", str(count), "-r", str(RATE), "-l", "1000",
        "-timeout", f"{SIPP_TIMEOUT}s", "-timeout_error", "-nostdin",
        "-trace_screen", "-screen_file", str(screen),
        "-trace_err", "-error_file", str(errors),
        f"127.0.0.1:{port}",
    ]
    proc = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, stderr = proc.communicate(timeout=SIPP_TIMEOUT + 10)
    except subprocess.TimeoutExpired:
        proc.kill()  # our own child, by its pid
        proc.communicate()
        raise AssertionError("sipp overran its own -timeout")
    text = screen.read_text(errors="replace") if screen.exists() else ""

    def cumulative(label: str) -> int:
        found = re.findall(rf"{label}\s*\|\s*\d+\s*\|\s*(\d+)", text)
        return int(found[-1]) if found else -1

    return SippResult(
        returncode=proc.returncode,
        successful=cumulative("Successful call"),
        failed=cumulative("Failed call"),
        screen=text[-3000:] + stderr.decode(errors="replace")[-1000:],
        errors=errors.read_text(errors="replace")[:3000] if errors.exists() else "",
    )


@pytest.mark.timing
@pytest.mark.parametrize("transport", ["u1", "t1"], ids=["udp", "tcp"])
def test_sipp_registers_thousands_of_devices(gb_registrar: RunningRegistrar, tmp_path: Path,
                                             transport: str) -> None:
    """GB/T 28181 §9.1.2.1 against a real UAC: 3000 Digest registrations, none failed, all bound."""
    result = run_sipp(tmp_path, gb_registrar.port, transport, DEVICES)
    detail = f"{result.screen}\n{result.errors}"
    assert result.returncode == 0, detail
    assert (result.successful, result.failed) == (DEVICES, 0), detail
    assert gb_registrar.call(len) == DEVICES
    stats: dict[str, Any] = gb_registrar.call(lambda reg: reg.stats())
    assert stats["registrations"] == DEVICES
    assert stats["auth_failures"] == 0 and stats["rejected"] == 0
    bindings = gb_registrar.call(lambda reg: reg.bindings)
    sample = bindings["34020000001300000042"]
    assert sample.user_agent == "sipp-gb28181"
    assert sample.transport == ("udp" if transport == "u1" else "tcp")
