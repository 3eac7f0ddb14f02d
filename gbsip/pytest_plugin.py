"""gbsip in pytest: a GB/T 28181 platform and cameras as fixtures.

Registered through the ``pytest11`` entry point (``gbsip``), or by hand with
``-p gbsip.pytest_plugin``.  See docs/pytest.md.

Fixtures (async ones need pytest-asyncio; mark the test ``@pytest.mark.asyncio``):

- ``gb_options``: the ``--gb-*`` options (:class:`GBOptions`).
- ``gb_trace``: the SIP messages of this test, shown when it fails.
- ``gb_clock``: virtual time for the test's event loop (:class:`GBClock`).
- ``gb_registrar``: a :class:`gbsip.Registrar` on a free loopback port whose
  events are recorded in ``gb_registrar.recorded``.
- ``gb_device_factory`` / ``gb_device``: :class:`gbsip.device.Device` objects
  registered to ``gb_registrar`` (or to ``--gb-platform`` when given).

It also prints the GB/T 28181 conformance summary table for tests marked
``gb_check`` (the suites in :mod:`gbsip.conformance`).
"""
from __future__ import annotations

import asyncio
import itertools
import math
import selectors
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from typing import Any, Protocol, TypeVar, cast, overload

import pytest

from gbsip.conformance._common import (
    CheckFailed,
    GBOptions,
    Target,
    Trace,
    parse_target,
    unknown_device_id,
)

try:  # async fixtures need pytest-asyncio; the conformance suites do not
    import pytest_asyncio
except ImportError:  # pragma: no cover - exercised only without pytest-asyncio
    pytest_asyncio = None  # type: ignore[assignment]

__all__ = ["DeviceFactory", "GBClock", "GBOptions", "RecordingRegistrar", "Target", "Trace"]

_TRACE_KEY = pytest.StashKey[Trace]()
_RESULTS_KEY = pytest.StashKey[dict[str, dict[str, str]]]()


