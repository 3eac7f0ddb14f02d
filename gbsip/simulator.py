"""Many GB/T 28181 cameras from one process: ``gbsip.Simulator``.

Every device's state lives in the C core (``gbsip._core.Fleet``: about 300
bytes a device, one timer heap); this module owns the sockets, the ramp, the
churn and the clock.  Over UDP the devices share a pool of sockets and the
core receives, answers and sends in batches (``recvmmsg``/``sendmmsg``), so
Python wakes once per batch, never per device; events are folded into
counters and latency histograms in C.  Over TCP each device has its own
connection (2022 §9.1.1 f), spread over several loopback source addresses
when one would run out of ports.

    async with Simulator(1000, server="udp://127.0.0.1:5060", password="12345678") as sim:
        report = await sim.run()

Works the same on asyncio and uvloop.
"""
from __future__ import annotations

import asyncio
import ipaddress
import os
import random
import resource
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Union

from gbsip import _core
from gbsip._address import parse_target
from gbsip._drive import Clock, Driver, Lifetime, SIPStream
from gbsip._version import __version__
from gbsip.camera import Channels, ProfileSource, ProfileTable, alarm_target
from gbsip.device import FleetEvents, FleetEventTuple
from gbsip.errors import ConfigurationError, SimulatorError
from gbsip.events import DeviceEvent

__all__ = ["Faults", "Simulator", "SimulatorError", "DEFAULT_ID_PREFIX"]

#: 34020000 centre, 00 industry, 132 IP camera, 0 network, then the serial.
DEFAULT_ID_PREFIX = "340200000013200"
_ID_DIGITS = 20
_TCP_PORTS_PER_HOST = 25000  # below Linux's default ephemeral range (28232)

