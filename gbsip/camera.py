"""What a simulated camera says to its platform: profiles and channels.

Every :class:`gbsip.Device` and every device of a :class:`gbsip.Simulator`
answers the platform's queries like a camera (GB/T 28181 §9.3-§9.11, see
docs/device.md): Catalog, DeviceInfo, DeviceStatus, ConfigDownload,
RecordInfo, PresetQuery, DeviceControl, subscriptions.  What it answers
comes from its :class:`Profile` (a vendor's names and quirks) and its
channels; the state lives in the C core, so a million devices cost their
records and a byte a channel, not Python objects.

    dev = gbsip.Device(ID, password="12345678", profile="hikvision-nvr", channels=16)
    dev.channels[3].status = "OFF"     # Catalog subscribers get a NOTIFY
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Union, overload

from gbsip import _core
from gbsip.errors import ConfigurationError

__all__ = [
    "Channel",
    "ChannelConfig",
    "Channels",
    "PRESETS",
    "Preset",
    "Profile",
    "Quirk",
]

# Channel state bits of the core (camera.h GB_CAM_CH_*).
_CH_OFF = 1
_CH_RECORD = 2
_CH_ALARM = 4


class Quirk:
    """Vendor behaviours a :class:`Profile` can switch on (``quirks=``)."""

    #: Catalog items without SafetyWay (Dahua).
    NO_SAFETY_WAY = 1
    #: every answer MESSAGE with CSeq 20 (Dahua).
    CSEQ_20 = 2
    #: every channel's Catalog item names the recorder's own Model (NVRs).
    MODEL_PER_DEVICE = 4
    #: Catalog items carry Longitude/Latitude (a place near Beijing).
    POSITION = 8
    #: Catalog items carry Longitude/Latitude 0.0 (a recorder that does not
    #: know its cameras' places: Dahua NVRs); wins over POSITION.
    POSITION_ZERO = 16


@dataclass(frozen=True)
class ChannelConfig:
    """What one channel's Catalog item says (GB/T 28181-2016 A.2.6.4), where
    it should not be derived from the profile and the device ID.  Every
    field left None keeps the derived value: the profile's name template,
    ``ON``, Parental 0, ParentID the device ID, CivilCode the device ID's
    first ``civil_code_digits`` digits, no Longitude/Latitude (unless the
    profile's POSITION quirk), the profile's PTZType.  Only channels given a
    config cost memory beyond their state byte.

        ChannelConfig("北门", status="OFF", civil_code="11010501",
                      longitude=116.397128, latitude=39.916527, ptz_type=1)
    """

    name: str | None = None
    #: ``"ON"`` or ``"OFF"``
    status: str | None = None
    #: Parental: whether the channel has children of its own
    parental: bool | None = None
    #: ParentID (letters, digits and ``/``, at most 64)
    parent_id: str | None = None
    #: CivilCode (1-20 digits)
    civil_code: str | None = None
    #: degrees, -180..180 (set with ``latitude``)
    longitude: float | None = None
    #: degrees, -90..90 (set with ``longitude``)
    latitude: float | None = None
    #: Info/PTZType (1 dome, 2 half dome, 3 fixed, 4 remote fixed; 0: no Info)
    ptz_type: int | None = None

    def catalog_fields(self) -> dict[str, Any]:
        """The fields for the core's ``set_channel_fields`` (name and status
        aside)."""
        out: dict[str, Any] = {}
        if self.parental is not None:
            out["parental"] = int(bool(self.parental))
        for key in ("parent_id", "civil_code", "longitude", "latitude", "ptz_type"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass(frozen=True)
class Profile:
    """A camera's identity and manners, from a named preset (``base``) with
    any field replaced.  Text fields are ``str`` (Chinese allowed: written
    in GB18030 or UTF-8 as each query's declaration asks); ``None`` keeps
    the preset's value, ``""`` leaves the field out of the answers.

    ``channel_name`` and ``preset_name`` are templates: ``{n}`` is the
    1-based number, ``{nn}``/``{nnn}`` the same on 2 or 3 digits
    (``"Camera {nn}"`` → ``Camera 01``, ``"通道{n}"`` → ``通道1``).
    """

    base: str = "generic"
    device_name: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None
    #: DeviceInfo DeviceType (``"IPC"``, ``"NVR"``, ``"DVR"``...)
    device_type: str | None = None
    owner: str | None = None
    address: str | None = None
    channel_name: str | None = None
    preset_name: str | None = None
    #: the vendor SIP stack's User-Agent ("": the Device's own)
    user_agent: str | None = None
    #: channels a device of this profile has unless told otherwise
    channels: int | None = None
    #: the type code of channel IDs (131 camera, 132 IP camera)
    channel_type: int | None = None
    #: alarm inputs (DeviceStatus Alarmstatus, IDs with type code 134)
    max_alarm: int | None = None
    #: presets a PresetQuery lists
    presets: int | None = None
    #: CivilCode: the device ID's first N digits
    civil_code_digits: int | None = None
    #: Catalog Info/PTZType (1 dome, 2 half dome, 3 fixed, 4 remote fixed; 0 none)
    ptz_type: int | None = None
    #: DeviceInfo MaxCamera (0: left out)
    max_camera: int | None = None
    #: DeviceInfo MaxAlarm shown
    max_alarm_field: bool | None = None
    #: :class:`Quirk` flags
    quirks: int | None = None
    #: Catalog fields every channel of this profile's devices carries
    #: (a :class:`ChannelConfig` without name and status; a channel's own
    #: config wins), kept once per profile, not per device
    channel_fields: ChannelConfig | None = None

    def overrides(self) -> dict[str, Any]:
        """The fields this profile sets over its base preset."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name != "base" and getattr(self, f.name) is not None}

    def resolved(self) -> Preset:
        """The profile as its preset with the overrides applied."""
        base = PRESETS.get(self.base)
        if base is None:
            raise ConfigurationError(f"unknown camera profile {self.base!r} "
                                     f"(known: {', '.join(sorted(PRESETS))})")
        merged = dict(base.fields)
        merged.update(self.overrides())
        return Preset(self.base, merged, base.source)


@dataclass(frozen=True)
class Preset:
    """A named profile of the core: its fields and where its facts come from."""

    name: str
    fields: Mapping[str, Any] = field(repr=False)
    source: str = field(repr=False, default="")

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]