# --------------------------------------------------------------------------
# Options


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("gbsip", "gbsip: GB/T 28181 fixtures and conformance suites")
    g.addoption("--gb-platform", metavar="URL", default=None,
                help="platform under test, udp://HOST:PORT or tcp://HOST:PORT "
                     "(gb_device registers there; the platform suite tests it)")
    g.addoption("--gb-listen", metavar="URL", default=None,
                help="device mode: where gbsip plays the platform and waits for the "
                     "camera, udp://HOST:PORT or tcp://HOST:PORT")
    g.addoption("--gb-server-id", metavar="ID", default="34020000002000000001",
                help="the platform's 20-digit SIP server ID (default %(default)s)")
    g.addoption("--gb-domain", metavar="DOMAIN", default=None,
                help="SIP domain and Digest realm (default: first 10 digits of the server ID)")
    g.addoption("--gb-device-id", metavar="ID", default="34020000001320000001",
                help="the camera's 20-digit device ID (default %(default)s)")
    g.addoption("--gb-password", metavar="PASSWORD", default="12345678",
                help="the device's Digest password (default %(default)s)")
    g.addoption("--gb-timeout", metavar="SECONDS", type=float, default=5.0,
                help="how long to wait for any one answer or event (default %(default)s)")
    c = parser.getgroup("gbsip-conformance", "gbsip conformance suites (see docs/conformance.md)")
    c.addoption("--gb-expires", metavar="SECONDS", type=int, default=3600,
                help="platform suite: registration lifetime the camera asks for")
    c.addoption("--gb-grant-expires", metavar="SECONDS", type=int, default=60,
                help="device suite: lifetime the platform grants (the refresh check waits for it)")
    c.addoption("--gb-keepalive-interval", metavar="SECONDS", type=float, default=60.0,
                help="keepalive interval configured on the platform (platform suite) or "
                     "on the camera (device suite)")
    c.addoption("--gb-keepalive-timeout-count", metavar="N", type=int, default=3,
                help="missed keepalives before the peer counts as offline (default 3)")
    c.addoption("--gb-unknown-device-id", metavar="ID", default=None,
                help="platform suite: a device ID the platform does not know "
                     "(default: the device ID with serial 999999)")
    c.addoption("--gb-any-device", action="store_true", default=False,
                help="platform suite: the platform accepts any device ID with the shared "
                     "password, so skip the unknown-device check")
    c.addoption("--gb-nonce-lifetime", metavar="SECONDS", type=float, default=None,
                help="platform suite: the platform's nonce lifetime; enables the stale-nonce check")
    c.addoption("--gb-offline-cmd", metavar="CMD", default=None,
                help="platform suite: shell command that exits 0 when the platform shows "
                     "device {device_id} offline and non-zero while online")
    c.addoption("--gb-utc-offset", metavar="HOURS", type=float, default=8.0,
                help="zone of the GB Date header in hours east of UTC (default 8, Beijing)")
    c.addoption("--gb-date-tolerance", metavar="SECONDS", type=float, default=5.0,
                help="largest accepted difference between the 200 OK Date and now")
    c.addoption("--gb-device-cmd", metavar="CMD", default=None,
                help="device suite: shell command started once gbsip listens "
                     "({host} and {port} are replaced); stopped at the end")
    c.addoption("--gb-register-timeout", metavar="SECONDS", type=float, default=60.0,
                help="device suite: how long to wait for the camera's first registration")
    c.addoption("--gb-queries", action="store_true", default=False,
                help="device suite: also check the camera's answers to the platform's "
                     "MANSCDP queries (Catalog with SumNum, DeviceInfo, SN echo, charset, "
                     "200 before the answer: GB/T 28181 §9.5)")
    c.addoption("--gb-no-queries", action="store_true", default=False,
                help="platform suite: the platform is not expected to query a new device "
                     "(P25, P26 are skipped)")
    c.addoption("--gb-query-wait", metavar="SECONDS", type=float, default=10.0,
                help="platform suite: how long after a registration to wait for the "
                     "platform's Catalog/DeviceInfo query or SUBSCRIBE (P25-P27)")
    c.addoption("--gb-unregister-cmd", metavar="CMD", default=None,
                help="device suite: shell command that makes the camera unregister "
                     "({pid} is the --gb-device-cmd process)")


