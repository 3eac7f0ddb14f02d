"""GB/T 28181 camera fleets as Locust users: ``gbsip.locust``.

Each Locust user drives a *block* of simulated devices in gbsip's C engine
(one :class:`gbsip.Simulator`, its device state in ``gbsip._core.Fleet``),
never a Python object per device.  Every REGISTER (the whole Digest
exchange), refresh, keepalive and unregister is reported to Locust's
``events.request`` as request types ``REGISTER``, ``REFRESH``, ``KEEPALIVE``
and ``UNREGISTER``, so Locust's statistics, charts, CSV files and web UI
show GB28181 traffic, and Locust's distributed mode (one master, many
workers) scales a fleet over processes and machines.

A locustfile needs two lines (see ``examples/locustfile.py``)::

    from gbsip.locust import GBDeviceUser

    class Cameras(GBDeviceUser):
        pass

Configuration is Locust's own: the ``--gb-*`` command-line options (also
``LOCUST_GB_*`` environment variables, config files and the web UI form),
given to the master and forwarded by Locust to every worker.  See
docs/distributed.md.

Why a thread: Locust runs on gevent and monkey-patches the process, gbsip's
simulator is asyncio.  Each Locust process runs one asyncio loop (uvloop
when installed) in a real OS thread started with the unpatched
``_thread.start_new_thread``; every block of that process lives on that
loop and every ``Fleet`` call happens in that thread.  The thread hands
finished transactions to the user's greenlet through a ``deque``; the
greenlet fires the Locust events (Locust's statistics are not thread-safe)
and waits for the engine by polling with ``gevent.sleep``, so nothing in
the gevent thread ever blocks.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import os
import selectors
import time
from collections.abc import Callable
from typing import Any

import gevent  # type: ignore[import-untyped]
from gevent import monkey  # type: ignore[import-untyped]
from locust import User, constant, events, task
from locust.exception import StopUser
from locust.rpc import Message
from locust.runners import STATE_INIT, STATE_STOPPING, MasterRunner

from gbsip.events import (
    DeviceEvent,
    Failed,
    KeepaliveAnswered,
    KeepaliveMissed,
    KeepaliveTimeout,
    Refreshed,
    Registered,
    Unregistered,
)
from gbsip.simulator import Simulator, SimulatorReport

__all__ = [
    "DEFAULT_ID_PREFIX",
    "GBDeviceUser",
    "KEEPALIVE",
    "REFRESH",
    "REGISTER",
    "TransactionFailed",
    "UNREGISTER",
    "block_first_serial",
]

logger = logging.getLogger("gbsip.locust")

#: 34020000 centre, 00 industry, 132 IP camera, 0 network: 6 serial digits
#: left, so up to 999,999 devices across all workers.
DEFAULT_ID_PREFIX = "34020000001320"
_ID_DIGITS = 20

REGISTER = "REGISTER"
REFRESH = "REFRESH"
KEEPALIVE = "KEEPALIVE"
UNREGISTER = "UNREGISTER"


class TransactionFailed(Exception):
    """A failed transaction as Locust's failure table shows it: the device
    core's reason, then the SIP status and reason phrase when there was one
    (``auth_rejected: 403 Forbidden``, ``timeout: no final response``)."""

    def __repr__(self) -> str:  # Locust's failure table shows repr()
        return str(self.args[0]) if self.args else type(self).__name__


def block_first_serial(worker_index: int, slot: int, *, users_per_worker: int,
                       devices_per_user: int, id_start: int = 1) -> int:
    """The first device serial of a user's block: worker ``w``'s user slot
    ``s`` owns serials ``id_start + (w * users_per_worker + s) * devices_per_user``
    and the ``devices_per_user - 1`` after it, so blocks never overlap while
    no worker runs more than ``users_per_worker`` users at once."""
    if worker_index < 0 or not 0 <= slot < users_per_worker:
        raise ValueError(f"user slot {slot} of worker {worker_index} is outside "
                         f"0..{users_per_worker - 1} (--gb-users-per-worker)")
    return id_start + (worker_index * users_per_worker + slot) * devices_per_user


# ---- options ------------------------------------------------------------------------

@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    # on the parser itself: only it knows Locust's web UI keywords (is_secret...)
    g = parser
    g.add_argument("--gb-server", default="", env_var="LOCUST_GB_SERVER",
                   help="platform address udp://HOST:PORT or tcp://HOST:PORT "
                        "(default: --host when it is one, else udp://127.0.0.1:5060)")
    g.add_argument("--gb-server-id", default="34020000002000000001",
                   env_var="LOCUST_GB_SERVER_ID", help="the platform's 20-digit SIP ID")
    g.add_argument("--gb-domain", default="", env_var="LOCUST_GB_DOMAIN",
                   help="SIP domain / realm (default: first 10 digits of the server ID)")
    g.add_argument("--gb-password", default="12345678", env_var="LOCUST_GB_PASSWORD",
                   is_secret=True, help="every device's password")
    g.add_argument("--gb-devices-per-user", type=int, default=1000,
                   env_var="LOCUST_GB_DEVICES_PER_USER",
                   help="devices in each Locust user's block")
    g.add_argument("--gb-users-per-worker", type=int, default=100,
                   env_var="LOCUST_GB_USERS_PER_WORKER",
                   help="most users one worker runs at once: sizes each worker's ID range")
    g.add_argument("--gb-id-prefix", default=DEFAULT_ID_PREFIX, env_var="LOCUST_GB_ID_PREFIX",
                   help="device ID digits before the serial")
    g.add_argument("--gb-id-start", type=int, default=1, env_var="LOCUST_GB_ID_START",
                   help="serial of the first device of worker 0's first user")
    g.add_argument("--gb-transport", default="", choices=("", "udp", "tcp"),
                   env_var="LOCUST_GB_TRANSPORT", help="udp or tcp (default: from --gb-server)")
    g.add_argument("--gb-expires", type=int, default=3600, env_var="LOCUST_GB_EXPIRES",
                   help="requested registration lifetime, seconds")
    g.add_argument("--gb-keepalive", type=float, default=60.0, env_var="LOCUST_GB_KEEPALIVE",
                   help="seconds between keepalive MESSAGEs (0: none)")
    g.add_argument("--gb-rate", type=float, default=1000.0, env_var="LOCUST_GB_RATE",
                   help="registrations per second while a user ramps up its block "
                        "(0: all at once); also the unregister rate")
    g.add_argument("--gb-sockets", type=int, default=4, env_var="LOCUST_GB_SOCKETS",
                   help="UDP sockets each block shares (0: one per device)")
    g.add_argument("--gb-t1", type=float, default=0.5, env_var="LOCUST_GB_T1",
                   help="RFC 3261 T1, seconds (timeouts are 64*T1)")
    g.add_argument("--gb-retry", type=float, default=60.0, env_var="LOCUST_GB_RETRY",
                   help="seconds before a device retries a failed registration")
    g.add_argument("--gb-no-unregister", action="store_true", default=False,
                   env_var="LOCUST_GB_NO_UNREGISTER",
                   help="leave the devices registered when users stop")
    g.add_argument("--gb-drain-timeout", type=float, default=60.0,
                   env_var="LOCUST_GB_DRAIN_TIMEOUT", include_in_web_ui=False,
                   help="headless master: wait this long for workers to unregister "
                        "their devices before the final statistics (0: do not wait)")


def _opt(env: Any, name: str, kind: Callable[[Any], Any]) -> Any:
    """An option as its type (the web UI hands custom options over as text)."""
    value = getattr(env.parsed_options, name)
    if kind is bool and isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return kind(value)


def _server(env: Any) -> str:
    server = _opt(env, "gb_server", str).strip()
    if not server and env.host and env.host.split("://", 1)[0].lower() in ("udp", "tcp"):
        server = env.host
    return server or "udp://127.0.0.1:5060"


# ---- the engine thread -----------------------------------------------------------------

def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed; else asyncio's loop over a real poll(), since
    gevent replaced the selectors module's default with its own."""
    try:
        import uvloop
    except ImportError:
        pass
    else:
        if os.environ.get("GBSIP_LOOP", "").lower() != "asyncio":
            return uvloop.new_event_loop()  # type: ignore[no-any-return]
    if monkey.is_module_patched("select"):
        class _PollSelector(selectors._PollLikeSelector):  # type: ignore[name-defined]
            _selector_cls = monkey.get_original("select", "poll")
            _EVENT_READ = 0x001   # POLLIN
            _EVENT_WRITE = 0x004  # POLLOUT
        return asyncio.SelectorEventLoop(_PollSelector())
    return asyncio.SelectorEventLoop()


