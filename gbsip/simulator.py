"""Many GB/T 28181 cameras from one process: ``gbsip.Simulator``.

Every device's state lives in the C core (``gbsip._core.Fleet``: about 300
bytes a device, one timer heap); this module owns the sockets, the ramp, the
churn and the clock.  Over UDP the devices share a pool of sockets and the
core receives, answers and sends in batches (``recvmmsg``/``sendmmsg``), so
Python wakes once per batch, never per device; events are folded into
counters and latency histograms in C.  Over TCP each device has its own
connection (2022 §9.1.1 f), opened, written, read and framed in C as well
(``csrc/io/tcp_pump.h``: one epoll instance, watched by the loop), spread
over several loopback source addresses when one would run out of ports.

    async with Simulator(1000, server="udp://127.0.0.1:5060", password="12345678") as sim:
        report = await sim.run()

Works the same on asyncio and uvloop.
"""
from __future__ import annotations

import asyncio
import ipaddress
import math
import os
import random
import resource
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, TypedDict, Union

from gbsip import _core, _fdlimit
from gbsip._address import parse_target
from gbsip._console import iso_time
from gbsip._drive import Clock, Driver, Lifetime
from gbsip._udp import drain_errors, report_errors
from gbsip._version import __version__
from gbsip.camera import (
    ChannelConfig,
    Channels,
    ProfileSource,
    ProfileTable,
    alarm_target,
    configure_channel,
)
from gbsip.device import FleetEvents, FleetEventTuple
from gbsip.errors import ConfigurationError, SimulatorError
from gbsip.events import DeviceEvent

__all__ = [
    "DEFAULT_ID_PREFIX",
    "Faults",
    "LatencySummary",
    "Simulator",
    "SimulatorError",
    "SimulatorReport",
    "SimulatorStats",
    "TimelinePoint",
]

#: 34020000 centre, 00 industry, 132 IP camera, 0 network, then the serial.
DEFAULT_ID_PREFIX = "340200000013200"
_ID_DIGITS = 20
_TCP_PORTS_PER_HOST = 4000  # of ~28,000 ephemeral ports: connect() finds a free one fast

PasswordSource = Union[str, Callable[[str], str]]
ChannelCount = Union[int, Callable[[int], Union[int, Sequence[Union[str, ChannelConfig]]]], None]
IdSource = Union[Sequence[str], Callable[[int], str], None]

#: The window of the ramp's peak rate (s); a ramp shorter than it has none.
PEAK_WINDOW_S = 1.0
_TIMELINE_MAX = 10_000  # points; beyond, every other one goes and the step doubles


# --------------------------------------------------------------------------
# What stats(), run(), report() and timeline() return (docs/simulate.md)


class LatencySummary(TypedDict):
    """A latency histogram's summary, in whole milliseconds (0: < 1 ms)."""

    count: int
    mean: float
    p50: int
    p95: int
    p99: int
    p999: int
    max: int


class Latencies(TypedDict):
    register: LatencySummary  # first REGISTER of an attempt to its 200
    refresh: LatencySummary
    message: LatencySummary   # keepalive round trip
    answer: LatencySummary    # a platform's query to its answer's last 2xx


class StateCounts(TypedDict):
    idle: int
    registering: int
    registered: int
    refreshing: int
    failed: int
    unregistering: int
    unregistered: int


class Rates(TypedDict):
    """Averaged over the last ``window_s`` seconds (a whole number of
    keepalive intervals, at least 5 s: periodic traffic reads steady)."""

    registrations_per_s: float
    keepalives_per_s: float
    window_s: float


class Totals(TypedDict):
    registrations: int
    refreshes: int
    challenges: int
    failures: int
    timeouts: int
    redirects: int
    unregistrations: int
    keepalives_sent: int
    keepalives_answered: int
    keepalives_missed: int
    keepalives_skipped: int
    keepalive_timeouts: int


class FailureCounts(TypedDict):
    by_reason: dict[str, int]
    by_status: dict[str, int]


class MessageCounts(TypedDict):
    sent: int
    requests: int
    retransmitted: int
    received: int
    matched: int
    duplicates: int
    strays: int
    dropped_by_fault: int
    bytes_received: int
    bytes_sent: int
    parse_errors: int
    udp_send_dropped: int
    icmp_errors: int
    sendmmsg_calls: int
    recvmmsg_batches: int
    tcp_connect_failures: int
    tcp_connections: int
    tcp_connections_lost: int


class Memory(TypedDict):
    rss_bytes: int
    rss_delta_bytes: int
    fleet_state_bytes: int
    bytes_per_device_core: int
    camera_bytes: int


class ReportMemory(Memory):
    bytes_per_device: float


class SimulatorStats(TypedDict):
    """:meth:`Simulator.stats`: the live numbers."""

    phase: str
    elapsed: float
    devices: int
    started: int
    by_state: StateCounts
    registered: int
    ever_registered: int
    rates: Rates
    totals: Totals
    failures: FailureCounts
    latency_ms: Latencies
    messages: MessageCounts
    camera: dict[str, Any]
    memory: Memory


class RunConfig(TypedDict):
    server_id: str
    rate: float | None
    schedule: list[tuple[float, float]] | None
    duration: float
    expires: int
    keepalive_interval: float
    churn: float
    churn_mode: str
    faults: dict[str, float]
    sockets: int | None
    first_device: str
    last_device: str


class NotRegisteredExample(TypedDict):
    device_id: str
    state: str
    status: int
    reason: str


class Outcome(TypedDict):
    registered: int
    ever_registered: int
    not_started: int
    not_registered: dict[str, int]
    examples: list[NotRegisteredExample]


class Ramp(TypedDict):
    target_rate: float | None
    registered: int
    seconds: float | None
    achieved_rate: float | None
    seconds_95: float | None
    achieved_rate_95: float | None
    peak_rate: float | None  # None: the ramp took under 1 s, too short for a peak over 1 s


class ChurnCounts(TypedDict):
    offline: int
    returned: int
    skipped_not_online: int


class Unregistration(TypedDict):
    unregistered: int
    by_reason: dict[str, int]


class SimulatorReport(TypedDict):
    """:meth:`Simulator.run`'s result, :meth:`Simulator.report`, ``--json``."""

    gbsip: str
    server: str
    transport: str
    devices: int
    started: int
    stopped: bool
    ok: bool
    error: str | None
    started_at: str | None
    config: RunConfig
    result: Outcome
    ramp: Ramp
    totals: Totals
    failures: FailureCounts
    latency_ms: Latencies
    messages: MessageCounts
    camera: dict[str, Any]
    churn: ChurnCounts
    faults: dict[str, int]
    unregistration: Unregistration
    final_states: StateCounts
    elapsed: float
    cpu_seconds: float
    cpu_percent: float
    memory: ReportMemory