#: The named profiles (``generic``, ``generic-nvr``, ``hikvision-ipc``,
#: ``hikvision-nvr``, ``dahua-ipc``, ``dahua-nvr``), each fact with its
#: public source in ``.source``.
PRESETS: dict[str, Preset] = {
    name: Preset(name, dict(values), source) for name, values, source in _core.Fleet.presets()
}

ProfileSource = Union[str, Profile, None]


def coerce_profile(profile: ProfileSource) -> Profile:
    """A :class:`Profile` from a preset name, a Profile or None (generic)."""
    if profile is None:
        return Profile()
    if isinstance(profile, str):
        if profile not in PRESETS:
            raise ConfigurationError(f"unknown camera profile {profile!r} "
                                     f"(known: {', '.join(sorted(PRESETS))})")
        return Profile(base=profile)
    if isinstance(profile, Profile):
        profile.resolved()  # an unknown base fails here, not in the core
        return profile
    raise ConfigurationError("profile must be a preset name or a gbsip.camera.Profile")


class ProfileTable:
    """The profiles a fleet was given, each added to its core once."""

    __slots__ = ("_fleet", "_index")

    def __init__(self, fleet: _core.Fleet) -> None:
        self._fleet = fleet
        self._index: dict[Profile, int] = {}

    def index(self, profile: ProfileSource) -> int:
        p = coerce_profile(profile)
        if p not in self._index:
            fields = p.overrides()
            chan = fields.pop("channel_fields", None)
            if chan is not None:
                if not isinstance(chan, ChannelConfig) or chan.name is not None \
                        or chan.status is not None:
                    raise ConfigurationError(
                        "camera profile: channel_fields is a gbsip.camera.ChannelConfig "
                        "without name and status (the profile's channel_name names them)")
                fields["channel_fields"] = chan.catalog_fields()
            try:
                self._index[p] = self._fleet.add_profile(p.base, fields)
            except (ValueError, TypeError) as exc:
                raise ConfigurationError(f"camera profile: {exc}") from exc
        return self._index[p]


def configure_channel(fleet: _core.Fleet, dev: int, ch: int, config: ChannelConfig | str,
                      set_status: Callable[[int, int, bool], None] | None = None) -> None:
    """Give channel ch of device dev a name (a str) or a :class:`ChannelConfig`;
    ``set_status`` turns it ON/OFF (the core's own call when None)."""
    if isinstance(config, str):
        config = ChannelConfig(name=config)
    if not isinstance(config, ChannelConfig):
        raise ConfigurationError(f"channel {ch}: a name or a gbsip.camera.ChannelConfig")
    try:
        if config.name is not None:
            fleet.set_channel_name(dev, ch, config.name)
        fleet.set_channel_fields(dev, ch, config.catalog_fields() or None)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"channel {ch}: {exc}") from exc
    if config.status is not None:
        status = str(config.status).upper()
        if status not in ("ON", "OFF"):
            raise ConfigurationError(f"channel {ch}: status is 'ON' or 'OFF'")
        if set_status is None:
            fleet.set_channel_status(dev, ch, status == "ON", 0)
        else:
            set_status(dev, ch, status == "ON")


SetChannelStatus = Callable[[int, int, bool], None]
"""How a channel's owner (Device or Simulator) turns channel ``ch`` of
device ``dev`` ON or OFF: the core's change, then the NOTIFYs flushed."""