def _options(config: pytest.Config) -> GBOptions:
    get = config.getoption

    def target(name: str) -> Target | None:
        value = get(name)
        if value is None:
            return None
        option = f"--{name.replace('_', '-')}"
        if "://" not in value:
            raise pytest.UsageError(f"{option}: {value!r} is not a URL: give udp://HOST:PORT "
                                    "or tcp://HOST:PORT")
        try:
            found = parse_target(value)
        except ValueError as exc:
            raise pytest.UsageError(f"{option}: {exc}") from None
        try:
            socket.getaddrinfo(found.host, found.port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            raise pytest.UsageError(f"{option}: cannot resolve {found.host!r} "
                                    f"({exc.strerror or exc})") from None
        return found

    server_id = get("gb_server_id")
    device_id = get("gb_device_id")
    timeout = get("gb_timeout")
    if timeout <= 0:
        raise pytest.UsageError("--gb-timeout must be positive")
    return GBOptions(
        platform=target("gb_platform"),
        listen=target("gb_listen"),
        server_id=server_id,
        domain=get("gb_domain") or server_id[:10],
        device_id=device_id,
        password=get("gb_password"),
        timeout=timeout,
        expires=get("gb_expires"),
        grant_expires=get("gb_grant_expires"),
        keepalive_interval=get("gb_keepalive_interval"),
        keepalive_timeout_count=get("gb_keepalive_timeout_count"),
        unknown_device_id=get("gb_unknown_device_id") or unknown_device_id(device_id),
        any_device=get("gb_any_device"),
        nonce_lifetime=get("gb_nonce_lifetime"),
        offline_cmd=get("gb_offline_cmd"),
        utc_offset=get("gb_utc_offset"),
        date_tolerance=get("gb_date_tolerance"),
        device_cmd=get("gb_device_cmd"),
        unregister_cmd=get("gb_unregister_cmd"),
        register_timeout=get("gb_register_timeout"),
        queries=get("gb_queries"),
        no_queries=get("gb_no_queries"),
        query_wait=get("gb_query_wait"),
    )


_MARKERS = (
    "gb_check(id, clause): a GB/T 28181 conformance check; listed in the summary table",
    "gb_registrar(**kwargs): keyword arguments for the gb_registrar fixture's Registrar",
    "gb_device(**kwargs): keyword arguments for Devices made by gb_device/gb_device_factory",
)


def pytest_configure(config: pytest.Config) -> None:
    for line in _MARKERS:
        config.addinivalue_line("markers", line)
    config.stash[_RESULTS_KEY] = {}
    _options(config)  # a malformed URL is a usage error before anything runs


@pytest.fixture(scope="session")
def gb_options(pytestconfig: pytest.Config) -> GBOptions:
    """The ``--gb-*`` options, parsed."""
    return _options(pytestconfig)


@pytest.fixture
def gb_trace(request: pytest.FixtureRequest) -> Trace:
    """SIP messages of this test (devices of gb_device_factory record theirs
    here, registrar events are noted).  Shown when the test fails."""
    trace = Trace("gbsip")
    request.node.stash[_TRACE_KEY] = trace
    return trace


# --------------------------------------------------------------------------
# Virtual time


class _JumpSelector:
    """Wraps an event loop's selector: when nothing happens on any socket for
    ``idle`` real seconds while the loop would sleep until its next timer,
    virtual time jumps to that timer instead of waiting."""

    def __init__(self, inner: selectors.BaseSelector, clock: GBClock) -> None:
        self._inner = inner
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is None or timeout <= 0:
            return self._inner.select(timeout)  # nothing scheduled, or work is ready
        events = self._inner.select(min(timeout, self._clock.idle))
        if events:
            return events
        # quiet for the idle window (or until the timer, if sooner): the
        # loop was going to sleep until its next timer, so time gets there now
        self._clock._jump(timeout)
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class GBClock:
    """Virtual time for one asyncio event loop.

    Installed on the test's running loop, it replaces ``loop.time()`` (which
    :class:`gbsip.Registrar` and :class:`gbsip.device.Device` use for every
    timer: expiry, keepalive, retransmission, nonce age) and wraps the
    loop's selector so that whenever every socket stays quiet for ``idle``
    real seconds, time jumps straight to the next timer.  An hour of
    keepalives therefore takes milliseconds, and ``await asyncio.sleep(3600)``
    returns at once with ``loop.time()`` an hour later.  :meth:`wall` is the
    matching Unix time (what gb_registrar's GB ``Date`` uses).

    It controls nothing outside that loop: ``time.time()``/``time.monotonic()``,
    other threads and processes (sipp, a real platform) keep real time, so
    use it only with in-process peers.  It needs asyncio's selector loop
    (not uvloop).
    """

    def __init__(self, idle: float = 0.005) -> None:
        self.idle = idle
        self.jumps = 0
        self._now: float | None = None
        self._start = 0.0
        self._wall0 = time.time()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._selector: Any = None

    # -- reading ------------------------------------------------------------

    def time(self) -> float:
        """Virtual monotonic seconds (what ``loop.time()`` returns)."""
        if self._now is None:
            return time.monotonic()
        return self._now

    def wall(self) -> float:
        """Virtual Unix time: real time at installation plus virtual elapsed."""
        return self._wall0 + self.elapsed

    @property
    def elapsed(self) -> float:
        """Virtual seconds since installation."""
        return 0.0 if self._now is None else self._now - self._start

    @property
    def installed(self) -> bool:
        return self._loop is not None

    # -- moving ---------------------------------------------------------------

    def _jump(self, seconds: float) -> None:
        assert self._now is not None
        self._now += seconds
        self.jumps += 1

    async def advance(self, seconds: float) -> None:
        """Let ``seconds`` (seconds, not milliseconds) of virtual time pass,
        running every timer due on the way in order (and the I/O they
        cause), in a few milliseconds of real time.  Time only goes
        forward: a negative (or not finite) number is a ``ValueError``."""
        __tracebackhide__ = True
        if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"advance takes a non-negative number of seconds (time only goes "
                             f"forward), not {seconds!r}")
        self.install()
        await asyncio.sleep(seconds)

    sleep = advance

    # -- life -----------------------------------------------------------------

    def install(self, loop: asyncio.AbstractEventLoop | None = None) -> GBClock:
        """Take over the running loop's time (idempotent)."""
        loop = loop or asyncio.get_running_loop()
        if self._loop is loop:
            return self
        if self._loop is not None:
            raise RuntimeError("gb_clock is already installed on another event loop")
        from asyncio import selector_events

        if not isinstance(loop, selector_events.BaseSelectorEventLoop):
            raise pytest.UsageError(
                f"gb_clock needs asyncio's selector event loop, not {type(loop).__name__} "
                "(uvloop's clock cannot be replaced)")
        self._now = self._start = loop.time()
        self._wall0 = time.time()
        self._selector = loop._selector  # type: ignore[attr-defined]
        loop._selector = _JumpSelector(self._selector, self)  # type: ignore[attr-defined]
        loop.time = self.time  # type: ignore[method-assign]
        self._loop = loop
        return self

    def uninstall(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        loop._selector = self._selector  # type: ignore[attr-defined]
        try:
            del loop.time  # back to the class's method
        except AttributeError:
            pass


@pytest.fixture
def gb_clock(gb_options: GBOptions) -> Iterator[GBClock]:
    """Virtual time for this test's event loop (see :class:`GBClock`).

    It installs itself when gb_registrar or gb_device_factory starts, or at
    the first ``await gb_clock.advance(...)``; ``gb_clock.install()`` does it
    explicitly.
    """
    if gb_options.platform is not None:
        pytest.skip("gb_clock controls in-process peers only; --gb-platform is a real "
                    "platform keeping real time")
    clock = GBClock()
    try:
        yield clock
    finally:
        clock.uninstall()


def _clock_for(request: pytest.FixtureRequest) -> GBClock | None:
    if "gb_clock" not in request.fixturenames:
        return None
    clock: GBClock = request.getfixturevalue("gb_clock")
    return clock.install()


# --------------------------------------------------------------------------
# Registrar and devices

from gbsip.device import Device  # noqa: E402  (after the option hooks, for readability)
from gbsip._drive import EventStream  # noqa: E402
from gbsip.errors import RegistrationError  # noqa: E402
from gbsip.events import RegistrarEvent  # noqa: E402
from gbsip.registrar import Registrar  # noqa: E402

Event = RegistrarEvent
E = TypeVar("E", bound=RegistrarEvent)
E2 = TypeVar("E2", bound=RegistrarEvent)


class DeviceFactory(Protocol):
    """The type of the ``gb_device_factory`` fixture::

        async def test_two(gb_device_factory: DeviceFactory) -> None:
            a = await gb_device_factory()
            b = await gb_device_factory(expires=60)

    ``device_id`` defaults to ``--gb-device-id``, then the next serials;
    ``register=False`` returns the device unstarted; other keywords go to
    :class:`gbsip.device.Device`."""

    def __call__(self, device_id: str | None = None, *, register: bool = True,
                 **kwargs: Any) -> Awaitable[Device]: ...


class RecordingRegistrar(Registrar):
    """A :class:`gbsip.Registrar` that also keeps every event in
    :attr:`recorded` (a listener: :meth:`events` and ``wait_for`` still see
    every event) and notes it in the test's trace."""

    def __init__(self, *args: Any, trace: Trace | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recorded: list[RegistrarEvent] = []
        self.trace = trace
        # the recorder's own stream, only for its watch(): the queue is not read
        self._recorder: EventStream[RegistrarEvent] = EventStream(1)
        self.add_listener(self._record)

    def _record(self, ev: RegistrarEvent) -> None:
        self.recorded.append(ev)
        if self.trace is not None:
            self.trace.note(f"registrar event {type(ev).__name__} "
                            f"device={ev.device_id} from={ev.source}")
        self._recorder.publish(ev)

    # wait_recorded(A) is an A; wait_recorded((A, B)) an A | B
    @overload
    async def wait_recorded(self, kind: type[E], device_id: str | None = None,
                            timeout: float | None = 10.0) -> E: ...

    @overload
    async def wait_recorded(self, kind: tuple[type[E], type[E2]],
                            device_id: str | None = None,
                            timeout: float | None = 10.0) -> E | E2: ...

    @overload
    async def wait_recorded(self, kind: tuple[type[E], ...], device_id: str | None = None,
                            timeout: float | None = 10.0) -> E: ...

    async def wait_recorded(self, kind: type[E] | tuple[type[E], ...],
                            device_id: str | None = None,
                            timeout: float | None = 10.0) -> E:
        """The first recorded event of that kind (for that device), past or
        future — unlike :meth:`wait_for`, which takes from :meth:`events`."""
        __tracebackhide__ = True

        def pred(ev: RegistrarEvent) -> bool:
            return isinstance(ev, kind) and (device_id is None or ev.device_id == device_id)

        for ev in self.recorded:
            if pred(ev):
                return cast(E, ev)
        try:
            found = await asyncio.wait_for(self._recorder.watch(pred), timeout)
        except asyncio.TimeoutError:
            kinds = kind if isinstance(kind, tuple) else (kind,)
            names = " or ".join(k.__name__ for k in kinds)
            seen = ", ".join(f"{type(e).__name__}({e.device_id})" for e in self.recorded[-5:])
            raise asyncio.TimeoutError(
                f"no {names}{f' of {device_id}' if device_id else ''} within {timeout:g} s "
                f"({len(self.recorded)} events recorded{': … ' + seen if seen else ''})"
            ) from None
        return cast(E, found)

    @overload
    def of(self, kind: type[E], device_id: str | None = None) -> list[E]: ...

    @overload
    def of(self, kind: tuple[type[E], type[E2]], device_id: str | None = None) -> list[E | E2]: ...

    @overload
    def of(self, kind: tuple[type[E], ...], device_id: str | None = None) -> list[E]: ...

    def of(self, kind: type[E] | tuple[type[E], ...],
           device_id: str | None = None) -> list[E]:
        """Recorded events of that kind (for that device)."""
        return [ev for ev in self.recorded
                if isinstance(ev, kind) and (device_id is None or ev.device_id == device_id)]


def _not_registered(exc: Exception, device_id: str, peer: str,
                    trace: Trace) -> RegistrationError:
    """What ``gb_device_factory`` raises when its device does not register:
    a :class:`gbsip.errors.RegistrationError` (the cause's status and kind
    when it was one) saying which device, where, why, and the exchange."""
    failed = str(trace.fail(f"device {device_id} did not register at {peer}: "
                            f"{str(exc) or type(exc).__name__}"))
    if isinstance(exc, RegistrationError):
        return RegistrationError(exc.status, exc.reason, exc.kind, message=failed)
    if isinstance(exc, asyncio.TimeoutError):
        return RegistrationError(0, "no answer", "timeout", message=failed)
    return RegistrationError(0, str(exc) or type(exc).__name__, "error", message=failed)


def _marker_kwargs(request: pytest.FixtureRequest, name: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # closest last: a test's marker overrides its module's
    for mark in reversed(list(request.node.iter_markers(name))):
        out.update(mark.kwargs)
    return out


def _device_ids(first: str) -> Iterator[str]:
    """The configured device ID, then the next serials."""
    yield first
    if len(first) == 20 and first.isdigit():
        base = int(first[14:])
        for n in itertools.count(1):
            yield f"{first[:14]}{(base + n) % 1_000_000:06d}"
    else:
        for n in itertools.count(2):
            yield f"{first}-{n}"


async def _dispose(dev: Device, timeout: float) -> None:
    """Unregister and close; if the platform does not answer in time, stop
    the device anyway."""
    try:
        await asyncio.wait_for(dev.close(), timeout)
    except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - cleanup must go on
        pass
    finally:
        dev.abort()


if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def gb_registrar(request: pytest.FixtureRequest, gb_options: GBOptions,
                           gb_trace: Trace) -> AsyncIterator[RecordingRegistrar]:
        """A running :class:`RecordingRegistrar` on 127.0.0.1 (UDP and TCP, a
        free port) with the ``--gb-server-id``/``--gb-domain``/``--gb-password``
        options; ``@pytest.mark.gb_registrar(**kwargs)`` overrides any
        Registrar keyword.  Closed after the test, pass or fail."""
        clock = _clock_for(request)
        kwargs: dict[str, Any] = dict(
            host="127.0.0.1", port=0, transports=("udp", "tcp"),
            passwords=gb_options.password, realm=gb_options.domain,
        )
        if clock is not None:
            kwargs["clock"] = clock.wall
        kwargs.update(_marker_kwargs(request, "gb_registrar"))
        server_id = kwargs.pop("server_id", gb_options.server_id)
        reg = RecordingRegistrar(server_id, trace=gb_trace, **kwargs)
        await reg.start()
        try:
            yield reg
        finally:
            await reg.close()

    @pytest_asyncio.fixture
    async def gb_device_factory(
        request: pytest.FixtureRequest, gb_options: GBOptions, gb_trace: Trace,
        gb_registrar: RecordingRegistrar,
    ) -> AsyncIterator[DeviceFactory]:
        """``await gb_device_factory(device_id=None, *, register=True, **kwargs)``
        makes a :class:`gbsip.device.Device` aimed at ``--gb-platform`` if
        given, else at ``gb_registrar``; registered unless ``register=False``.
        IDs default to ``--gb-device-id`` then the following serials.  Every
        device is unregistered and closed after the test, pass or fail."""
        clock = _clock_for(request)
        devices: list[Device] = []
        ids = _device_ids(gb_options.device_id)
        defaults = _marker_kwargs(request, "gb_device")
        if gb_options.platform is not None:
            server = str(gb_options.platform)
        else:
            host, port = gb_registrar.address
            server = f"udp://{host}:{port}"

        async def make(device_id: str | None = None, *, register: bool = True,
                       **kwargs: Any) -> Device:
            __tracebackhide__ = True
            device_id = device_id or next(ids)
            options: dict[str, Any] = dict(
                password=gb_options.password, server=server,
                server_id=gb_options.server_id, domain=gb_options.domain,
            )
            options.update(defaults)
            options.update(kwargs)
            peer = options["server"]

            def trace(direction: str, data: bytes) -> None:
                if direction == "send":
                    gb_trace.sent(data, peer)
                else:
                    gb_trace.received(data, peer)

            dev = Device(device_id, trace=trace, **options)
            devices.append(dev)
            if register:
                try:
                    await asyncio.wait_for(dev.start(), max(gb_options.timeout, 40.0)
                                           if clock is None else None)
                except Exception as exc:
                    # a public exception (not the conformance suites' CheckFailed),
                    # the cause in its message: no trip through asyncio and Device
                    raise _not_registered(exc, device_id, peer, gb_trace) from None
            return dev

        try:
            yield make
        finally:
            timeout = gb_options.timeout if clock is None else 120.0
            for dev in reversed(devices):
                await _dispose(dev, timeout)

    @pytest_asyncio.fixture
    async def gb_device(gb_device_factory: DeviceFactory) -> Device:
        """One registered :class:`gbsip.device.Device` (``--gb-device-id``)."""
        return await gb_device_factory()

else:  # pragma: no cover

    def _needs_asyncio(name: str) -> Any:
        @pytest.fixture(name=name)
        def missing() -> None:
            pytest.fail(f"the {name} fixture needs pytest-asyncio (pip install pytest-asyncio)")
        return missing

    gb_registrar = _needs_asyncio("gb_registrar")
    gb_device_factory = _needs_asyncio("gb_device_factory")
    gb_device = _needs_asyncio("gb_device")


# --------------------------------------------------------------------------
# Reports: the exchange on failure, the conformance table at the end


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    rep: pytest.TestReport = outcome.get_result()
    trace = item.stash.get(_TRACE_KEY, None)
    if rep.failed and trace is not None and len(trace) and not trace.shown:
        rep.sections.append(("gbsip SIP exchange", trace.render()))
    mark = item.get_closest_marker("gb_check")
    if mark is not None:
        _record(item, rep, mark)


def _note(rep: pytest.TestReport) -> str:
    longrepr = rep.longrepr
    if rep.skipped and isinstance(longrepr, tuple):
        text = str(longrepr[2])
        return text[len("Skipped: "):] if text.startswith("Skipped: ") else text
    crash = getattr(longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(longrepr or "")
    for prefix in ("AssertionError: ", "gbsip.conformance._common.CheckFailed: ",
                   "CheckFailed: ", "gbsip.errors.RegistrationError: ",
                   "RegistrationError: ", "Failed: "):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return text.strip().split("\n", 1)[0]


def _record(item: pytest.Item, rep: pytest.TestReport, mark: pytest.Mark) -> None:
    results = item.config.stash[_RESULTS_KEY]
    entry = results.setdefault(item.nodeid, {
        "id": str(mark.kwargs.get("id", "")),
        "name": getattr(item, "originalname", item.name).removeprefix("test_"),
        "clause": str(mark.kwargs.get("clause", "")),
        "result": "PASS", "note": "",
    })
    if rep.when == "setup":
        item.user_properties.append(("gb_check", entry["id"]))
        item.user_properties.append(("clause", entry["clause"]))
    if rep.skipped and entry["result"] == "PASS":
        entry["result"], entry["note"] = "SKIP", _note(rep)
    elif rep.failed:
        if entry["result"] != "FAIL":
            entry["note"] = _note(rep)
        entry["result"] = "FAIL" if rep.when == "call" else "ERROR"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    results = config.stash.get(_RESULTS_KEY, {})
    if not results:
        return
    tr = terminalreporter
    width = max(80, int(getattr(getattr(tr, "_tw", None), "fullwidth", 100)))
    rows = list(results.values())
    name_w = min(46, max(len(r["name"]) for r in rows))
    tr.write_sep("=", "GB/T 28181 conformance summary")
    tr.write_line(f"{'id':4} {'result':6} {'check':{name_w}} clause")
    for r in rows:
        colour = {"PASS": "green", "SKIP": "yellow"}.get(r["result"], "red")
        tr.write_line(f"{r['id']:4} {r['result']:6} {_cut(r['name'], name_w):{name_w}} "
                      f"{r['clause']}", **{colour: True})
        if r["note"]:
            tr.write_line(f"{'':11}└ {_cut(r['note'], width - 14)}")
    counts = {k: sum(1 for r in rows if r["result"] == k) for k in ("PASS", "FAIL", "ERROR", "SKIP")}
    tr.write_line(f"{len(rows)} checks: {counts['PASS']} passed, {counts['FAIL']} failed, "
                  f"{counts['ERROR']} errors, {counts['SKIP']} skipped")


__all__ += ["CheckFailed"]