class TimelinePoint(TypedDict):
    """One step of :meth:`Simulator.timeline` (``Simulator(timeline=...)``):
    counts at its end, rates over the step, latency percentiles (ms) of what
    completed during it (None: nothing did)."""

    elapsed: float
    time: float
    phase: str
    started: int
    registered: int
    ever_registered: int
    registering: int
    failed: int
    registrations_per_s: float
    keepalives_per_s: float
    failures_per_s: float
    keepalives_missed_per_s: float
    register_count: int
    register_p50: float | None
    register_p95: float | None
    register_p99: float | None
    register_max: float | None
    refresh_count: int
    refresh_p50: float | None
    refresh_p99: float | None
    message_count: int
    message_p50: float | None
    message_p95: float | None
    message_p99: float | None
    message_max: float | None


TIMELINE_FIELDS: tuple[str, ...] = tuple(TimelinePoint.__annotations__)


def _percentile(ordered: list[int], q: float) -> float:
    """Nearest-rank percentile of sorted values."""
    return float(ordered[max(0, math.ceil(len(ordered) * q) - 1)])


@dataclass(frozen=True)
class Faults:
    """Fault injection: the fraction of devices (0..1) given each fault.

    The fractions are disjoint slices of one shuffled order of the devices,
    so a device carries at most one fault.
    """

    #: lose the next ``drop_count`` responses (RFC 3261 retransmission kicks in)
    drop_responses: float = 0.0
    #: answer challenges with a wrong password (refused: 403 or auth_rejected)
    wrong_password: float = 0.0
    #: skip ``skip_count`` periodic keepalives (the platform may mark them offline)
    skip_keepalives: float = 0.0
    #: once registered, send from another source port, Via and Contact
    #: unchanged (a NAT rebinding); TCP: the connection is reopened
    change_source_port: float = 0.0
    drop_count: int = 2
    skip_count: int = 3

    @classmethod
    def coerce(cls, value: Faults | Mapping[str, float] | None) -> Faults:
        if value is None:
            return cls()
        if isinstance(value, Faults):
            return value
        known = {f.name for f in fields(cls)}
        unknown = set(value) - known
        if unknown:
            raise ConfigurationError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        return cls(**value)  # type: ignore[arg-type]

    def total(self) -> float:
        return (self.drop_responses + self.wrong_password + self.skip_keepalives
                + self.change_source_port)