PasswordSource = Union[str, Callable[[str], str]]
ChannelCount = Union[int, Callable[[int], int], None]
IdSource = Union[Sequence[str], Callable[[int], str], None]


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

    Every device answers its platform like a camera (queries, controls,
    subscriptions: docs/device.md): ``profile`` says what it answers,
    ``channels`` how many channels each has (an int, or a callable ``index
    -> count``), and ``nvr_fraction`` of the devices (spread evenly) are
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
        seed: int | None = None,
        profile: ProfileSource = None,
        channels: ChannelCount = None,
        nvr_fraction: float = 0.0,
        nvr_profile: ProfileSource = "generic-nvr",
        nvr_channels: int | None = None,
        answer_max_message: int = 1400,
        answer_gap: float = 0.0,
        answer_window: int = 0,
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
        self._camera = (profile, channels, nvr_fraction, nvr_profile, nvr_channels)
        self._nvrs = 0
        if on_events is not None:
            self._fleet.keep_events(True)  # pump/tick/service hand every event back
        self._loop: asyncio.AbstractEventLoop | None = None
        self._driver: Driver | None = None
        self._convert: FleetEvents | None = None
        self._socks: list[socket.socket] = []
        self._links: dict[int, SIPStream] = {}
        self._connecting: set[int] = set()
        self._tcp_hosts: list[str] = []
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
        self._tcp_connect_failures = 0
        self._tcp_connect_error: str | None = None
        self._outcome: dict[str, Any] | None = None
        self._report: dict[str, Any] | None = None
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
        counts = [nvr_count if is_nvr[i]
                  else int(channels(i)) if callable(channels)
                  else camera_count if channels is None else int(channels)
                  for i in range(n)]
        if any(not 0 <= c <= 1024 for c in counts):
            raise ConfigurationError("a device's channel count is outside 0..1024")
        fleet.set_camera_range(0, n, camera, counts, 1)
        base = 1
        for i, c in enumerate(counts):  # the NVRs keep the block given out above
            if is_nvr[i]:
                fleet.set_camera(i, nvr, c, base)
            base += c
        self._nvrs = sum(is_nvr)

    def channels(self, device_id: str) -> Channels:
        """A simulated device's channels (set a channel's ``status`` to turn it
        ON/OFF and notify the device's Catalog subscribers)."""
        return Channels(self, self.index_of(device_id))

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
            self._fleet.udp_attach([s.fileno() for s in self._socks])
            self._fleet.set_dest_addr(0, ip, port)
            if local in ("0.0.0.0", "::"):
                # Via/Contact need a routable address: the one toward the server
                self._fix_wildcard_local(ip, port, v6)
            for s in self._socks:
                self._loop.add_reader(s.fileno(), self._on_readable, s.fileno())
        else:
            if self._local_hosts:
                self._tcp_hosts = list(self._local_hosts)
            elif self._local_host:
                self._tcp_hosts = [self._local_host]
            elif not v6 and ip.startswith("127."):
                need = -(-self.devices // _TCP_PORTS_PER_HOST)
                self._tcp_hosts = [f"127.0.0.{k + 1}" for k in range(min(need, 254))]
            else:
                self._tcp_hosts = ["::1" if v6 else "0.0.0.0"] if self._is_loopback(ip) \
                    else ["::" if v6 else "0.0.0.0"]
        self._opened = True

    async def open(self) -> None:
        """The same as :meth:`start`."""
        await self.start()

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
            sock.bind((host, self._local_port + k if self._local_port else 0))
        except OSError:
            sock.close()
            raise
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
        for link in list(self._links.values()):
            link.close()
        self._links.clear()

    @property
    def on_events(self) -> Callable[[list[DeviceEvent]], object] | None:
        """Called with each batch of device events (see the class doc)."""
        return self._on_events

    @on_events.setter
    def on_events(self, callback: Callable[[list[DeviceEvent]], object] | None) -> None:
        self._on_events = callback
        self._fleet.keep_events(callback is not None)

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
        self._deliver(self._fleet.pump_udp(fd, self._now()))

    def _fire(self, now: int) -> None:
        """The driver's timer: the core's timers, UDP output sent in C."""
        self._deliver(self._fleet.tick(now), settle=False)

    def _deliver(self, evs: list[FleetEventTuple] | None, settle: bool = True) -> None:
        """After input reached the core: hand its events to ``on_events``
        (when asked for), then let the driver flush and re-arm."""
        if evs and self._convert is not None and self._on_events is not None:
            convert, name = self._convert.convert, self._fleet.device_id
            self._on_events([convert(raw, name(raw[0])) for raw in evs])
        if settle and self._driver is not None:
            self._driver.settle()

    def _flush(self) -> None:
        """The driver's flush: TCP output (UDP went out in C), the trace."""
        if self.transport == "tcp":
            self._flush_tcp()
        if self._trace_index >= 0 and self.transport == "udp":
            for direction, data in self._fleet.pop_trace():
                self._emit_trace(direction, data)
        if self._first_send is None and self._started:
            assert self._loop is not None
            self._first_send = self._loop.time()

    def _emit_trace(self, direction: str, data: bytes) -> None:
        if self._on_trace is not None:
            self._on_trace(direction, data)

    # ---- TCP ----------------------------------------------------------------------

    def _flush_tcp(self, drop_dev: int = -1) -> None:
        for dev, _dest, data in self._fleet.pop_datagrams():
            if dev == drop_dev:
                continue
            if dev == self._trace_index:
                self._emit_trace("send", data)
            link = self._links.get(dev)
            if link is None:
                link = self._open_link(dev, start=False)
            link.write(data)

    def _open_link(self, dev: int, start: bool) -> SIPStream:
        """One device's connection, kept for all its traffic (2022 §9.1.1 f);
        writes wait until it is up.  ``start``: register once connected."""
        link = SIPStream(self._tcp_received, on_closed=self._tcp_lost)
        link.tag = dev
        self._links[dev] = link
        self._connecting.add(dev)
        assert self._loop is not None
        self._loop.create_task(self._tcp_connect(link, start))
        return link

    async def _tcp_connect(self, link: SIPStream, start: bool) -> None:
        assert self._loop is not None
        dev = link.tag
        host = self._tcp_hosts[(dev // _TCP_PORTS_PER_HOST) % len(self._tcp_hosts)]
        try:
            await self._loop.create_connection(
                lambda: link, self._server_ip, self.server_port, local_addr=(host, 0))
        except OSError as exc:
            self._connecting.discard(dev)
            link.abort()
            self._tcp_connect_failures += 1
            self._tcp_connect_error = exc.strerror or str(exc)
            if self._links.get(dev) is link:
                del self._links[dev]
            if self._closed:
                return
            now = self._now()
            if start:
                self._fleet.start(dev, now)
            self._fleet.transport_error(dev, now)
            evs = self._fleet.service()
            self._flush_tcp(drop_dev=dev)
            self._deliver(evs)
            return
        self._connecting.discard(dev)
        if self._closed:
            link.close()
            return
        if start:
            self._fleet.set_local(dev, self._fleet.local_host(link.local[0]), link.local[1])
            self._fleet.start(dev, self._now())
            self._deliver(self._fleet.service())

    def _tcp_received(self, link: SIPStream, msgs: list[bytes]) -> None:
        if self._closed:
            return
        if link.tag == self._trace_index:
            for m in msgs:
                self._emit_trace("recv", m)
        self._deliver(self._fleet.feed_many(msgs, self._now()))

    def _tcp_lost(self, link: SIPStream, exc: Exception | None) -> None:
        dev = link.tag
        if self._links.get(dev) is link:
            del self._links[dev]
        if not self._closed:
            self._fleet.transport_error(dev, self._now())
            self._deliver(self._fleet.service())

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
            for dev in range(first, first + count):
                self._open_link(dev, start=True)
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
                        link = self._links.pop(dev, None)
                        if link is not None:
                            link.close()
                    self._churn_offline_n += 1
                    back.append((now + self.churn_offline, dev))
            still = []
            for t, dev in back:
                if t <= now and self._fleet.state(dev) in ("unregistered", "failed", "idle"):
                    if self.transport == "tcp" and dev not in self._links:
                        self._open_link(dev, start=True)
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
            for i in self._source_port_devs:
                link = self._links.pop(i, None)
                if link is not None:
                    link.close()

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
        if self.transport == "tcp" and self._tcp_connect_failures and \
                self._tcp_connect_failures >= self._started:
            raise SimulatorError(f"cannot connect to {self.server}: {self._tcp_connect_error}")
        if io["icmp_errors"] and waited > min(1.0, self.no_answer_timeout):
            raise SimulatorError(f"no answer from {self.server}: port unreachable "
                                 "(is the platform running on that port?)")
        if waited > self.no_answer_timeout:
            raise SimulatorError(f"no answer from {self.server} in {waited:.0f} s "
                                 "(is the platform running? check --server and firewalls)")

    async def run(self, progress: Callable[[dict[str, Any]], None] | None = None,
                  interval: float = 1.0) -> dict[str, Any]:
        """Ramp up, hold for ``duration`` (counted from the first REGISTER),
        churn and inject faults on the way, wait until every device has an
        outcome, unregister everyone; returns the final report."""
        await self.start()
        assert self._loop is not None
        loop = self._loop
        self._cpu0 = _cpu_seconds()
        self._t0 = loop.time()
        self._phase = "ramp"
        ramp = loop.create_task(self._ramp())
        churn: asyncio.Task[None] | None = None
        next_progress = self._t0 + interval
        source_ports_done = False
        try:
            while True:
                await asyncio.sleep(0.05)
                now = loop.time()
                self._sample(now)
                self._check_answers()
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
        self._report = self.report()
        if progress is not None:
            progress(self.stats())
        return self._report

    def _pending_tcp(self) -> int:
        return len(self._connecting)

    async def _unregister_all(self, progress: Callable[[dict[str, Any]], None] | None,
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
        until = loop.time() + 64 * self.t1 + 1
        next_progress = loop.time() + interval
        while self._count("unregistering") and loop.time() < until:
            await asyncio.sleep(0.05)
            if progress is not None and loop.time() >= next_progress:
                next_progress = loop.time() + interval
                progress(self.stats())

    # ---- numbers ------------------------------------------------------------------

    def _count(self, state: str) -> int:
        return int(self._fleet.stats()["by_state"][state])

    def _ever_registered(self) -> int:
        return int(self._fleet.sim_stats()["events"]["registered"])

    def _sample(self, now: float) -> None:
        s = self._fleet.stats()
        self._samples.append((now, int(s["registrations"]) + int(s["refreshes"]),
                              int(s["keepalives_answered"])))
        if len(self._samples) > 4096:
            del self._samples[:2048]
        if self._settled_at is None:  # the ramp's curve, kept whole
            self._ramp_samples.append((now, int(s["registrations"])))

    def _rate(self, idx: int, window: float = 1.0) -> float:
        if len(self._samples) < 2:
            return 0.0
        t1, *v1 = self._samples[-1]
        for t0, *v0 in reversed(self._samples[:-1]):
            if t1 - t0 >= window:
                break
        if t1 <= t0:
            return 0.0
        return (v1[idx] - v0[idx]) / (t1 - t0)

    def _outcomes(self) -> dict[str, Any]:
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

    def stats(self) -> dict[str, Any]:
        """Live numbers: devices by state, rates, failures, latency (ms),
        messages, memory.  Cheap enough to call every second."""
        assert self._loop is not None or not self._opened
        s = self._fleet.stats()
        sim = self._fleet.sim_stats()
        io = sim["io"]
        now = self._loop.time() if self._loop else 0.0
        by_state = {k: int(v) for k, v in s["by_state"].items()}
        rss = _rss_bytes()
        return {
            "phase": self._phase,
            "elapsed": round(now - self._t0, 3) if self._t0 is not None else 0.0,
            "devices": self.devices,
            "started": self._started,
            "by_state": by_state,
            "registered": by_state["registered"] + by_state["refreshing"],
            "rates": {
                "registrations_per_s": round(self._rate(0), 1),
                "keepalives_per_s": round(self._rate(1), 1),
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
                "by_reason": sim["failures_by_reason"],
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
                "tcp_connect_failures": self._tcp_connect_failures,
            },
            "camera": {k: s[k] for k in _CAMERA_STATS},
            "memory": {
                "rss_bytes": rss,
                "rss_delta_bytes": rss - self._rss0,
                "fleet_state_bytes": self._fleet.memory()["state_bytes"],
                "bytes_per_device_core": self._fleet.memory()["bytes_per_device"],
                "camera_bytes": self._fleet.memory()["camera_bytes"],
            },
        }

    def report(self) -> dict[str, Any]:
        """The final report (a JSON-serialisable dict, see docs/simulate.md)."""
        if self._report is not None:
            return self._report
        assert self._loop is not None
        st = self.stats()
        outcome = self._outcome or self._outcomes()
        elapsed = self._loop.time() - (self._t0 or self._loop.time())
        cpu = _cpu_seconds() - self._cpu0
        t0 = self._t0 or 0.0
        curve = self._ramp_samples
        total = self._settled_registered
        t_all = next((t for t, n in curve if n >= total), None) if total else None
        t_95 = next((t for t, n in curve if n >= 0.95 * total), None) if total else None
        peak = 0.0
        w = min(20, len(curve) - 1)  # 1 s windows (samples every 50 ms)
        for a, b in zip(curve, curve[w:] if w > 0 else []):
            if b[0] > a[0]:
                peak = max(peak, (b[1] - a[1]) / (b[0] - a[0]))
        sim = self._fleet.sim_stats()
        report: dict[str, Any] = {
            "gbsip": __version__,
            "server": self.server,
            "transport": self.transport,
            "devices": self.devices,
            "started": self._started,
            "stopped": self._stopping,
            "ok": outcome["registered"] == self._started > 0,
            "config": {
                "server_id": self.server_id,
                "rate": self.rate,
                "schedule": self.schedule,
                "duration": self.duration,
                "expires": self.expires,
                "keepalive_interval": self.keepalive_interval,
                "churn": self.churn,
                "churn_mode": self.churn_mode,
                "faults": {k: v for k, v in asdict(self.faults).items()},
                "sockets": len(self._socks) if self.transport == "udp" else None,
                "first_device": self.device_id(0),
                "last_device": self.device_id(self.devices - 1),
            },
            "result": outcome,
            "ramp": {
                "target_rate": self.rate,
                "registered": total,
                "seconds": round(t_all - t0, 3) if t_all else None,
                "achieved_rate": round(total / (t_all - t0), 1) if t_all and t_all > t0 else None,
                "seconds_95": round(t_95 - t0, 3) if t_95 else None,
                "achieved_rate_95": round(0.95 * total / (t_95 - t0), 1)
                if t_95 and t_95 > t0 else None,
                "peak_rate": round(peak, 1),
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
                "by_reason": sim["unregistrations_by_reason"],
            },
            "final_states": st["by_state"],
            "elapsed": round(elapsed, 3),
            "cpu_seconds": round(cpu, 3),
            "cpu_percent": round(100 * cpu / elapsed, 1) if elapsed > 0 else 0.0,
            "memory": dict(st["memory"], bytes_per_device=round(
                st["memory"]["rss_delta_bytes"] / self.devices, 1)),
        }
        return report