class _Engine:
    """One asyncio loop in one real thread for the whole Locust process."""

    _instance: _Engine | None = None

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.failure: BaseException | None = None
        start = monkey.get_original("_thread", "start_new_thread")
        start(self._main, ())
        deadline = time.monotonic() + 10
        while self.loop is None and self.failure is None and time.monotonic() < deadline:
            gevent.sleep(0.005)
        if self.loop is None:
            raise RuntimeError(f"gbsip engine thread did not start: {self.failure!r}")

    @classmethod
    def get(cls) -> _Engine:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def _main(self) -> None:
        try:
            loop = _new_loop()
            asyncio.set_event_loop(loop)
        except BaseException as exc:  # reported to the waiting greenlet
            self.failure = exc
            return
        self.loop = loop
        loop.run_forever()

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(fn, *args)


# ---- one block of devices -----------------------------------------------------------------

class _Transactions:
    """Turns a block's device events into finished transactions for Locust:
    (request type, response time in ms, failure or None).  Engine thread
    only; given to the Simulator as its ``on_events``."""

    def __init__(self, index_of: Callable[[str], int], devices: int, timer_f_ms: int,
                 sink: Callable[[list[tuple[str, float, str | None]]], None]) -> None:
        self._index_of = index_of
        self._sink = sink
        self._timer_f = timer_f_ms
        self._online = bytearray(devices)  # registered: a failure is a REFRESH's

    def __call__(self, evs: list[DeviceEvent]) -> None:
        out: list[tuple[str, float, str | None]] = []
        online = self._online
        for ev in evs:
            dev = self._index_of(ev.device_id or "")
            if isinstance(ev, (Registered, Refreshed)):
                out.append((REGISTER if isinstance(ev, Registered) else REFRESH,
                            ev.latency * 1000, None))
                online[dev] = 1
            elif isinstance(ev, Failed):
                rt = ev.latency * 1000 or (self._timer_f if ev.kind == "timeout" else 0)
                out.append((REFRESH if online[dev] else REGISTER, rt,
                            _failure(ev.kind, ev.status, ev.reason)))
                online[dev] = 0
            elif isinstance(ev, KeepaliveAnswered):
                out.append((KEEPALIVE, ev.latency * 1000, None))
            elif isinstance(ev, KeepaliveMissed):
                out.append((KEEPALIVE, ev.latency * 1000 or self._timer_f,
                            _failure("timeout" if not ev.status else "rejected", ev.status,
                                     ev.reason)))
            elif isinstance(ev, KeepaliveTimeout):
                online[dev] = 0
            elif isinstance(ev, Unregistered):
                online[dev] = 0
                if ev.kind in ("not_registered", "abandoned"):
                    continue  # nothing was sent
                if ev.kind == "none" and 200 <= ev.status < 300:
                    out.append((UNREGISTER, ev.latency * 1000, None))
                else:
                    rt = ev.latency * 1000 or (self._timer_f if ev.kind == "timeout" else 0)
                    out.append((UNREGISTER, rt, _failure(ev.kind, ev.status, ev.reason)))
        if out:
            self._sink(out)