#: The camera side's counters in stats() and the report.
_CAMERA_STATS = (
    "requests_received", "requests_retransmitted", "requests_refused", "queries", "controls",
    "answers_sent", "answers_retransmitted", "answers_acknowledged", "answers_failed",
    "answers_completed", "answers_busy", "answers_deferred", "answers_in_flight",
    "notifies_sent", "notifies_retransmitted", "notifies_failed", "alarms_sent",
    "subscriptions", "subscription_refreshes", "subscriptions_ended", "subscriptions_active",
)


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Simulator(Lifetime):
    """A fleet of simulated GB/T 28181 cameras (see docs/simulate.md).

    ``devices`` cameras with IDs ``id_prefix`` + serial (from ``id_start``,
    20 digits in all), or from ``ids`` (a list, or a callable ``index ->
    ID``), register to ``server`` with Digest, refresh, send keepalives,
    and unregister at the end of :meth:`run`.  ``password`` is one string
    or a callable ``device_id -> password``.  Intervals are in seconds.

    ``on_events`` is called with every batch of device events as they
    happen (:mod:`gbsip.events` values with ``device_id`` set: Registered,
    Failed, KeepaliveAnswered...); without it the events are only counted,
    in C.  :meth:`stop` ends a run early: the ramp stops where it is, the
    devices started so far settle and unregister, and :meth:`run` returns
    its report.

    Over TCP every device needs a file descriptor: ``raise_fd_limit``
    raises the soft RLIMIT_NOFILE to the hard limit when the devices need
    more; when the limit still falls short, :meth:`start` raises
    :class:`SimulatorError` saying what is needed and how to raise it.
    Every device answers its platform like a camera (queries, controls,
    subscriptions: docs/device.md): ``profile`` says what it answers,
    ``channels`` how many channels each has (an int, or a callable ``index
    -> count``, or ``index ->`` a list of names or
    :class:`gbsip.camera.ChannelConfig`, one channel each, for a device whose
    Catalog items are configured), and ``nvr_fraction`` of the devices (spread evenly) are
    ``nvr_profile`` recorders with ``nvr_channels`` channels instead.
    Channel IDs are given out in blocks, so none repeats in the fleet.
    """

    def __init__(
        self,
        devices: int = 1000,
        *,
        server: str = "udp://127.0.0.1:5060",
        server_id: str = "34020000002000000001",
        domain: str | None = None,
        password: PasswordSource = "12345678",
        id_prefix: str = DEFAULT_ID_PREFIX,
        id_start: int = 1,
        ids: IdSource = None,
        transport: str | None = None,
        rate: float | None = 1000.0,
        schedule: Sequence[tuple[float, float]] | None = None,
        duration: float = 10.0,
        expires: int = 3600,
        refresh_fraction: float = 0.5,
        jitter: float = 0.1,
        keepalive_interval: float | None = 60.0,
        keepalive_timeout_count: int = 3,
        retry_interval: float = 60.0,
        t1: float = 0.5,
        t2: float = 4.0,
        churn: float = 0.0,
        churn_offline: float = 5.0,
        churn_mode: str = "unregister",
        faults: Faults | Mapping[str, float] | None = None,
        sockets: int = 8,
        local_host: str | None = None,
        local_hosts: Sequence[str] | None = None,
        local_port: int = 0,
        capability_header: bool = True,
        gb_version: str | None = None,
        user_agent: str = f"gbsip/{__version__}",
        request_uri: str | None = None,
        unregister: bool = True,
        unregister_rate: float | None = None,
        settle_timeout: float | None = None,
        no_answer_timeout: float | None = None,
        trace: str | None = None,
        on_trace: Callable[[str, bytes], None] | None = None,
        on_events: Callable[[list[DeviceEvent]], object] | None = None,
        timeline: float | None = None,
        raise_fd_limit: bool = False,
        seed: int | None = None,
        profile: ProfileSource = None,
        channels: ChannelCount = None,
        nvr_fraction: float = 0.0,
        nvr_profile: ProfileSource = "generic-nvr",
        nvr_channels: int | None = None,
        answer_max_message: int = 1400,
        answer_gap: float = 0.0,
        answer_window: int = 1,
        max_answers: int = 65536,
    ) -> None:
        if devices < 1:
            raise ConfigurationError("devices must be at least 1")
        self._rss0 = _rss_bytes()  # before the fleet: its records count too
        target = parse_target(server)
        host, port = target.host, target.port
        self.transport = (transport or target.transport).lower()
        if self.transport not in ("udp", "tcp"):
            raise ConfigurationError("transport must be 'udp' or 'tcp'")
        if not 0.0 <= churn <= 1.0:
            raise ConfigurationError("churn must be a fraction in [0, 1]")
        if churn_mode not in ("unregister", "silent"):
            raise ConfigurationError("churn_mode must be 'unregister' or 'silent'")
        if rate is not None and rate < 0:
            raise ConfigurationError("rate must be positive (or None: all at once)")
        self.faults = Faults.coerce(faults)
        if self.faults.total() > 1.0 + 1e-9:
            raise ConfigurationError("fault fractions add up to more than 1")
        if sockets < 0:
            raise ConfigurationError("sockets must be >= 0 (0: one socket per device)")
        if timeline is not None and timeline <= 0:
            raise ConfigurationError("timeline must be a positive number of seconds (or None)")
        if not 0.0 <= nvr_fraction <= 1.0:
            raise ConfigurationError("nvr_fraction must be a fraction in [0, 1]")
        self.devices = devices
        self.server = f"{self.transport}://{host if ':' not in host else '[' + host + ']'}:{port}"
        self.server_host = host
        self.server_port = port
        self.server_id = server_id
        self.rate = rate if rate else None
        self.schedule = sorted(schedule) if schedule else None
        self.duration = duration
        self.churn = churn
        self.churn_offline = churn_offline
        self.churn_mode = churn_mode
        self.t1 = t1
        self.unregister = unregister
        self.unregister_rate = unregister_rate
        self.settle_timeout = settle_timeout if settle_timeout is not None else 64 * t1 + 1
        self.no_answer_timeout = no_answer_timeout
        self.keepalive_interval = keepalive_interval or 0.0
        self.expires = expires
        self._password = password
        self._ids = ids
        self._id_prefix = id_prefix
        self._id_start = id_start
        self._sockets_wanted = sockets
        self._local_host = local_host
        self._local_hosts = list(local_hosts) if local_hosts else None
        self._local_port = local_port
        self._trace_id = trace
        self._on_trace = on_trace
        self._on_events = on_events
        self._raise_fd_limit = raise_fd_limit
        self._seed = seed
        self._rng = random.Random(seed)
        self._fleet = _core.Fleet(
            server_id=server_id,
            domain=domain,
            request_uri=request_uri,
            server_host=host,
            server_port=port,
            transport=self.transport,
            password=password if isinstance(password, str) else "",
            user_agent=user_agent,
            gb_version=gb_version,
            capability_header=capability_header,
            expires=expires,
            refresh_fraction=refresh_fraction,
            jitter=jitter,
            retry_interval=round(retry_interval * 1000),
            keepalive_interval=round(self.keepalive_interval * 1000),
            keepalive_max_missed=keepalive_timeout_count,
            t1=round(t1 * 1000),
            t2=round(t2 * 1000),
            seed=seed,
            capacity=devices,
            answer_max_message=answer_max_message,
            answer_gap=round(answer_gap * 1000),
            answer_window=answer_window,
            max_answers=max_answers,
        )
        self._timeline_step = timeline
        self._timeline: list[TimelinePoint] = []
        self._timeline_next = 0.0
        self._timeline_last: tuple[float, int, int, int, int] | None = None
        # latencies (ms) completed since the last timeline point, by kind
        self._window: dict[str, list[int]] = {"registered": [], "refreshed": [],
                                              "keepalive_answered": []}
        # pump/tick/service hand every event back (a tuple each) when someone
        # wants them: on_events, or the timeline's latency percentiles
        self._fleet.keep_events(on_events is not None or timeline is not None)
        self._camera = (profile, channels, nvr_fraction, nvr_profile, nvr_channels)
        self._nvrs = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._driver: Driver | None = None
        self._convert: FleetEvents | None = None
        self._socks: list[socket.socket] = []
        self._tcp_fd: int | None = None  # the TCP pump's epoll fd
        self._trace_index = -1
        self._opened = False
        self._closed = False
        self._stopping = False
        self._phase = "idle"
        self._started = 0
        self._t0: float | None = None
        self._first_send: float | None = None
        self._cpu0 = 0.0
        self._samples: list[tuple[float, int, int]] = []
        self._ramp_samples: list[tuple[float, int]] = []
        self._settled_at: float | None = None
        self._settled_registered = 0
        self._ramp_done_at: float | None = None
        self._churn_offline_n = 0
        self._churn_returned = 0
        self._churn_skipped = 0
        self._fault_counts: dict[str, int] = {}
        self._source_port_devs: list[int] = []
        self._outcome: Outcome | None = None
        self._report: SimulatorReport | None = None
        self._error: str | None = None
        self._started_unix: float | None = None
        self._fds: dict[int, socket.socket] = {}
        self._drained: dict[int, int] = {}
        self._socket_count = 0
        self._add_devices()

    # ---- setup ---------------------------------------------------------------

    def _add_devices(self) -> None:
        ids = self._ids
        fleet = self._fleet
        n = self.devices
        if ids is None:
            prefix = self._id_prefix
            digits = _ID_DIGITS - len(prefix)
            if not prefix.isdigit() or digits < 1:
                raise ConfigurationError("id_prefix must be digits, shorter than 20")
            base = int(prefix) * 10 ** digits + self._id_start
            last = base + n - 1
            if len(str(last)) > _ID_DIGITS or len(str(base)) > _ID_DIGITS:
                raise ConfigurationError(f"{n} devices from {self._id_start} do not fit in "
                                 f"{_ID_DIGITS}-digit IDs with prefix {prefix}")
            text = f"{base:0{_ID_DIGITS}d}"
            # the core counts in 64 bits: keep 18 digits as the number
            fleet.add_serial(text[:2], int(text[2:]), n, 18)
            self._id_base: int | None = base
        else:
            self._id_base = None
            for i in range(n):
                fleet.add(ids(i) if callable(ids) else ids[i])
        pw = self._password
        if callable(pw):
            for i in range(n):
                fleet.set_password(i, pw(fleet.device_id(i)))
        self._set_cameras()
        if self._trace_id is not None:
            self._trace_index = self.index_of(self._trace_id)
            fleet.trace_device(self._trace_index)

    def _set_cameras(self) -> None:
        """Profiles and channels for every device; channel serials in blocks
        one after another, so no channel ID repeats in the fleet."""
        profile, channels, nvr_fraction, nvr_profile, nvr_channels = self._camera
        fleet, n = self._fleet, self.devices
        table = ProfileTable(fleet)
        camera, nvr = table.index(profile), table.index(nvr_profile)
        if channels is None and not nvr_fraction:
            fleet.set_camera_range(0, n, camera, -1, 1)
            return
        # the profiles' own channel counts, as the core has them
        fleet.set_camera(0, nvr, -1 if nvr_channels is None else nvr_channels)
        nvr_count = int(fleet.channels(0))
        fleet.set_camera(0, camera)
        camera_count = int(fleet.channels(0))
        # the NVR slice spread evenly: device i is one when the share crosses
        is_nvr = [int((i + 1) * nvr_fraction) > int(i * nvr_fraction) for i in range(n)]
        configured: dict[int, Sequence[str | ChannelConfig]] = {}
        counts: list[int] = []
        for i in range(n):
            if is_nvr[i]:
                counts.append(nvr_count)
            elif callable(channels):
                spec = channels(i)
                if isinstance(spec, int):
                    counts.append(int(spec))
                else:  # names / ChannelConfig, one channel each
                    configured[i] = list(spec)
                    counts.append(len(configured[i]))
            else:
                counts.append(camera_count if channels is None else int(channels))
        if any(not 0 <= c <= 1024 for c in counts):
            raise ConfigurationError("a device's channel count is outside 0..1024")
        fleet.set_camera_range(0, n, camera, counts, 1)
        base = 1
        for i, c in enumerate(counts):  # the NVRs keep the block given out above
            if is_nvr[i]:
                fleet.set_camera(i, nvr, c, base)
            base += c
        for i, configs in configured.items():  # only these cost memory
            for k, config in enumerate(configs):
                configure_channel(fleet, i, k, config)
        self._nvrs = sum(is_nvr)

    def channels(self, device_id: str) -> Channels:
        """A simulated device's channels (set a channel's ``status`` to turn it
        ON/OFF and notify the device's Catalog subscribers)."""
        return Channels(self._fleet, self._channel_status, self.index_of(device_id))

    def set_channel_status(self, device_id: str, channel: int, on: bool) -> None:
        """Turn a channel ON or OFF (a NOTIFY to the Catalog subscribers)."""
        self._channel_status(self.index_of(device_id), channel, on)

    def _channel_status(self, dev: int, ch: int, on: bool) -> None:
        now = self._now() if self._driver is not None else 0
        self._fleet.set_channel_status(dev, ch, on, now)
        self._deliver(self._fleet.service() if self._opened else None)

    def raise_alarm(self, device_id: str, channel: int | None = 0, *,
                    alarm_input: int | None = None, priority: int = 1, method: int = 5,
                    alarm_type: int = 0, description: str = "") -> int:
        """Raise an alarm on a device (GB/T 28181 §9.4; see
        :meth:`gbsip.Device.raise_alarm`).  Returns the requests sent."""
        target = alarm_target(channel if alarm_input is None else None, alarm_input)
        now = self._now() if self._driver is not None else 0
        try:
            n = int(self._fleet.raise_alarm(self.index_of(device_id), target, priority, method,
                                            alarm_type, description, now))
        except IndexError as exc:
            raise ConfigurationError(str(exc)) from exc
        self._deliver(self._fleet.service() if self._opened else None)
        return n

    def index_of(self, device_id: str) -> int:
        """The index of a device by its ID (ValueError when not simulated)."""
        if self._id_base is not None and device_id.isdigit():
            i = int(device_id) - self._id_base
            if 0 <= i < self.devices and self._fleet.device_id(i) == device_id:
                return i
        else:
            for i in range(self.devices):
                if self._fleet.device_id(i) == device_id:
                    return i
        raise ValueError(f"device {device_id} is not one of the simulated devices")

    def device_id(self, index: int) -> str:
        return str(self._fleet.device_id(index))

    def _assign_faults(self) -> None:
        f = self.faults
        order = list(range(self.devices))
        self._rng.shuffle(order)
        at = 0
        counts: dict[str, int] = {}
        for kind in ("drop_responses", "wrong_password", "skip_keepalives",
                     "change_source_port"):
            k = round(getattr(f, kind) * self.devices)
            chosen = order[at:at + k]
            at += k
            counts[kind] = len(chosen)
            for i in chosen:
                if kind == "drop_responses":
                    self._fleet.drop_responses(i, f.drop_count)
                elif kind == "wrong_password":
                    pw = self._password
                    right = pw if isinstance(pw, str) else pw(self.device_id(i))
                    self._fleet.set_password(i, right + "-wrong")
                elif kind == "skip_keepalives":
                    self._fleet.skip_keepalives(i, f.skip_count)
                else:
                    self._source_port_devs.append(i)
        self._fault_counts = {k: v for k, v in counts.items() if v}

    async def _resolve(self) -> tuple[str, int]:
        host = self.server_host
        try:
            ipaddress.ip_address(host)
            return host, self.server_port
        except ValueError:
            pass
        assert self._loop is not None
        try:
            infos = await self._loop.getaddrinfo(host, self.server_port,
                                                 type=socket.SOCK_DGRAM)
        except OSError as exc:
            raise SimulatorError(f"cannot resolve {host}: {exc.strerror or exc}") from exc
        return str(infos[0][4][0]), self.server_port

    async def start(self) -> None:
        """Resolve the server and open the sockets (``async with`` does it;
        also called :meth:`open`)."""
        if self._opened:
            return
        self._loop = asyncio.get_running_loop()
        clock = Clock(self._loop)
        self._driver = Driver(clock, deadline=self._fleet.next_deadline,
                              fire=self._fire, flush=self._flush)
        self._convert = FleetEvents(self._fleet, clock)
        now = self._driver.now()
        self._fleet.set_wall_clock(now, round(clock.unix(now) * 1000))
        ip, port = await self._resolve()
        self._server_ip = ip
        v6 = ":" in ip
        self._assign_faults()
        if self.transport == "udp":
            n = self._sockets_wanted or self.devices
            n = max(1, min(n, self.devices))
            local = self._local_host or ("::1" if v6 else "127.0.0.1")
            if not self._is_loopback(ip) and self._local_host is None:
                local = "::" if v6 else "0.0.0.0"
            try:
                for k in range(n):
                    self._socks.append(self._bind_udp(local, v6, k))
            except OSError as exc:
                self._close_sockets()
                where = f"{local}:{self._local_port + len(self._socks)}" if self._local_port \
                    else local
                hint = ("choose another local port, or 0" if exc.errno == 98
                        else "raise the open-files limit (ulimit -n) or use fewer sockets")
                raise SimulatorError(f"cannot open UDP socket {len(self._socks) + 1} of {n} "
                                     f"on {where} ({exc.strerror or exc}): {hint}") from exc
            self._socket_count = len(self._socks)
            self._fleet.udp_attach([s.fileno() for s in self._socks])
            self._fleet.set_dest_addr(0, ip, port)
            if local in ("0.0.0.0", "::"):
                # Via/Contact need a routable address: the one toward the server
                self._fix_wildcard_local(ip, port, v6)
            for s in self._socks:
                self._loop.add_reader(s.fileno(), self._on_readable, s.fileno())
        else:
            room = _fdlimit.make_room(self.devices, raise_limit=self._raise_fd_limit)
            if room < self.devices:
                raise SimulatorError(_fdlimit.shortage(f"{self.devices} TCP devices",
                                                       self.devices))
            self._fleet.set_dest_addr(0, ip, port)
            self._tcp_fd = self._fleet.tcp_open(
                self._tcp_sources(ip, v6), max_connections=self.devices + 16,
                incomplete_ms=round(64 * self.t1 * 1000))
            self._loop.add_reader(self._tcp_fd, self._on_tcp_readable)
        self._opened = True

    async def open(self) -> None:
        """The same as :meth:`start`."""
        await self.start()

    def _tcp_sources(self, ip: str, v6: bool) -> list[str]:
        """Where the devices connect from: device i from sources[i % n].  A
        loopback server gets one 127.0.0.x per 4,000 devices, so that no
        source runs short of ephemeral ports toward the one server port (with
        IP_BIND_ADDRESS_NO_PORT, connect() searches the source's free ports:
        the fewer are taken, the shorter the search)."""
        if self._local_hosts:
            return list(self._local_hosts)
        if self._local_host:
            return [self._local_host]
        if not v6 and ip.startswith("127."):
            need = -(-self.devices // _TCP_PORTS_PER_HOST)
            return [f"127.0.0.{k + 1}" for k in range(min(need, 254))]
        if self._is_loopback(ip):
            return ["::1"]
        return ["::" if v6 else "0.0.0.0"]  # the kernel's choice

    @staticmethod
    def _is_loopback(ip: str) -> bool:
        try:
            return ipaddress.ip_address(ip).is_loopback
        except ValueError:
            return False

    def _bind_udp(self, host: str, v6: bool, k: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                sock.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
            report_errors(sock)  # ICMP port unreachable: an error at once, not a timeout
            sock.bind((host, self._local_port + k if self._local_port else 0))
        except OSError:
            sock.close()
            raise
        self._fds[sock.fileno()] = sock
        return sock

    def _fix_wildcard_local(self, ip: str, port: int, v6: bool) -> None:
        probe = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.connect((ip, port))
            addr = probe.getsockname()[0]
        finally:
            probe.close()
        h = self._fleet.local_host(addr)
        for i in range(self.devices):
            s = self._socks[i % len(self._socks)]
            self._fleet.set_local(i, h, s.getsockname()[1])

    async def close(self) -> None:
        """Close sockets and connections (devices still registered are left
        to expire: call :meth:`run` with ``unregister=True`` to unregister)."""
        if self._closed:
            return
        self._closed = True
        if self._driver is not None:
            self._driver.close()
        self._close_sockets()
        if self._tcp_fd is not None:
            assert self._loop is not None
            self._loop.remove_reader(self._tcp_fd)
            self._tcp_fd = None
            self._fleet.tcp_shutdown()

    @property
    def on_events(self) -> Callable[[list[DeviceEvent]], object] | None:
        """Called with each batch of device events (see the class doc)."""
        return self._on_events

    @on_events.setter
    def on_events(self, callback: Callable[[list[DeviceEvent]], object] | None) -> None:
        self._on_events = callback
        self._fleet.keep_events(callback is not None or self._timeline_step is not None)

    def stop(self) -> None:
        """End the run early: no more devices are started, the hold ends
        now, and :meth:`run` settles, unregisters the devices started so far
        and returns its report.  Safe to call at any time, more than once."""
        self._stopping = True

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stopping

    def _close_sockets(self) -> None:
        self._fds.clear()
        for s in self._socks:
            if self._loop is not None:
                try:
                    self._loop.remove_reader(s.fileno())
                except (ValueError, OSError):
                    pass
            s.close()
        self._socks.clear()

    # ---- the clock and the core -------------------------------------------------

    def _now(self) -> int:
        assert self._driver is not None
        return self._driver.now()

    def _on_readable(self, fd: int) -> None:
        if self._closed:
            return
        now = self._now()
        self._deliver(self._fleet.pump_udp(fd, now))
        # ICMP errors wait in the error queue too, and keep the socket ready
        # while they do: empty it, at most every 5 ms (a syscall, ~2 µs)
        if now - self._drained.get(fd, -10) >= 5:
            self._drained[fd] = now
            sock = self._fds.get(fd)
            if sock is not None:
                drain_errors(sock)

    def _on_tcp_readable(self) -> None:
        """The pump's epoll fd is readable: connections completed, answers
        read and fed to the core, lost connections reported, the queue
        sent, in one C call."""
        if self._closed:
            return
        self._deliver(self._fleet.pump_tcp(self._now()))

    def _fire(self, now: int) -> None:
        """The driver's timer: the core's timers (and the TCP pump's), the
        output sent in C."""
        self._deliver(self._fleet.tick(now), settle=False)

    def _deliver(self, evs: list[FleetEventTuple] | None, settle: bool = True) -> None:
        """After input reached the core: hand its events to ``on_events``
        (when asked for), then let the driver flush and re-arm."""
        if evs:
            if self._timeline_step is not None:
                window = self._window
                for raw in evs:
                    lat = window.get(raw[1])
                    if lat is not None:
                        lat.append(raw[5])
            if self._convert is not None and self._on_events is not None:
                convert, name = self._convert.convert, self._fleet.device_id
                self._on_events([convert(raw, name(raw[0])) for raw in evs])
        if settle and self._driver is not None:
            self._driver.settle()

    def _flush(self) -> None:
        """The driver's flush: the trace (the output went out in C)."""
        if self._trace_index >= 0:
            for direction, data in self._fleet.pop_trace():
                self._emit_trace(direction, data)
        if self._first_send is None and self._started:
            assert self._loop is not None
            self._first_send = self._loop.time()

    def _emit_trace(self, direction: str, data: bytes) -> None:
        if self._on_trace is not None:
            self._on_trace(direction, data)

    # ---- the run -----------------------------------------------------------------

    def _rate_at(self, elapsed: float) -> float | None:
        if self.schedule:
            r = self.schedule[0][1]
            for t, v in self.schedule:
                if elapsed >= t:
                    r = v
            return r
        return self.rate

    def _start(self, first: int, count: int) -> None:
        if count <= 0:
            return
        if self.transport == "udp":
            self._fleet.start_range(first, count, self._now())
            self._deliver(self._fleet.service())
        else:
            self._deliver(self._fleet.tcp_start_range(first, count, self._now()))
        self._started = first + count

    async def _ramp(self) -> None:
        assert self._loop is not None and self._t0 is not None
        loop = self._loop
        allowed = 0.0
        last = self._t0
        while self._started < self.devices and not self._closed and not self._stopping:
            now = loop.time()
            rate = self._rate_at(now - self._t0)
            if rate is None:
                allowed = float(self.devices)
            else:
                # a late wake-up must not turn into a burst above the rate:
                # at most 50 ms of backlog is caught up
                allowed = min(allowed + rate * (now - last), self._started + rate * 0.05)
            last = now
            # at most 20 ms worth per step, so bursts stay bounded
            batch = min(int(allowed) - self._started, self.devices - self._started,
                        max(1, int((rate or 1e9) * 0.02)) if rate else 20000)
            if batch > 0:
                self._start(self._started, batch)
            if self._started < self.devices:
                await asyncio.sleep(0.005)
        self._ramp_done_at = loop.time()

    async def _churn_task(self) -> None:
        assert self._loop is not None and self._t0 is not None
        loop = self._loop
        k = round(self.churn * self.devices)
        if k == 0:
            return
        victims = self._rng.sample(range(self.devices), k)
        begin = max(loop.time(), self._ramp_done_at or loop.time())
        end = self._t0 + self.duration - self.churn_offline - 1.0
        span = max(0.0, end - begin)
        times = sorted(begin + self._rng.random() * span for _ in range(k))
        back: list[tuple[float, int]] = []
        j = 0
        while (j < k or back) and not self._closed and not self._stopping:
            now = loop.time()
            ms = self._now()
            while j < k and times[j] <= now:
                dev = victims[j]
                j += 1
                state = self._fleet.state(dev)
                if state not in ("registered", "refreshing"):
                    self._churn_skipped += 1  # not online: nothing to take away
                    continue
                ok = (self._fleet.stop(dev, ms) if self.churn_mode == "unregister"
                      else self._fleet.abandon(dev, ms))
                if ok:
                    if self.transport == "tcp" and self.churn_mode == "silent":
                        self._fleet.tcp_close(dev, False, ms)  # powered off: no goodbye
                    self._churn_offline_n += 1
                    back.append((now + self.churn_offline, dev))
            still = []
            for t, dev in back:
                if t <= now and self._fleet.state(dev) in ("unregistered", "failed", "idle"):
                    if self.transport == "tcp":
                        self._deliver(self._fleet.tcp_start_range(dev, 1, ms))
                    else:
                        self._fleet.start(dev, ms)
                    self._churn_returned += 1
                elif t <= now - 64 * self.t1 - 5:
                    continue  # stuck unregistering: give up on this one
                else:
                    still.append((t, dev))
            back = still
            self._deliver(self._fleet.service())
            await asyncio.sleep(0.02)

    def _change_source_ports(self) -> None:
        if not self._source_port_devs:
            return
        if self.transport == "udp":
            n = len(self._socks)
            if n < 2:
                # one socket: open a second one for the rebinding
                sock = self._bind_udp(self._socks[0].getsockname()[0], ":" in self._server_ip,
                                      1)
                self._socks.append(sock)
                keep = [s.fileno() for s in self._socks]
                locals_ = [self._fleet_local(i) for i in range(self.devices)]
                self._fleet.udp_attach(keep)
                for i, (h, p) in enumerate(locals_):
                    self._fleet.set_local(i, h, p)
                for i in range(self.devices):
                    self._fleet.set_socket(i, 0)
                self._fleet.set_dest_addr(0, self._server_ip, self.server_port)
                assert self._loop is not None
                self._loop.add_reader(sock.fileno(), self._on_readable, sock.fileno())
                n = 2
            for i in self._source_port_devs:
                self._fleet.set_socket(i, (i % n + 1) % n)
        else:
            now = self._now()
            for i in self._source_port_devs:  # the next message reconnects
                self._fleet.tcp_close(i, True, now)
            self._deliver(self._fleet.service())

    def _fleet_local(self, i: int) -> tuple[int, int]:
        s = self._socks[i % len(self._socks)]
        return self._fleet.local_host(s.getsockname()[0]), s.getsockname()[1]

    def _check_answers(self) -> None:
        """Give up early when the server never answers (CLI's friendly error)."""
        if self.no_answer_timeout is None or self._first_send is None:
            return
        assert self._loop is not None
        s = self._fleet.stats()
        if s["responses"]:
            return
        waited = self._loop.time() - self._first_send
        io = self._fleet.sim_stats()["io"]
        tcp = self._fleet.tcp_stats()
        if tcp and tcp["connect_failed"] and tcp["connect_failed"] >= self._started:
            raise SimulatorError(f"cannot connect to {self.server}: "
                                 f"{os.strerror(tcp['last_errno'])}")
        if io["icmp_errors"] and waited > min(self.t1, self.no_answer_timeout):
            raise SimulatorError(f"no answer from {self.server}: port unreachable "
                                 "(is the platform running on that port?)")
        if waited > self.no_answer_timeout:
            raise SimulatorError(f"no answer from {self.server} in {waited:.0f} s "
                                 "(is the platform running? check --server and firewalls)")

    async def run(self, progress: Callable[[SimulatorStats], None] | None = None,
                  interval: float = 1.0) -> SimulatorReport:
        """Ramp up, hold for ``duration`` (counted from the first REGISTER),
        churn and inject faults on the way, wait until every device has an
        outcome, unregister everyone; returns the final report.

        Raises :class:`SimulatorError` when the run cannot go on (nothing
        answers); :meth:`report` then still gives what happened, with the
        reason in ``error``."""
        await self.start()
        assert self._loop is not None
        loop = self._loop
        self._cpu0 = _cpu_seconds()
        self._t0 = loop.time()
        self._started_unix = time.time()
        self._phase = "ramp"
        self._timeline_point(self._t0)  # the start: everything at zero
        ramp = loop.create_task(self._ramp())
        churn: asyncio.Task[None] | None = None
        next_progress = self._t0 + interval
        source_ports_done = False
        try:
            while True:
                await asyncio.sleep(0.05)
                now = loop.time()
                self._sample(now)
                try:
                    self._check_answers()
                except SimulatorError as exc:
                    self._error = str(exc)
                    self._phase = "done"
                    self._timeline_point(now)
                    raise
                if ramp.done():
                    ramp.result()
                    if self._phase == "ramp":
                        self._phase = "hold"
                        if self.churn:
                            churn = loop.create_task(self._churn_task())
                    if self._settled_at is None and self._count("registering") == 0 and \
                            self._pending_tcp() == 0:
                        self._settled_at = now
                        self._settled_registered = self._ever_registered()
                    if not source_ports_done and self._settled_at is not None:
                        source_ports_done = True
                        self._change_source_ports()
                if progress is not None and now >= next_progress:
                    next_progress = now + interval
                    progress(self.stats())
                if not ramp.done() or (churn is not None and not churn.done()):
                    continue
                if now - self._t0 < self.duration and not self._stopping:
                    continue
                # settle: every device has an outcome (or the wait is over)
                if self._phase != "settle":
                    self._phase = "settle"
                    settle_until = now + self.settle_timeout
                if (self._count("registering") == 0 and self._pending_tcp() == 0) \
                        or now >= settle_until:
                    break
            if churn is not None:
                churn.result()
            self._outcome = self._outcomes()
            if self.unregister:
                self._phase = "unregister"
                await self._unregister_all(progress, interval)
        finally:
            ramp.cancel()
            if churn is not None:
                churn.cancel()
        self._phase = "done"
        now = loop.time()
        self._sample(now)
        self._timeline_point(now)
        self._report = self.report()
        if progress is not None:
            progress(self.stats())
        return self._report

    def _pending_tcp(self) -> int:
        tcp = self._fleet.tcp_stats()
        return int(tcp["connecting"]) if tcp else 0

    async def _unregister_all(self, progress: Callable[[SimulatorStats], None] | None,
                              interval: float) -> None:
        assert self._loop is not None
        loop = self._loop
        rate = self.unregister_rate or self.rate
        n = self._started  # devices never started have nothing to unregister
        pos = 0
        t = loop.time()
        allowed = 0.0
        while pos < n:
            now = loop.time()
            allowed = n if rate is None else min(allowed + rate * (now - t), pos + rate * 0.05)
            t = now
            k = min(int(allowed) - pos, n - pos)
            if k > 0:
                self._fleet.stop_range(pos, k, self._now())
                pos += k
                self._deliver(self._fleet.service())
            if pos < n:
                await asyncio.sleep(0.005)
                self._sample(loop.time())
        until = loop.time() + 64 * self.t1 + 1
        next_progress = loop.time() + interval
        while self._count("unregistering") and loop.time() < until:
            await asyncio.sleep(0.05)
            self._sample(loop.time())
            if progress is not None and loop.time() >= next_progress:
                next_progress = loop.time() + interval
                progress(self.stats())

    # ---- numbers ------------------------------------------------------------------

    def _count(self, state: str) -> int:
        return int(self._fleet.stats()["by_state"][state])

    def _ever_registered(self) -> int:
        return int(self._fleet.sim_stats()["events"]["registered"])

    def _sample(self, now: float) -> None:
        """Every ~50 ms: the counters behind the rates and the ramp's curve;
        a timeline point when one is due."""
        if self._samples and now - self._samples[-1][0] < 0.045:
            return
        s = self._fleet.stats()
        self._samples.append((now, int(s["registrations"]) + int(s["refreshes"]),
                              int(s["keepalives_answered"])))
        if len(self._samples) > 4096:
            del self._samples[:2048]
        if self._settled_at is None:  # the ramp's curve, kept whole
            self._ramp_samples.append((now, int(s["registrations"])))
        if self._timeline_step is not None and now >= self._timeline_next:
            self._timeline_point(now)

    def _rate_window(self) -> float:
        """Seconds the live rates average over: a whole number of keepalive
        intervals and at least 5 s (at most 60 s), so traffic that comes in
        waves, as keepalives do, reads as the steady rate it is."""
        ka = self.keepalive_interval
        if ka <= 0:
            return 5.0
        return min(60.0, ka * math.ceil(5.0 / ka))

    def _rate(self, idx: int, window: float) -> float:
        if len(self._samples) < 2:
            return 0.0
        t1, *v1 = self._samples[-1]
        for t0, *v0 in reversed(self._samples[:-1]):
            if t1 - t0 >= window:
                break
        if t1 <= t0:
            return 0.0
        return (v1[idx] - v0[idx]) / (t1 - t0)

    # ---- the timeline -----------------------------------------------------------

    def timeline(self) -> list[TimelinePoint]:
        """One point per ``timeline`` seconds of the run so far (empty without
        ``Simulator(timeline=...)``): what ``--csv`` writes and ``--report``
        draws.  Past 10,000 points every other one is dropped and the step
        doubles, so memory stays bounded however long the run."""
        return list(self._timeline)

    def _timeline_point(self, now: float) -> None:
        if self._timeline_step is None or self._t0 is None:
            return
        step = self._timeline_step
        self._timeline_next = self._t0 + step * (math.floor((now - self._t0) / step) + 1)
        s = self._fleet.stats()
        sim = self._fleet.sim_stats()
        by_state = s["by_state"]
        counts = (now, int(s["registrations"]) + int(s["refreshes"]),
                  int(s["keepalives_answered"]), int(s["failures"]) + int(s["timeouts"]),
                  int(s["keepalives_missed"]))
        last = self._timeline_last or (self._t0, 0, 0, 0, 0)
        self._timeline_last = counts
        dt = max(now - last[0], 1e-9)

        def per_s(k: int) -> float:
            return round((counts[k] - last[k]) / dt, 1)

        lat = {kind: sorted(v) for kind, v in self._window.items()}
        for v in self._window.values():
            v.clear()
        reg, ref, msg = lat["registered"], lat["refreshed"], lat["keepalive_answered"]

        def pct(values: list[int], q: float) -> float | None:
            return _percentile(values, q) if values else None

        point: TimelinePoint = {
            "elapsed": round(now - self._t0, 3),
            "time": round(self._unix(now), 3),
            "phase": self._phase,
            "started": self._started,
            "registered": int(by_state["registered"]) + int(by_state["refreshing"]),
            "ever_registered": int(sim["devices_registered"]),
            "registering": int(by_state["registering"]),
            "failed": int(by_state["failed"]),
            "registrations_per_s": per_s(1),
            "keepalives_per_s": per_s(2),
            "failures_per_s": per_s(3),
            "keepalives_missed_per_s": per_s(4),
            "register_count": len(reg),
            "register_p50": pct(reg, 0.5),
            "register_p95": pct(reg, 0.95),
            "register_p99": pct(reg, 0.99),
            "register_max": float(reg[-1]) if reg else None,
            "refresh_count": len(ref),
            "refresh_p50": pct(ref, 0.5),
            "refresh_p99": pct(ref, 0.99),
            "message_count": len(msg),
            "message_p50": pct(msg, 0.5),
            "message_p95": pct(msg, 0.95),
            "message_p99": pct(msg, 0.99),
            "message_max": float(msg[-1]) if msg else None,
        }
        self._timeline.append(point)
        if len(self._timeline) > _TIMELINE_MAX:
            del self._timeline[::2]
            self._timeline_step = step * 2

    def _unix(self, loop_time: float) -> float:
        """A loop time of this run as Unix time."""
        if self._started_unix is None or self._t0 is None:
            return time.time()
        return self._started_unix + (loop_time - self._t0)

    def _outcomes(self) -> Outcome:
        registered, ever, why, examples = self._fleet.outcomes(20)
        not_started = self.devices - self._started
        if not_started and why.get("idle", 0) >= not_started:
            # stop() before the ramp reached them: not a failure of theirs
            why["idle"] -= not_started
            if not why["idle"]:
                del why["idle"]
            examples = [e for e in examples if e[0] < self._started]
        return {
            "registered": registered,
            "ever_registered": ever,
            "not_started": not_started,
            "not_registered": dict(sorted(why.items(), key=lambda kv: -kv[1])),
            "examples": [
                {"device_id": self.device_id(i), "state": st, "status": status,
                 "reason": reason}
                for i, st, status, reason in examples
            ],
        }

    def _state_counts(self, by_state: Mapping[str, Any]) -> StateCounts:
        return {
            "idle": int(by_state["idle"]),
            "registering": int(by_state["registering"]),
            "registered": int(by_state["registered"]),
            "refreshing": int(by_state["refreshing"]),
            "failed": int(by_state["failed"]),
            "unregistering": int(by_state["unregistering"]),
            "unregistered": int(by_state["unregistered"]),
        }

    def stats(self) -> SimulatorStats:
        """Live numbers: devices by state, rates, failures, latency (ms),
        messages, memory.  Cheap enough to call every second."""
        s = self._fleet.stats()
        sim = self._fleet.sim_stats()
        io = sim["io"]
        tcp = self._fleet.tcp_stats() or {}
        now = self._loop.time() if self._loop else 0.0
        by_state = self._state_counts(s["by_state"])
        rss = _rss_bytes()
        mem = self._fleet.memory()
        window = self._rate_window()
        return {
            "phase": self._phase,
            "elapsed": round(now - self._t0, 3) if self._t0 is not None else 0.0,
            "devices": self.devices,
            "started": self._started,
            "by_state": by_state,
            "registered": by_state["registered"] + by_state["refreshing"],
            "ever_registered": int(sim["devices_registered"]),
            "rates": {
                "registrations_per_s": round(self._rate(0, window), 1),
                "keepalives_per_s": round(self._rate(1, window), 1),
                "window_s": window,
            },
            "totals": {
                "registrations": s["registrations"],
                "refreshes": s["refreshes"],
                "challenges": s["challenges"],
                "failures": s["failures"],
                "timeouts": s["timeouts"],
                "redirects": s["redirects"],
                "unregistrations": s["unregistrations"],
                "keepalives_sent": s["keepalives_sent"],
                "keepalives_answered": s["keepalives_answered"],
                "keepalives_missed": s["keepalives_missed"],
                "keepalives_skipped": s["keepalives_skipped"],
                "keepalive_timeouts": s["keepalive_timeouts"],
            },
            "failures": {
                "by_reason": dict(sim["failures_by_reason"]),
                "by_status": {str(k): v for k, v in sorted(sim["failures_by_status"].items())},
            },
            "latency_ms": sim["latency_ms"],
            "messages": {
                "sent": s["requests_sent"] + s["retransmissions"],
                "requests": s["requests_sent"],
                "retransmitted": s["retransmissions"],
                "received": s["responses"],
                "matched": s["matched"],
                "duplicates": s["duplicates"],
                "strays": s["strays"],
                "dropped_by_fault": s["dropped"],
                "bytes_received": io["rx_bytes"],
                "bytes_sent": io["tx_bytes"],
                "parse_errors": s["parse_errors"],
                "udp_send_dropped": io["tx_dropped"],
                "icmp_errors": io["icmp_errors"],
                "sendmmsg_calls": io["tx_calls"],
                "recvmmsg_batches": io["rx_batches"],
                "tcp_connect_failures": tcp.get("connect_failed", 0),
                "tcp_connections": tcp.get("open", 0),
                "tcp_connections_lost": tcp.get("lost", 0),
            },
            "camera": {k: s[k] for k in _CAMERA_STATS},
            "memory": {
                "rss_bytes": rss,
                "rss_delta_bytes": rss - self._rss0,
                "fleet_state_bytes": mem["state_bytes"],
                "bytes_per_device_core": mem["bytes_per_device"],
                "camera_bytes": mem["camera_bytes"],
            },
        }

    def _peak_rate(self, achieved: float | None) -> float:
        """The highest registration rate over a window of at least 1 s of
        the ramp; the whole ramp is such a window (when it took 1 s or
        more: :meth:`report` gives no peak otherwise), so never below the
        achieved rate."""
        curve = [(self._t0 or 0.0, 0), *self._ramp_samples]
        peak = achieved or 0.0
        j = 0
        for t_a, n_a in curve:
            j = max(j, 1)
            while j < len(curve) and curve[j][0] - t_a < 1.0:
                j += 1
            if j == len(curve):
                break
            t_b, n_b = curve[j]
            peak = max(peak, (n_b - n_a) / (t_b - t_a))
        return round(peak, 1)

    def report(self) -> SimulatorReport:
        """The final report (JSON-serialisable, see docs/simulate.md); before
        :meth:`run` ends, or after it failed, what happened so far."""
        if self._report is not None:
            return self._report
        st = self.stats()
        outcome = self._outcome or self._outcomes()
        now = self._loop.time() if self._loop is not None else 0.0
        t0 = self._t0 if self._t0 is not None else now
        elapsed = now - t0
        cpu = _cpu_seconds() - self._cpu0 if self._t0 is not None else 0.0
        curve = self._ramp_samples
        total = self._settled_registered
        t_all = next((t for t, n in curve if n >= total), None) if total else None
        t_95 = next((t for t, n in curve if n >= 0.95 * total), None) if total else None
        achieved = round(total / (t_all - t0), 1) if t_all and t_all > t0 else None
        sim = self._fleet.sim_stats()
        faults: dict[str, float] = dict(asdict(self.faults))
        report: SimulatorReport = {
            "gbsip": __version__,
            "server": self.server,
            "transport": self.transport,
            "devices": self.devices,
            "started": self._started,
            "stopped": self._stopping,
            "ok": outcome["registered"] == self._started > 0 and self._error is None,
            "error": self._error,
            "started_at": iso_time(self._started_unix) if self._started_unix else None,
            "config": {
                "server_id": self.server_id,
                "rate": self.rate,
                "schedule": self.schedule,
                "duration": self.duration,
                "expires": self.expires,
                "keepalive_interval": self.keepalive_interval,
                "churn": self.churn,
                "churn_mode": self.churn_mode,
                "faults": faults,
                "sockets": self._socket_count if self.transport == "udp" else None,
                "first_device": self.device_id(0),
                "last_device": self.device_id(self.devices - 1),
            },
            "result": outcome,
            "ramp": {
                "target_rate": self.rate,
                "registered": total,
                "seconds": round(t_all - t0, 3) if t_all else None,
                "achieved_rate": achieved,
                "seconds_95": round(t_95 - t0, 3) if t_95 else None,
                "achieved_rate_95": round(0.95 * total / (t_95 - t0), 1)
                if t_95 and t_95 > t0 else None,
                "peak_rate": self._peak_rate(achieved)
                if t_all and t_all - t0 >= PEAK_WINDOW_S else None,
            },
            "totals": st["totals"],
            "failures": st["failures"],
            "latency_ms": st["latency_ms"],
            "messages": st["messages"],
            "camera": dict(st["camera"], nvrs=self._nvrs),
            "churn": {"offline": self._churn_offline_n, "returned": self._churn_returned,
                      "skipped_not_online": self._churn_skipped},
            "faults": self._fault_counts,
            "unregistration": {
                "unregistered": st["by_state"]["unregistered"],
                "by_reason": dict(sim["unregistrations_by_reason"]),
            },
            "final_states": st["by_state"],
            "elapsed": round(elapsed, 3),
            "cpu_seconds": round(cpu, 3),
            "cpu_percent": round(100 * cpu / elapsed, 1) if elapsed > 0 else 0.0,
            "memory": {
                **st["memory"],
                "bytes_per_device": round(st["memory"]["rss_delta_bytes"] / self.devices, 1),
            },
        }
        return report
