"""The device conformance suite (gbsip.conformance.device) against gbsip's
own Device (passes every check), a sipp UAC scenario (fails only what the
scenario cannot do) and a device with the wrong password (fails at once).

The suite runs in a child pytest that starts the camera itself with
--gb-device-cmd once it listens, as a user would with a simulator.
"""
from __future__ import annotations

import shlex
import shutil
import sys
import time
from pathlib import Path

import pytest

from conformance_helpers import peer_prefix, run_suite
from device_helpers import free_port

DEVICE = "34020000001320000001"
ALL = {f"D{n:02d}" for n in range(1, 12)}
SIPP_SCENARIO = Path(__file__).parent / "data" / "sipp" / "uac_gb_session.xml"

# A gbsip Device as a stand-alone camera: argv = server, keepalive interval,
# password.  SIGTERM unregisters it (what --gb-unregister-cmd asks for).
DEVICE_SCRIPT = '''
import asyncio, signal, sys
from gbsip.device import Device

async def main() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    dev = Device("34020000001320000001", password=sys.argv[3], server=sys.argv[1],
                 keepalive_interval=float(sys.argv[2]), keepalive_timeout_count=3,
                 retry_interval=1, t1=0.1)
    try:
        await dev.start()
    except Exception as exc:
        print("device:", exc, file=sys.stderr)
        return
    await stop.wait()
    await dev.close()

asyncio.run(main())
'''

TIMING = ["--gb-keepalive-interval=0.3", "--gb-keepalive-timeout-count=3",
          "--gb-grant-expires=6", "--gb-timeout=3"]


def _device_cmd(tmp_path: Path, password: str = "12345678") -> str:
    script = tmp_path / "camera.py"
    script.write_text(DEVICE_SCRIPT)
    # exec: {pid} is then the camera itself, not a shell
    return (f"exec {shlex.quote(sys.executable)} {shlex.quote(str(script))} "
            f"udp://{{host}}:{{port}} 0.3 {shlex.quote(password)}")


def test_device_suite_passes_against_gbsip_device(tmp_path: Path) -> None:
    """gbsip's Device registers, answers MD5 challenges with and without qop,
    keeps alive on time, refreshes, re-registers after three lost keepalives
    and unregisters on SIGTERM: all 11 checks pass."""
    run = run_suite("device", [
        f"--gb-listen=udp://127.0.0.1:{free_port()}", f"--gb-device-cmd={_device_cmd(tmp_path)}",
        "--gb-unregister-cmd=kill -TERM {pid}", "--gb-register-timeout=10", *TIMING,
    ], tmp_path)
    assert run.results == {cid: "passed" for cid in ALL}, run.output
    assert "11 checks: 11 passed, 0 failed, 0 errors, 0 skipped" in run.output


def test_device_with_wrong_password_fails_registration(tmp_path: Path) -> None:
    """A camera answering with the wrong password never registers: D01 fails
    naming the bad response, and every check that needs a registration
    errors with that reason instead of passing."""
    run = run_suite("device", [
        f"--gb-listen=udp://127.0.0.1:{free_port()}",
        f"--gb-device-cmd={_device_cmd(tmp_path, password='wrong')}",
        "--gb-register-timeout=3", *TIMING,
    ], tmp_path)
    assert run.ids("failed") == {"D01"}, run.output
    assert run.ids("error") == ALL - {"D01"}, run.output
    assert "response is" in run.messages["D01"] and "--gb-password" in run.messages["D01"]


def test_device_command_that_fails_at_once_is_reported(tmp_path: Path) -> None:
    """A --gb-device-cmd that exits non-zero before registering fails D01 at
    once (not after --gb-register-timeout) with its exit status and the end
    of its stderr; the checks needing a registration error with the same."""
    started = time.monotonic()
    run = run_suite("device", [
        f"--gb-listen=udp://127.0.0.1:{free_port()}",
        "--gb-device-cmd=echo 'camera: cannot bind 0.0.0.0:5060' >&2; exit 3",
        "--gb-register-timeout=30", *TIMING,
    ], tmp_path)
    assert time.monotonic() - started < 25
    assert run.ids("failed") == {"D01"}, run.output
    assert "exited with status 3" in run.messages["D01"]
    assert "camera: cannot bind 0.0.0.0:5060" in run.messages["D01"]
    assert run.ids("error") == ALL - {"D01"}, run.output
    assert "exited with status 3" in run.output


def test_device_suite_without_listen_address_skips_with_the_reason(tmp_path: Path) -> None:
    """Without --gb-listen no check can run: all are skipped, saying why."""
    run = run_suite("device", [], tmp_path)
    assert run.ids("skipped") == ALL, run.output
    assert all("--gb-listen" in m for m in run.messages.values())


@pytest.mark.peer
def test_device_suite_against_sipp_scenario(tmp_path: Path) -> None:
    """sipp running tests/data/sipp/uac_gb_session.xml passes every check but
    D09: a scenario cannot count lost keepalives and register again (it
    unregisters instead, which D10 sees)."""
    if shutil.which("sipp") is None:
        pytest.skip("sipp is not installed")
    sipp = (f"cd {shlex.quote(str(tmp_path))} && exec {peer_prefix()}sipp "
            f"-sf {shlex.quote(str(SIPP_SCENARIO))} -i 127.0.0.1 -p {free_port()} -t u1 -m 1 "
            f"-nostdin -timeout 20s -timeout_error -s {DEVICE} -au {DEVICE} -ap 12345678 "
            "{host}:{port} >/dev/null 2>&1")
    run = run_suite("device", [f"--gb-listen=udp://127.0.0.1:{free_port()}",
                               f"--gb-device-cmd={sipp}", "--gb-register-timeout=10",
                               *TIMING], tmp_path)
    assert run.ids("failed") == {"D09"}, run.output
    assert run.ids("passed") == ALL - {"D09"}, run.output
    assert "went unanswered and no REGISTER followed" in run.messages["D09"]


def test_device_suite_passes_against_gbsip_simulate(tmp_path: Path) -> None:
    """`gbsip simulate` as the camera (one device): it passes every check,
    D10 included — the unregister command is a Ctrl-C (SIGINT), on which
    simulate unregisters its devices before it exits (issue 15)."""
    camera = (f"exec {shlex.quote(sys.executable)} -m gbsip simulate --server "
              "udp://{host}:{port} --devices 1 --duration 3600 --keepalive 0.3 "
              "--keepalive-count 3 --retry 1 --t1 0.1 --quiet")
    run = run_suite("device", [
        f"--gb-listen=udp://127.0.0.1:{free_port()}", f"--gb-device-cmd={camera}",
        "--gb-unregister-cmd=kill -INT {pid}", "--gb-register-timeout=10", *TIMING,
    ], tmp_path)
    assert run.results == {cid: "passed" for cid in ALL}, run.output
