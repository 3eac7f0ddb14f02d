"""gbsip.Device against a Kamailio registrar on loopback (independent peer).

tests/data/kamailio/registrar.cfg: auth + registrar + usrloc in memory, one
fixed password checked with pv_auth_check, 403 for a wrong one, keepalive
MESSAGEs answered 200.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import gbsip
from gbsip.device import (
    Challenged,
    Device,
    Failed,
    DeviceState,
    KeepaliveAnswered,
    Refreshed,
    Registered,
    Unregistered,
)

from device_helpers import free_port, run  # noqa: F401  (fixture)

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(shutil.which("kamailio") is None, reason="kamailio is not installed"),
]

CFG = Path(__file__).parent / "data" / "kamailio" / "registrar.cfg"
DEVICE = "34020000001320000001"


def _probe(port: int) -> bool:
    """Kamailio answers an OPTIONS (405 from this config) once it is up."""
    probe = (f"OPTIONS sip:probe@127.0.0.1:{port} SIP/2.0\r\n"
             f"Via: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bKprobe\r\n"
             "From: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:probe@127.0.0.1>\r\n"
             "Call-ID: probe\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
             "Content-Length: 0\r\n\r\n").encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.2)
        s.sendto(probe, ("127.0.0.1", port))
        try:
            return s.recv(4096).startswith(b"SIP/2.0 ")
        except OSError:
            return False


@pytest.fixture(scope="module")
def kamailio() -> Iterator[int]:
    """A Kamailio registrar on 127.0.0.1 (UDP and TCP on one free port)."""
    port = free_port()
    rundir = tempfile.TemporaryDirectory()
    log = open(f"{rundir.name}/kamailio.log", "wb")
    proc = subprocess.Popen(
        ["kamailio", "-f", str(CFG), "-l", f"udp:127.0.0.1:{port}",
         "-l", f"tcp:127.0.0.1:{port}", "-E", "-DD", "-n", "2",
         "-Y", rundir.name, "-P", f"{rundir.name}/kamailio.pid", "-m", "32", "-M", "4"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
        start_new_session=True)  # its own process group: children are ours
    try:
        deadline = time.monotonic() + 10
        while not _probe(port):
            if proc.poll() is not None:
                log.flush()
                tail = Path(f"{rundir.name}/kamailio.log").read_bytes()[-2000:]
                raise RuntimeError(f"kamailio exited: {tail!r}")
            if time.monotonic() > deadline:
                raise RuntimeError("kamailio did not answer")
        yield port
    finally:
        proc.terminate()  # the main process we started; it stops its children
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        # Children that outlive the main process (they leave SIGTERM to it)
        # are still in the group we created, whose id is the pid we started.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        log.close()
        rundir.cleanup()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_registers_refreshes_keeps_alive_and_unregisters(run, kamailio: int,  # noqa: F811
                                                         transport: str) -> None:
    """GB/T 28181 §9.1 / §9.6.1 against Kamailio: Digest registration (the
    capability hint tolerated), a refresh before the 2 s lifetime runs out,
    keepalives answered, unregistration confirmed; over TCP everything on
    one connection (2022 §9.1.1 f)."""

    async def scenario() -> Device:
        dev = Device(DEVICE, password="12345678", server=f"{transport}://127.0.0.1:{kamailio}",
                     expires=2, keepalive_interval=0.2, t1=0.05)
        async with dev:
            assert dev.state is DeviceState.REGISTERED
            assert dev.expires_at is not None
            await dev.wait_for(Refreshed, timeout=5)
            outcome = await dev.send_keepalive()
            assert isinstance(outcome, KeepaliveAnswered) and outcome.status == 200
        return dev

    dev = run(scenario())
    history = list(dev.history)
    assert history[0] == Challenged(401, False, device_id=DEVICE)
    assert isinstance(history[1], Registered) and history[1].expires == 2
    assert any(isinstance(e, Refreshed) for e in history)
    assert any(isinstance(e, KeepaliveAnswered) for e in history)
    assert history[-1] == Unregistered(200, "OK", device_id=DEVICE)
    stats = dev.stats()
    assert stats["failures"] == 0 and stats["strays"] == 0
    if transport == "tcp":
        assert stats["retransmissions"] == 0


def test_wrong_password_raises_registration_error_403(run, kamailio: int) -> None:  # noqa: F811
    """GB/T 28181 §9.1: a wrong password is refused with 403 (no second
    challenge); entering the device raises RegistrationError."""

    async def scenario() -> None:
        async with Device(DEVICE, password="wrong", server=f"udp://127.0.0.1:{kamailio}",
                          keepalive_interval=None, t1=0.05):
            raise AssertionError("registered with a wrong password")

    with pytest.raises(gbsip.errors.RegistrationError) as info:
        run(scenario())
    assert info.value.status == 403
    assert info.value.reason == "Forbidden"


def test_refused_refresh_fails_then_retry_registers(run, kamailio: int) -> None:  # noqa: F811
    """Fault injection (wrong password) at refresh time: Kamailio answers
    403, the device reports Failed and retries after retry_interval; with
    the password restored the retry registers again."""

    async def scenario() -> tuple[Failed, Registered]:
        async with Device(DEVICE, password="12345678", server=f"udp://127.0.0.1:{kamailio}",
                          expires=2, keepalive_interval=None, t1=0.05,
                          retry_interval=0.3) as dev:
            dev.set_password("wrong")
            failed = await dev.wait_for(Failed, timeout=5)
            assert dev.state is DeviceState.FAILED
            dev.set_password(None)
            again = await dev.wait_for(Registered, timeout=5)
        assert isinstance(failed, Failed) and isinstance(again, Registered)
        return failed, again

    failed, again = run(scenario())
    assert (failed.status, failed.reason) == (403, "Forbidden")
    assert 0.2 <= failed.retry_in <= 0.4
    assert again.expires == 2
