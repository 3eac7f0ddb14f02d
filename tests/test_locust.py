"""Distributed device simulation on Locust (issue 8): ``gbsip.locust``.

A Locust master and two workers, headless on loopback, run
``examples/locustfile.py`` against a gbsip Registrar started by the test;
every process is started here, bounded in time and stopped by its pid.
"""
from __future__ import annotations

import asyncio
import csv
import os
import signal
import sys
from pathlib import Path
from typing import Any

import importlib.util

import pytest

# Locust runs in child processes only: importing it here would gevent-patch
# this whole pytest session (sockets, threads, subprocess waits).
if importlib.util.find_spec("locust") is None:
    pytest.skip("locust is not installed", allow_module_level=True)

from gbsip.events import DeviceRegistered, DeviceUnregistered  # noqa: E402
from gbsip.registrar import Registrar  # noqa: E402

from device_helpers import free_port  # noqa: E402

LOCUSTFILE = Path(__file__).resolve().parent.parent / "examples" / "locustfile.py"
SERVER_ID = "34020000002000000001"
PREFIX = "34020000001320"
USERS = 4
PER_USER = 250
USERS_PER_WORKER = 10
RUN_TIME = 10

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("GBSIP_SANITIZED_RUN")),
    reason="gevent's stack switching under ASan; the unsanitized pass runs it")


def child_env() -> dict[str, str]:
    """Locust processes run without the sanitizer preloads of an ASan pass."""
    env = dict(os.environ)
    for name in ("LD_PRELOAD", "ASAN_OPTIONS", "PYTHONMALLOC", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        env.pop(name, None)
    return env


async def locust(*args: str, cwd: Path, log: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), *args,
        cwd=cwd, env=child_env(), stdin=asyncio.subprocess.DEVNULL,
        stdout=log.open("wb"), stderr=asyncio.subprocess.STDOUT)


async def finish(proc: asyncio.subprocess.Process, timeout: float) -> int | None:
    """The exit status, or None after killing it (by pid) when it overran."""
    try:
        return await asyncio.wait_for(proc.wait(), timeout)
    except asyncio.TimeoutError:
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
        return None


def stats_rows(prefix: Path) -> dict[str, dict[str, str]]:
    with open(f"{prefix}_stats.csv", newline="") as f:
        return {row["Type"]: row for row in csv.DictReader(f) if row["Type"]}


async def run_fleet(tmp: Path) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """Master + two workers against a Registrar; what the registrar saw and
    the master's final CSV statistics."""
    reg = Registrar(SERVER_ID, port=free_port(), transports=("udp",), passwords="12345678",
                    keepalive_interval=2, keepalive_events=False)
    seen: dict[str, Any] = {"registered": [], "sources": {}, "unregistered": set()}

    async def watch() -> None:
        async for ev in reg.events():
            if isinstance(ev, DeviceRegistered):
                seen["registered"].append(ev.device_id)
                seen["sources"].setdefault(ev.device_id, set()).add(ev.source)
            elif isinstance(ev, DeviceUnregistered):
                seen["unregistered"].add(ev.device_id)

    master_port = free_port()
    procs: list[asyncio.subprocess.Process] = []
    async with reg:
        watcher = asyncio.ensure_future(watch())
        try:
            procs.append(await locust(
                "--master", "--master-bind-host", "127.0.0.1",
                "--master-bind-port", str(master_port),
                "--headless", "--expect-workers", "2", "-u", str(USERS), "-r", str(USERS),
                "-t", f"{RUN_TIME}s", "--csv", str(tmp / "fleet"), "--only-summary",
                "--gb-server", f"udp://127.0.0.1:{reg.address[1]}",
                "--gb-server-id", SERVER_ID, "--gb-id-prefix", PREFIX,
                "--gb-devices-per-user", str(PER_USER),
                "--gb-users-per-worker", str(USERS_PER_WORKER),
                "--gb-keepalive", "2", "--gb-rate", "500", "--gb-drain-timeout", "30",
                cwd=tmp, log=tmp / "master.log"))
            for k in range(2):
                procs.append(await locust(
                    "--worker", "--master-host", "127.0.0.1", "--master-port", str(master_port),
                    cwd=tmp, log=tmp / f"worker{k}.log"))
            status = await finish(procs[0], RUN_TIME + 60)
            worker_status = [await finish(p, 20) for p in procs[1:]]
        finally:
            for p in procs:
                if p.returncode is None:
                    os.kill(p.pid, signal.SIGKILL)
                    await p.wait()
            watcher.cancel()
    logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                     for p in sorted(tmp.glob("*.log")))
    assert status == 0, f"master exited {status}\n{logs}"
    assert worker_status == [0, 0], f"workers exited {worker_status}\n{logs}"
    return seen, stats_rows(tmp / "fleet")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any],
                                                            dict[str, dict[str, str]]]:
    return asyncio.run(run_fleet(tmp_path_factory.mktemp("locust")))


def worker_of(device_id: str) -> int:
    """Which worker's ID range a device is in (docs/distributed.md)."""
    serial = int(device_id[len(PREFIX):])
    return (serial - 1) // (USERS_PER_WORKER * PER_USER)


@pytest.mark.slow
def test_master_stats_count_every_registration_of_both_workers(fleet: Any) -> None:
    """The master's aggregated REGISTER count is the sum of both workers'
    blocks: every simulated device, registered once, none failed
    (GB/T 28181-2016 §9.1.2.1: REGISTER with Digest, two round trips)."""
    seen, rows = fleet
    by_worker: dict[int, int] = {}
    for device_id in set(seen["registered"]):
        by_worker[worker_of(device_id)] = by_worker.get(worker_of(device_id), 0) + 1
    assert by_worker == {0: USERS // 2 * PER_USER, 1: USERS // 2 * PER_USER}
    assert int(rows["REGISTER"]["Request Count"]) == sum(by_worker.values()) == USERS * PER_USER
    assert int(rows["REGISTER"]["Failure Count"]) == 0


@pytest.mark.slow
def test_workers_never_collide_on_device_ids(fleet: Any) -> None:
    """Each user's block of IDs is disjoint from every other user's, on
    every worker: the registrar holds one binding per simulated device, each
    registered from one source only."""
    seen, _rows = fleet
    assert len(set(seen["registered"])) == USERS * PER_USER
    assert len(seen["registered"]) == USERS * PER_USER
    assert all(len(sources) == 1 for sources in seen["sources"].values())
    assert all(d.startswith(PREFIX) and len(d) == 20 for d in seen["registered"])


@pytest.mark.slow
def test_keepalives_reach_locust_stats(fleet: Any) -> None:
    """Keepalive MESSAGEs (GB/T 28181-2016 §9.6.1), every 2 s over the run,
    are reported as KEEPALIVE requests with no failures."""
    _seen, rows = fleet
    # at least three rounds per device in a 10 s run with a 2 s interval
    assert int(rows["KEEPALIVE"]["Request Count"]) >= 3 * USERS * PER_USER
    assert int(rows["KEEPALIVE"]["Failure Count"]) == 0


@pytest.mark.slow
def test_users_unregister_their_devices_before_the_final_stats(fleet: Any) -> None:
    """When the run ends each block unregisters (REGISTER with Expires: 0,
    RFC 3261 §10.2.2); the master waits for the workers, so its final
    statistics count every UNREGISTER."""
    seen, rows = fleet
    assert seen["unregistered"] == set(seen["registered"])
    assert int(rows["UNREGISTER"]["Request Count"]) == USERS * PER_USER
    assert int(rows["UNREGISTER"]["Failure Count"]) == 0


async def run_local(tmp: Path, password: str) -> tuple[int | None, str]:
    """One Locust process (no master) on asyncio's own loop, against a
    Registrar whose password differs from the devices' when asked to."""
    reg = Registrar(SERVER_ID, port=free_port(), transports=("udp",), passwords="12345678",
                    keepalive_events=False)
    async with reg:
        env = dict(child_env(), GBSIP_LOOP="asyncio")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
            "-u", "2", "-r", "2", "-t", "3s", "--csv", str(tmp / "local"), "--only-summary",
            "--gb-server", f"udp://127.0.0.1:{reg.address[1]}", "--gb-password", password,
            "--gb-devices-per-user", "50", "--gb-keepalive", "0",
            cwd=tmp, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=(tmp / "local.log").open("wb"), stderr=asyncio.subprocess.STDOUT)
        status = await finish(proc, 60)
    return status, (tmp / "local.log").read_text(errors="replace")


@pytest.mark.slow
def test_refused_registrations_are_locust_failures_with_the_status(tmp_path: Path) -> None:
    """A platform refusing the credentials (RFC 3261 §22.4; GB/T 28181-2016
    §9.1.2.1) makes every REGISTER a Locust failure whose error names the
    status and reason phrase, and Locust's exit status says so."""
    status, log = asyncio.run(run_local(tmp_path, password="not-the-password"))
    assert status == 1, log
    rows = stats_rows(tmp_path / "local")
    assert int(rows["REGISTER"]["Request Count"]) == 100, log
    assert int(rows["REGISTER"]["Failure Count"]) == 100, log
    with open(tmp_path / "local_failures.csv", newline="") as f:
        failures = list(csv.DictReader(f))
    assert [(r["Method"], r["Error"], r["Occurrences"]) for r in failures] == \
        [("REGISTER", "rejected: 403 Forbidden", "100")], log
