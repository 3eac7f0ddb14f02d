"""gbsip.Device against sipp UAS scenarios on loopback (an independent peer).

Scenarios live in tests/data/sipp/.  sipp verifies the Digest answer itself
(``verifyauth``) and exits 0 only when every step matched.
"""
from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

import gbsip
from gbsip.device import Challenged, Device, Registered, Unregistered

from device_helpers import free_port, run  # noqa: F401  (fixture)

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed"),
]

SCENARIOS = Path(__file__).parent / "data" / "sipp"
DEVICE = "34020000001320000001"


class Sipp:
    def __init__(self, scenario: str, transport: str) -> None:
        self.port = free_port()
        self.dir = tempfile.TemporaryDirectory()
        self.proc = subprocess.Popen(
            ["sipp", "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1",
             "-p", str(self.port), "-t", "u1" if transport == "udp" else "t1",
             "-m", "1", "-nostdin", "-timeout", "20s", "-timeout_error",
             "-trace_err"],
            cwd=self.dir.name, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_listening(transport)

    def _wait_listening(self, transport: str) -> None:
        deadline = time.monotonic() + 10
        proto = "udp" if transport == "udp" else "tcp"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sipp exited: {self.proc.stderr.read()!r}")  # type: ignore[union-attr]
            out = subprocess.run(["ss", "-lnH", f"--{proto}", f"sport = :{self.port}"],
                                 capture_output=True, text=True).stdout
            if str(self.port) in out:
                return
            time.sleep(0.05)
        raise RuntimeError("sipp did not start listening")

    def result(self) -> tuple[int, str]:
        """sipp's exit status (0: every call succeeded) and its error log."""
        try:
            rc = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.stop()
            rc = -1
        logs = "".join(p.read_text() for p in Path(self.dir.name).glob("*_errors.log"))
        return rc, logs

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # by the pid we started
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        self.dir.cleanup()


@pytest.fixture
def sipp_uas() -> Iterator[type[Sipp]]:
    started: list[Sipp] = []

    class _Started(Sipp):
        def __init__(self, scenario: str, transport: str) -> None:
            super().__init__(scenario, transport)
            started.append(self)

    yield _Started
    for s in started:
        s.stop()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_registers_through_401_then_200(run, sipp_uas, transport: str) -> None:  # noqa: F811
    """GB/T 28181 §9.1.2.1 against sipp: REGISTER, 401, Digest answer (checked
    by sipp's verifyauth, 403 otherwise), 200 with a GB Date, then the
    unregistration is accepted."""
    uas = sipp_uas("uas_401_200.xml", transport)

    async def scenario() -> list[object]:
        dev = Device(DEVICE, password="12345678", server=f"{transport}://127.0.0.1:{uas.port}",
                     keepalive_interval=None, t1=0.05)
        async with dev:
            assert dev.state is gbsip.device.DeviceState.REGISTERED
            assert dev.clock_offset is not None
        return list(dev.history)

    history = run(scenario())
    assert history[0] == Challenged(401, False, device_id=DEVICE)
    registered = history[1]
    assert isinstance(registered, Registered)
    assert registered.expires == 3600
    assert registered.date == datetime(2013, 6, 26, 16, 8, 37, 164000)
    assert history[-1] == Unregistered(200, "OK", device_id=DEVICE)
    rc, log = uas.result()
    assert rc == 0, log


def test_retransmits_while_platform_is_silent(run, sipp_uas) -> None:  # noqa: F811
    """RFC 3261 §17.1.2.2 observed on the wire: sipp leaves the REGISTER
    unanswered for 1 s; the device resends the same bytes after T1, 2T1,
    4T1, then every T2 (T1 = 50 ms, T2 = 400 ms here)."""
    uas = sipp_uas("uas_slow_200.xml", "udp")
    sends: list[tuple[float, bytes]] = []

    async def scenario() -> Registered:
        loop = asyncio.get_running_loop()

        def trace(direction: str, data: bytes) -> None:
            if direction == "send" and data.startswith(b"REGISTER"):
                sends.append((loop.time(), data))

        async with Device(DEVICE, password="12345678", server=f"udp://127.0.0.1:{uas.port}",
                          keepalive_interval=None, t1=0.05, t2=0.4, trace=trace) as dev:
            registered = dev.history[-1]
        assert isinstance(registered, Registered)
        return registered

    registered = run(scenario())
    first = [t for t, data in sends if data == sends[0][1]]
    gaps = [b - a for a, b in zip(first, first[1:])]
    # 50, 100, 200, 400 ms (the platform answers at about 1000 ms)
    assert len(gaps) >= 4, gaps
    for gap, expected in zip(gaps, [0.05, 0.1, 0.2, 0.4, 0.4]):
        assert expected - 0.005 <= gap <= expected + 0.1, gaps
    assert registered.latency >= 0.95
    rc, log = uas.result()
    assert rc == 0, log