def _failure(reason: str, status: int, text: str) -> str:
    if reason == "timeout" and not status:
        return "timeout: no final response"
    if status:
        return f"{reason}: {status} {text}".rstrip()
    return f"{reason}: {text}" if text and text != reason else reason


class _Block:
    """A user's devices: created, run and stopped on the engine's loop;
    finished transactions come back through :attr:`done`."""

    #: seconds between hand-overs of finished transactions to the greenlet
    FLUSH = 0.25

    def __init__(self, engine: _Engine, kw: dict[str, Any]) -> None:
        self.engine = engine
        self.kw = kw
        self.done: collections.deque[tuple[list[tuple[str, float, str | None]], int]] = \
            collections.deque()
        self.opened = False
        self.finished = False
        self.error: BaseException | None = None
        self.server = ""
        self.first_id = self.last_id = ""
        self.report: SimulatorReport | None = None
        self._sim: Simulator | None = None
        self._pending: list[tuple[str, float, str | None]] = []
        self._rx_bytes = 0
        engine.call(self._launch)

    # engine thread

    def _sink(self, recs: list[tuple[str, float, str | None]]) -> None:
        self._pending.extend(recs)

    def _flush(self) -> None:
        """Hand finished transactions over, each with a share of the bytes
        received since the last hand-over (the core keeps no per-transaction
        sizes)."""
        if not self._pending or self._sim is None:
            return
        rx = int(self._sim.stats()["messages"]["bytes_received"])
        recs, self._pending = self._pending, []
        share = (rx - self._rx_bytes) // len(recs)
        self._rx_bytes = rx
        self.done.append((recs, share))

    def _launch(self) -> None:
        assert self.engine.loop is not None
        self.engine.loop.create_task(self._run())

    async def _run(self) -> None:
        sim: Simulator | None = None
        try:
            sim = self._sim = Simulator(**self.kw)
            timer_f = 64 * round(sim.t1 * 1000)
            sim.on_events = _Transactions(sim.index_of, sim.devices, timer_f, self._sink)
            await sim.start()
            self.server = sim.server
            self.first_id = sim.device_id(0)
            self.last_id = sim.device_id(sim.devices - 1)
            self.opened = True
            run = asyncio.ensure_future(sim.run())
            while not run.done():
                await asyncio.sleep(self.FLUSH)
                self._flush()
            self.report = run.result()
        except BaseException as exc:
            self.error = exc
        finally:
            if sim is not None:
                try:
                    await sim.close()
                except Exception as exc:  # already failing or closing: keep the first error
                    self.error = self.error or exc
                self._flush()
            self.finished = True

    def _halt(self) -> None:
        if self._sim is not None:
            self._sim.stop()

    # gevent thread

    def halt(self) -> None:
        self.engine.call(self._halt)


# ---- ID blocks ----------------------------------------------------------------------------

class _Slots:
    """User slots of this process: the lowest free one, returned once the
    user's devices are unregistered, so a worker's blocks stay inside its
    ID range however often users come and go."""

    def __init__(self) -> None:
        self._used: set[int] = set()

    def take(self) -> int:
        slot = 0
        while slot in self._used:
            slot += 1
        self._used.add(slot)
        return slot

    def give(self, slot: int) -> None:
        self._used.discard(slot)


_slots = _Slots()


# ---- the user -------------------------------------------------------------------------------

class GBDeviceUser(User):
    """A block of ``--gb-devices-per-user`` simulated GB/T 28181 cameras.

    Starting, the user takes the next free slot of its worker and ramps its
    block up at ``--gb-rate``; its one task hands the block's finished
    transactions to Locust every ``wait_time``; stopping, it unregisters
    its devices (unless ``--gb-no-unregister``) and reports those too.
    Subclass it in a locustfile; class attributes override the options of
    the same name without the ``gb_`` prefix (``devices_per_user = 500``).
    """

    abstract = True
    wait_time = constant(0.5)

    #: class-level overrides of the --gb-* options (None: use the option)
    devices_per_user: int | None = None
    keepalive: float | None = None
    expires: int | None = None
    rate: float | None = None
    #: extra keyword arguments for :class:`gbsip.Simulator` (faults, churn...)
    simulator_options: dict[str, Any] = {}

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self._block: _Block | None = None
        self._slot: int | None = None
        self._fire = environment.events.request.fire

    # -- Locust hooks

    def on_start(self) -> None:
        env = self.environment
        per_user = self.devices_per_user or _opt(env, "gb_devices_per_user", int)
        if per_user < 1:
            raise ValueError("--gb-devices-per-user must be at least 1")
        per_worker = _opt(env, "gb_users_per_worker", int)
        worker = max(0, int(getattr(env.runner, "worker_index", 0) or 0))
        self._slot = _slots.take()
        first = block_first_serial(worker, self._slot, users_per_worker=per_worker,
                                   devices_per_user=per_user,
                                   id_start=_opt(env, "gb_id_start", int))
        keepalive = self.keepalive if self.keepalive is not None else \
            _opt(env, "gb_keepalive", float)
        rate = self.rate if self.rate is not None else _opt(env, "gb_rate", float)
        t1 = _opt(env, "gb_t1", float)
        kw: dict[str, Any] = dict(
            devices=per_user,
            server=_server(env),
            server_id=_opt(env, "gb_server_id", str),
            domain=_opt(env, "gb_domain", str) or None,
            password=_opt(env, "gb_password", str),
            id_prefix=_opt(env, "gb_id_prefix", str),
            id_start=first,
            transport=_opt(env, "gb_transport", str) or None,
            rate=rate or None,
            duration=1e9,  # until the user stops (halt)
            expires=self.expires or _opt(env, "gb_expires", int),
            keepalive_interval=keepalive or None,
            retry_interval=_opt(env, "gb_retry", float),
            t1=t1,
            sockets=_opt(env, "gb_sockets", int),
            unregister=not _opt(env, "gb_no_unregister", bool),
            settle_timeout=1.0,  # stopping: do not wait for stragglers
        )
        kw.update(self.simulator_options)
        self._block = _Block(_Engine.get(), kw)
        while not self._block.opened and not self._block.finished:
            gevent.sleep(0.01)
        if self._block.error is not None:
            self._release()
            err = self._block.error
            logger.error("gbsip block of user slot %s failed to start: %s", self._slot, err)
            raise StopUser() from err
        logger.info("gbsip user %s (worker %s, slot %s): devices %s..%s -> %s",
                    id(self), worker, self._slot, self._block.first_id,
                    self._block.last_id, self._block.server)

    @task
    def report(self) -> None:
        """Hand the block's finished transactions to Locust."""
        block = self._block
        if block is None:
            raise StopUser()
        self._report(block)
        if block.finished:
            if block.error is not None:
                logger.error("gbsip block of user slot %s stopped: %r", self._slot, block.error)
            raise StopUser()

    def on_stop(self) -> None:
        block = self._block
        if block is None:
            self._release()
            return
        block.halt()
        t1 = float(block.kw.get("t1", 0.5))
        rate = block.kw.get("rate") or 0
        bound = 2 * (64 * t1 + 1) + 5 + (block.kw["devices"] / rate if rate else 0)
        deadline = time.monotonic() + bound
        while not block.finished and time.monotonic() < deadline:
            self._report(block)
            gevent.sleep(0.05)
        self._report(block)
        if not block.finished:
            logger.warning("gbsip block of user slot %s did not finish unregistering in %.0f s",
                           self._slot, bound)
        self._release()
        self._block = None

    # -- helpers

    def _release(self) -> None:
        if self._slot is not None:
            _slots.give(self._slot)
            self._slot = None

    def _report(self, block: _Block) -> None:
        fire = self._fire
        name = block.server
        done = block.done
        while done:
            recs, share = done.popleft()
            for rtype, rt, failure in recs:
                fire(request_type=rtype, name=name, response_time=rt,
                     response_length=share,
                     exception=None if failure is None else TransactionFailed(failure),
                     context={})


