"""Fixtures of the device suite: the platform gbsip plays, and the camera
process when ``--gb-device-cmd`` starts one."""
from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import IO

import pytest

from gbsip.conformance._common import GBOptions, Trace
from gbsip.conformance._platform_rig import PlatformRig
from gbsip.conformance.device._process import exit_report, wait_registered


@pytest.fixture(scope="session")
def device_trace() -> Trace:
    return Trace("gbsip platform", limit=600)


@pytest.fixture(scope="session")
def device_stderr() -> Iterator[IO[bytes]]:
    """Where the --gb-device-cmd process writes its stderr (shown when it
    exits before registering)."""
    with tempfile.TemporaryFile() as f:
        yield f


@pytest.fixture(scope="session")
def device_process(gb_options: GBOptions, rig: PlatformRig,
                   device_stderr: IO[bytes]) -> Iterator[subprocess.Popen[bytes] | None]:
    """The camera started by --gb-device-cmd (None when started by hand)."""
    if gb_options.device_cmd is None:
        yield None
        return
    host, port = rig.address[0], rig.address[1]
    cmd = gb_options.device_cmd.replace("{host}", host).replace("{port}", str(port))
    rig.trace.note(f"starting the device: {cmd}")
    proc = subprocess.Popen(cmd, shell=True, start_new_session=True,
                            stdin=subprocess.DEVNULL, stderr=device_stderr)
    try:
        yield proc
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    """SIGTERM the whole session we started (its leader may be a shell that
    already exited), SIGKILL what is left after ``grace`` seconds."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        proc.poll()  # reap the leader, or it counts as alive
        if not _group_alive(proc.pid):
            break
        time.sleep(0.05)
    else:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="session")
def rig(gb_options: GBOptions, device_trace: Trace) -> Iterator[PlatformRig]:
    """gbsip as the platform on --gb-listen, for the whole session."""
    if gb_options.listen is None:
        pytest.skip("no address to wait for the camera on: pass --gb-listen udp://HOST:PORT")
    try:
        platform = PlatformRig(gb_options, device_trace)
    except OSError as exc:
        pytest.fail(f"cannot listen on {gb_options.listen}: {exc}", pytrace=False)
    platform.start()
    try:
        yield platform
    finally:
        platform.stop()


@pytest.fixture(scope="session")
def registered(rig: PlatformRig, device_process: subprocess.Popen[bytes] | None,
               device_stderr: IO[bytes], gb_options: GBOptions) -> PlatformRig:
    """The camera registered once (else every check fails with this reason)."""
    if not wait_registered(rig, device_process,
                           rig.until(rig.started, gb_options.register_timeout)):
        seen = rig.of_kind("register")
        what = ("no REGISTER arrived" if not seen else
                f"{len(seen)} REGISTER(s) arrived but none was accepted")
        gone = exit_report(device_process, device_stderr)
        pytest.fail(f"the camera did not register at {gb_options.listen}: {what}"
                    + (f"; {gone}" if gone else
                       f" within {gb_options.register_timeout:g} s")
                    + f"\n\n{rig.trace.render()}", pytrace=False)
    return rig



def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The query checks (D12-D15, ``test_query_*``) need a camera that
    answers MANSCDP queries: they run only with ``--gb-queries``, and are
    deselected (not listed) otherwise."""
    if config.getoption("gb_queries", default=False):
        return
    keep = [i for i in items if not i.name.startswith("test_query_")]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep
