"""Helpers for the conformance-suite tests: run a suite in a child pytest and
read its JUnit report; environments for children."""
from __future__ import annotations

import asyncio
import os
import threading
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import gbsip
from gbsip.conformance import SUITES, plugin_args
from gbsip.events import DeviceRegistered, Offline, Online
from gbsip.registrar import Registrar

#: the directory holding the gbsip package this test run imports
ROOT = Path(gbsip.__file__).resolve().parent.parent
SANITIZER_VARS = ("LD_PRELOAD", "ASAN_OPTIONS", "PYTHONMALLOC", "UBSAN_OPTIONS", "LSAN_OPTIONS")
#: Plugins a child pytest of these tests leaves out.  locust's could
#: gevent-patch the session.  hypothesis' costs seconds of CPU a child:
#: pytest rewrites the asserts of each module of an entry-point plugin's
#: distribution it imports, and under PYTHONDONTWRITEBYTECODE (run-tests
#: sets it) that is redone, uncached, for all of hypothesis in every child.
#: No child runs a hypothesis test.
CHILD_PYTEST_ARGS = ("-p", "no:cacheprovider", "-p", "no:locust", "-p", "no:hypothesispytest")


def python_env() -> dict[str, str]:
    """For Python children importing gbsip: the same gbsip, the same
    sanitizer runtime (an ASan-built extension needs it preloaded)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def peer_env() -> dict[str, str]:
    """For external peers (sipp, kamailio): no sanitizer preloads."""
    env = python_env()
    for name in SANITIZER_VARS:
        env.pop(name, None)
    return env


def peer_prefix() -> str:
    """Shell prefix that runs a peer without sanitizer preloads."""
    return "env " + " ".join(f"-u {name}" for name in SANITIZER_VARS) + " "


@dataclass
class SuiteRun:
    results: dict[str, str]       # check id -> passed / failed / error / skipped
    messages: dict[str, str]      # check id -> failure or skip message
    output: str
    returncode: int

    def ids(self, outcome: str) -> set[str]:
        return {k for k, v in self.results.items() if v == outcome}


def run_suite(suite: str, args: list[str], workdir: Path, timeout: float = 90) -> SuiteRun:
    """Run one conformance suite in a child pytest; results from --junitxml."""
    report = workdir / f"{suite}-report.xml"
    cmd = [sys.executable, "-m", "pytest", *CHILD_PYTEST_ARGS, *plugin_args(),
           "--pyargs", SUITES[suite], f"--junitxml={report}", "-q", *args]
    proc = subprocess.run(cmd, cwd=workdir, env=python_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)
    output = proc.stdout + proc.stderr
    assert report.exists(), f"no JUnit report; pytest said:\n{output}"
    results: dict[str, str] = {}
    messages: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        cid = props.get("gb_check") or case.get("name", "?")
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
                message = node.get("message", "")
        results[cid] = outcome
        messages[cid] = message
    return SuiteRun(results, messages, output, proc.returncode)


class ThreadedRegistrar:
    """A gbsip Registrar on its own loop in a thread; every Online/Offline
    event writes ``<statedir>/<device_id>`` so --gb-offline-cmd can read it."""

    def __init__(self, statedir: Path, *, subscribe: str | None = None,
                 **kwargs: object) -> None:
        self.statedir = statedir
        self.kwargs = kwargs
        self.subscribe = subscribe  # subscribe(refresh=True) to each new device
        self._subs: set[asyncio.Future[None]] = set()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.reg: Registrar | None = None
        self.port = 0

    async def _start(self) -> None:
        self.reg = Registrar("34020000002000000001", host="127.0.0.1", port=0, **self.kwargs)  # type: ignore[arg-type]
        await self.reg.start()
        self.port = self.reg.address[1]
        self._watch = asyncio.ensure_future(self._record())

    async def _record(self) -> None:
        assert self.reg is not None
        async for ev in self.reg.events():
            if isinstance(ev, DeviceRegistered) and self.subscribe and ev.device_id:
                task = asyncio.ensure_future(self._subscribe(ev.device_id))
                self._subs.add(task)
                task.add_done_callback(self._subs.discard)
            if isinstance(ev, (DeviceRegistered, Online, Offline)) and ev.device_id:
                state = "offline" if isinstance(ev, Offline) else "online"
                (self.statedir / ev.device_id).write_text(state)

    async def _subscribe(self, device_id: str) -> None:
        assert self.reg is not None and self.subscribe is not None
        try:
            await self.reg.subscribe(device_id, self.subscribe, expires=600, refresh=True)
        except gbsip.GBSIPError:
            pass  # gone meanwhile

    async def _stop(self) -> None:
        assert self.reg is not None
        await self.reg.close()
        await asyncio.wait_for(self._watch, 5)

    def __enter__(self) -> ThreadedRegistrar:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()