class Channel:
    """One channel of a device, read and changed through the core.

    ``id`` and ``name`` as the Catalog gives them; ``status`` ``"ON"`` or
    ``"OFF"`` (setting it notifies the device's Catalog subscribers with a
    NOTIFY, §9.11.2); ``recording`` (RecordCmd) and ``alarm`` (an alarm
    raised and not reset) are read-only.
    """

    __slots__ = ("_fleet", "_set_status", "_dev", "index")

    def __init__(self, fleet: _core.Fleet, set_status: SetChannelStatus, dev: int,
                 index: int) -> None:
        self._fleet = fleet
        self._set_status = set_status
        self._dev = dev
        self.index = index

    def _read(self) -> tuple[str, str, int]:
        return self._fleet.channel(self._dev, self.index)

    @property
    def id(self) -> str:
        return self._read()[0]

    @property
    def name(self) -> str:
        return self._read()[1]

    @name.setter
    def name(self, value: str | None) -> None:
        """A name of its own (None: the profile's template again)."""
        try:
            self._fleet.set_channel_name(self._dev, self.index, value)
        except ValueError as exc:
            raise ConfigurationError(f"channel name: {exc}") from exc

    @property
    def status(self) -> str:
        return "OFF" if self._read()[2] & _CH_OFF else "ON"

    @status.setter
    def status(self, value: str | bool) -> None:
        on = value if isinstance(value, bool) else str(value).upper() == "ON"
        if not isinstance(value, bool) and str(value).upper() not in ("ON", "OFF"):
            raise ConfigurationError("a channel's status is 'ON' or 'OFF'")
        self._set_status(self._dev, self.index, on)

    @property
    def config(self) -> ChannelConfig:
        """The channel's Catalog fields given by the user (None: derived)."""
        cid, name, st = self._read()
        own = self._fleet.channel_fields(self._dev, self.index)
        parental = own.get("parental")
        return ChannelConfig(name=name, status="OFF" if st & _CH_OFF else "ON",
                             parental=None if parental is None else bool(parental),
                             parent_id=own.get("parent_id"), civil_code=own.get("civil_code"),
                             longitude=own.get("longitude"), latitude=own.get("latitude"),
                             ptz_type=own.get("ptz_type"))

    def configure(self, config: ChannelConfig) -> None:
        """Give the channel its own Catalog fields (a status change notifies
        the Catalog subscribers); fields left None are the derived ones."""
        configure_channel(self._fleet, self._dev, self.index, config, self._set_status)

    @property
    def recording(self) -> bool:
        return bool(self._read()[2] & _CH_RECORD)

    @property
    def alarm(self) -> bool:
        return bool(self._read()[2] & _CH_ALARM)

    def __repr__(self) -> str:
        cid, name, st = self._read()
        return (f"Channel({self.index}, id={cid!r}, name={name!r}, "
                f"status={'OFF' if st & _CH_OFF else 'ON'!r})")


class Channels(Sequence[Channel]):
    """A device's channels, in Catalog order."""

    __slots__ = ("_fleet", "_set_status", "_dev")

    def __init__(self, fleet: _core.Fleet, set_status: SetChannelStatus, dev: int) -> None:
        self._fleet = fleet
        self._set_status = set_status
        self._dev = dev

    def __len__(self) -> int:
        return int(self._fleet.channels(self._dev))

    @overload
    def __getitem__(self, i: int) -> Channel: ...

    @overload
    def __getitem__(self, i: slice) -> list[Channel]: ...

    def __getitem__(self, i: int | slice) -> Channel | list[Channel]:
        n = len(self)
        if isinstance(i, slice):
            return [Channel(self._fleet, self._set_status, self._dev, k) for k in range(*i.indices(n))]
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("no such channel")
        return Channel(self._fleet, self._set_status, self._dev, i)

    def __iter__(self) -> Iterator[Channel]:
        return (Channel(self._fleet, self._set_status, self._dev, k) for k in range(len(self)))

    def by_id(self, channel_id: str) -> Channel:
        for ch in self:
            if ch.id == channel_id:
                return ch
        raise KeyError(channel_id)


ChannelSpec = Union[int, Sequence[Union[str, ChannelConfig]], None]


def apply_channels(fleet: _core.Fleet, dev: int, profile_index: int, channels: ChannelSpec,
                   base: int = -1) -> None:
    """Give device dev its profile and channels: a count, or a list of names
    or :class:`ChannelConfig` (one channel each), or None (the profile's
    count)."""
    configs: Sequence[str | ChannelConfig] = ()
    if channels is None:
        count = -1
    elif isinstance(channels, int):
        count = channels
    else:
        configs = list(channels)
        count = len(configs)
    if not -1 <= count <= 1024:
        raise ConfigurationError("channels must be 0..1024")
    fleet.set_camera(dev, profile_index, count, base)
    for k, config in enumerate(configs):
        configure_channel(fleet, dev, k, config)


def alarm_target(channel: int | None, alarm_input: int | None) -> int:
    """The core's alarm target: a channel index, or -1 - k for alarm input k."""
    if (channel is None) == (alarm_input is None):
        raise ConfigurationError("raise an alarm on a channel or on an alarm input")
    return channel if channel is not None else -1 - int(alarm_input or 0)


QueryHook = Callable[[Any], Any]


def with_profile(profile: ProfileSource, **changes: Any) -> Profile:
    """``profile`` with some fields changed (a convenience for tests)."""
    return replace(coerce_profile(profile), **changes)