# ---- master: let workers unregister before the final statistics -----------------------------

#: monotonic time of each worker's latest statistics report (master only)
_reports: dict[str, float] = {}


@events.worker_report.add_listener
def _on_worker_report(client_id: str, data: Any, **_kw: Any) -> None:
    _reports[client_id] = time.monotonic()


@events.test_stopping.add_listener
def _drain_workers(environment: Any, **_kw: Any) -> None:
    """A headless master quits its workers straight away at the end of
    ``--run-time`` and keeps their statistics only 0.5 s longer, too short
    for a fleet to unregister.  Stop them first, wait until they are idle
    again and have reported once more, so the UNREGISTERs (and the last
    keepalives) are in the final statistics and CSV files."""
    runner = environment.runner
    opts = environment.parsed_options
    if not isinstance(runner, MasterRunner) or opts is None or not opts.headless:
        return
    timeout = float(getattr(opts, "gb_drain_timeout", 0) or 0)
    busy = [c.id for c in runner.clients.all if c.state != STATE_INIT and c.user_count]
    if timeout <= 0 or not busy:
        return
    # as stop() does next: no re-dispatch of users while workers report in
    runner.update_state(STATE_STOPPING)
    for client_id in busy:
        runner.server.send_to_client(Message("stop", None, client_id))
    deadline = time.monotonic() + timeout
    idle_at: float | None = None
    while time.monotonic() < deadline:
        gevent.sleep(0.1)
        if idle_at is None:
            if all(cid in runner.clients and runner.clients[cid].state == STATE_INIT
                   for cid in busy):
                idle_at = time.monotonic()
        elif all(_reports.get(cid, 0.0) > idle_at for cid in busy):
            if getattr(opts, "csv_prefix", None):
                gevent.sleep(1.1)  # one more pass of Locust's CSV writer (every 1 s)
            return
    logger.warning("gbsip: workers did not finish unregistering in %.0f s", timeout)
