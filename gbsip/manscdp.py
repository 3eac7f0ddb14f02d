"""MANSCDP+xml bodies (GB/T 28181 Annex A): parse what a peer sent, build answers.

The C core (``csrc/core/manscdp.c``) indexes a body in one pass without copying;
this module gives the index a typed face.  Texts are decoded by the charset
the body declares (GB2312 and GBK as GB18030, UTF-8), only when read::

    doc = manscdp.parse(body)
    doc.root, doc.cmd_type, doc.sn, doc.device_id   # Root.QUERY, 'Catalog', 17430, '3402...'
    doc.text("SumNum")                              # '2'
    [item.text("Name") for item in doc.find("DeviceList/Item")]
    doc.items                                       # (CatalogItem(...), ...)
    doc.answer([("SumNum", 1), ("DeviceList", [...], {"Num": "1"})])  # bytes

Malformed bodies raise :class:`ManscdpError` with the SIP status to answer.
See docs/manscdp.md.
"""
from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields as dc_fields
from typing import Any, TypeVar, Union

from gbsip import _core
from gbsip._core import ManscdpBuildError, ManscdpError

__all__ = [
    "AlarmCmd",
    "AlarmStatusItem",
    "CMD_TYPES",
    "CatalogItem",
    "Document",
    "Element",
    "ControlCommand",
    "Field",
    "GuardCmd",
    "Lenient",
    "Limits",
    "ManscdpBuildError",
    "ManscdpError",
    "PTZ",
    "PresetItem",
    "RecordCmd",
    "RecordItem",
    "Root",
    "TeleBoot",
    "build",
    "parse",
]


class Lenient(enum.IntFlag):
    """Named tolerances for what devices send in the field.  Strict by default."""

    #: Element names in another case (``<cmdtype>``, ``</notify>``); lookups
    #: then ignore case too.
    TAG_CASE = _core.MANSCDP_LENIENT_TAG_CASE
    #: No ``<?xml ...?>`` declaration.
    NO_DECLARATION = _core.MANSCDP_LENIENT_NO_DECLARATION
    #: A UTF-8 BOM or whitespace before the declaration, NUL bytes after the root.
    PADDING = _core.MANSCDP_LENIENT_PADDING
    #: An ``&`` that starts no reference is a literal ``&``.
    BARE_AMPERSAND = _core.MANSCDP_LENIENT_BARE_AMPERSAND
    #: Everything above.
    ALL = _core.MANSCDP_LENIENT_ALL


class Root(str, enum.Enum):
    """The four root elements of Annex A.2."""

    QUERY = "Query"
    CONTROL = "Control"
    NOTIFY = "Notify"
    RESPONSE = "Response"


_ROOTS = (None, Root.QUERY, Root.CONTROL, Root.NOTIFY, Root.RESPONSE)
_ROOT_NUMBER = {r: i for i, r in enumerate(_ROOTS) if r is not None}
_CHARSETS = (None, "GB2312", "GB18030", "GBK", "UTF-8")
_CHARSET_NUMBER = {"GB2312": 1, "GB18030": 2, "GBK": 3, "UTF-8": 4, "UTF8": 4}

#: The CmdType values the reader knows (GB/T 28181-2016 and 2022).
CMD_TYPES: frozenset[str] = frozenset(n for n in _core.MANSCDP_CMD_TYPES if n)


@dataclass(frozen=True)
class Limits:
    """Bounds on what the reader accepts (docs/manscdp.md)."""

    max_body: int = _core.MANSCDP_DEFAULT_MAX_BODY
    max_nodes: int = _core.MANSCDP_DEFAULT_MAX_NODES
    max_depth: int = _core.MANSCDP_DEFAULT_MAX_DEPTH


@dataclass(frozen=True)
class CatalogItem:
    """One ``DeviceList/Item`` of a Catalog response or notification (A.2.6.4)."""

    device_id: str | None = None
    name: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    owner: str | None = None
    civil_code: str | None = None
    address: str | None = None
    parental: str | None = None
    parent_id: str | None = None
    safety_way: str | None = None
    register_way: str | None = None
    secrecy: str | None = None
    status: str | None = None
    longitude: str | None = None
    latitude: str | None = None
    ptz_type: str | None = None  # Info/PTZType


@dataclass(frozen=True)
class RecordItem:
    """One ``RecordList/Item`` of a RecordInfo response (A.2.6.7)."""

    device_id: str | None = None
    name: str | None = None
    file_path: str | None = None
    address: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    secrecy: str | None = None
    type: str | None = None


@dataclass(frozen=True)
class PresetItem:
    """One ``PresetList/Item`` of a PresetQuery response (A.2.6.9)."""

    preset_id: str | None = None
    preset_name: str | None = None


@dataclass(frozen=True)
class AlarmStatusItem:
    """One ``Alarmstatus/Item`` of a DeviceStatus response (A.2.6.6)."""

    device_id: str | None = None
    duty_status: str | None = None


# Element name of each item field, where it is not the CamelCase of its name.
_ELEMENT = {"device_id": "DeviceID", "parent_id": "ParentID", "ptz_type": "Info/PTZType",
            "preset_id": "PresetID"}
_ItemT = TypeVar("_ItemT", CatalogItem, RecordItem, PresetItem, AlarmStatusItem)
Item = Union[CatalogItem, RecordItem, PresetItem, AlarmStatusItem]

# CmdType → (list path, item type)
_LISTS: dict[str, tuple[str, type[Any]]] = {
    "Catalog": ("DeviceList/Item", CatalogItem),
    "RecordInfo": ("RecordList/Item", RecordItem),
    "PresetQuery": ("PresetList/Item", PresetItem),
    "DeviceStatus": ("Alarmstatus/Item", AlarmStatusItem),
}


# item class -> ((field name, element name), ...): as_item's names, computed once
_ITEM_NAMES: dict[type[Any], tuple[tuple[str, str], ...]] = {}


def _element_name(field: str) -> str:
    return _ELEMENT.get(field) or "".join(p.capitalize() for p in field.split("_"))


@dataclass(frozen=True, eq=False)
class Element:
    """One element of a parsed document: a view, nothing is copied."""

    _doc: _core.ManscdpDocument
    index: int

    @property
    def name(self) -> str:
        return self._doc.name(self.index)

    @property
    def value(self) -> str:
        """Decoded text (empty for an element with children)."""
        return self._doc.text(self.index)

    @property
    def attrs(self) -> dict[str, str]:
        return self._doc.attrs(self.index)

    @property
    def children(self) -> list[Element]:
        return [Element(self._doc, i) for i in self._doc.children(self.index)]

    def find(self, path: str) -> list[Element]:
        """Every element at ``path`` ("DeviceList/Item") below this one."""
        return [Element(self._doc, i) for i in self._doc.find(self.index, path)]

    def first(self, path: str) -> Element | None:
        found = self._doc.find(self.index, path)
        return Element(self._doc, found[0]) if found else None

    def text(self, path: str, default: str | None = None) -> str | None:
        """Decoded text of the first element at ``path``, or ``default``."""
        found = self._doc.find(self.index, path)
        return self._doc.text(found[0]) if found else default

    def attr(self, name: str, default: str | None = None) -> str | None:
        """Decoded value of attribute ``name`` (case-blind under TAG_CASE)."""
        value = self._doc.attr(self.index, name)
        return default if value is None else value

    def as_item(self, cls: type[_ItemT]) -> _ItemT:
        """This element's fields as a typed item (absent fields are None)."""
        names = _ITEM_NAMES.get(cls)
        if names is None:
            names = _ITEM_NAMES[cls] = tuple((f.name, _element_name(f.name))
                                             for f in dc_fields(cls))
        doc, index = self._doc, self.index
        find, text = doc.find, doc.text
        values = {}
        for field_name, path in names:
            found = find(index, path)
            values[field_name] = text(found[0]) if found else None
        return cls(**values)

    def __repr__(self) -> str:
        return f"<Element {self.name} #{self.index}>"


class Document:
    """A parsed MANSCDP+xml body (see :func:`parse`)."""

    __slots__ = ("_doc", "element")

    def __init__(self, doc: _core.ManscdpDocument) -> None:
        self._doc = doc
        #: The root element.
        self.element = Element(doc, 0)

    @property
    def root(self) -> Root:
        root = _ROOTS[self._doc.root]
        assert root is not None
        return root

    @property
    def cmd_type(self) -> str:
        return self._doc.cmd_type

    @property
    def known(self) -> bool:
        """Whether CmdType is one of :data:`CMD_TYPES`."""
        return self._doc.cmd != 0

    @property
    def sn(self) -> int:
        return self._doc.sn

    @property
    def device_id(self) -> str:
        return self._doc.device_id

    @property
    def charset(self) -> str | None:
        """The declared charset, normalised ("GB2312", "UTF-8"...); the
        declared name for others; None without one."""
        number = self._doc.charset
        if number < len(_CHARSETS) and number:
            return _CHARSETS[number]
        return self._doc.encoding

    @property
    def codec(self) -> str:
        """The Python codec texts are decoded with."""
        return self._doc.codec

    @property
    def data(self) -> bytes:
        return self._doc.data

    def find(self, path: str) -> list[Element]:
        """Every element at ``path`` below the root, in document order."""
        return self.element.find(path)

    def first(self, path: str) -> Element | None:
        return self.element.first(path)

    def text(self, path: str, default: str | None = None) -> str | None:
        """Decoded text of the first element at ``path`` below the root."""
        return self.element.text(path, default)

    def attr(self, path: str, name: str, default: str | None = None) -> str | None:
        found = self.element.first(path)
        return found.attr(name, default) if found is not None else default

    @property
    def items(self) -> tuple[Item, ...]:
        """Typed list entries for Catalog, RecordInfo, PresetQuery and
        DeviceStatus bodies; empty for others."""
        spec = _LISTS.get(self.cmd_type)
        if spec is None:
            return ()
        path, cls = spec
        return tuple(e.as_item(cls) for e in self.find(path))

    def answer(self, fields: Sequence[Field] = (), *, root: Root = Root.RESPONSE,
               device_id: str | None = None) -> bytes:
        """A body answering this one: same CmdType and SN, this DeviceID
        unless another is given, in this body's charset (GB2312 when it had
        none or one we do not write)."""
        return build(root, self.cmd_type, self.sn, device_id or self.device_id, fields,
                     charset=self.charset if self.charset in _CHARSET_NUMBER else "GB2312")

    def __len__(self) -> int:
        return len(self._doc)

    def __repr__(self) -> str:
        return (f"<Document {self.root.value} {self.cmd_type} SN={self.sn} "
                f"DeviceID={self.device_id}>")


def parse(body: bytes | bytearray | memoryview, *, lenient: int = 0,
          limits: Limits | None = None) -> Document:
    """Parse one MANSCDP+xml body.

    Raises :class:`ManscdpError` (``.code``, ``.reason``, ``.line``,
    ``.offset``, ``.status``) for a body that is not one; for an unknown
    CmdType (code ``UNKNOWN_CMD_TYPE``, status 501) the error's
    ``.document`` is the complete :class:`Document`.
    """
    lim = limits or Limits()
    try:
        doc = _core.manscdp_parse(body, lenient=int(lenient), max_body=lim.max_body,
                                  max_nodes=lim.max_nodes, max_depth=lim.max_depth)
    except ManscdpError as exc:
        raw = getattr(exc, "document", None)
        if raw is not None:
            exc.document = Document(raw)
        raise
    return Document(doc)


#: A field to build: ``(name, text)``, ``(name, [fields])`` or
#: ``(name, [fields], {"Num": "2"})`` (one attribute at most).
Field = Union[tuple[str, Union[str, int]], tuple[str, Sequence["Field"]],
              tuple[str, Sequence["Field"], Mapping[str, Union[str, int]]]]


def build(root: Root | str, cmd_type: str, sn: int, device_id: str,
          fields: Sequence[Field] = (), *, charset: str | None = "GB2312") -> bytes:
    """Build a body: declaration, root, CmdType, SN, DeviceID, then fields.

    Texts are escaped and encoded to ``charset`` (GB2312 and GBK are
    written as GB18030, their superset).  Raises :class:`ManscdpBuildError`
    for what cannot be a valid body.
    """
    try:
        root_number = _ROOT_NUMBER[Root(root)]
    except ValueError:
        raise ManscdpBuildError(f"unknown root {root!r}") from None
    cs = (charset or "GB2312").upper()
    if cs not in _CHARSET_NUMBER:
        raise ManscdpBuildError(f"unsupported charset {charset!r}")
    if sn < 0 or sn >= 1 << 64:
        raise ManscdpBuildError("SN must be in 0..2**64-1")
    return _core.manscdp_build(root_number, cmd_type, sn, device_id, list(fields),
                               _CHARSET_NUMBER[cs])


# --------------------------------------------------------------------------
# DeviceControl commands (§9.3, Annex A.2.3.1) a platform sends


@dataclass(frozen=True)
class PTZ:
    """``PTZCmd``: pan, tilt and zoom as the 8-byte command of Annex A.3.

    ``pan`` > 0 turns right, < 0 left (speed 0..255); ``tilt`` > 0 up,
    < 0 down (0..255); ``zoom`` > 0 in, < 0 out (0..15); all 0 is stop.
    ``address`` is the camera's PTZ address (0..4095, usually 1)."""

    pan: int = 0
    tilt: int = 0
    zoom: int = 0
    address: int = 1

    name = "PTZCmd"
    #: GB/T 28181 §9.3.1: a PTZ command is not answered with a Response body.
    expects_response = False

    def __post_init__(self) -> None:
        if not (-255 <= self.pan <= 255 and -255 <= self.tilt <= 255 and -15 <= self.zoom <= 15
                and 0 <= self.address <= 0xFFF):
            raise ManscdpBuildError("PTZ: pan/tilt in -255..255, zoom in -15..15, "
                                    "address in 0..4095")

    @property
    def code(self) -> str:
        """The command as 16 upper-case hex digits (Annex A.3.1)."""
        cmd = ((0x01 if self.pan > 0 else 0x02 if self.pan < 0 else 0)
               | (0x08 if self.tilt > 0 else 0x04 if self.tilt < 0 else 0)
               | (0x10 if self.zoom > 0 else 0x20 if self.zoom < 0 else 0))
        b = [0xA5, 0, self.address & 0xFF, cmd, abs(self.pan), abs(self.tilt),
             (abs(self.zoom) << 4) | (self.address >> 8)]
        b[1] = ((0xA + 0x5 + 0) % 16)  # version 0, then the check nibble
        b.append(sum(b) % 256)
        return bytes(b).hex().upper()

    def fields(self) -> list[Field]:
        return [("PTZCmd", self.code), ("Info", [("ControlPriority", 5)])]


@dataclass(frozen=True)
class TeleBoot:
    """``TeleBoot``: restart the device (§9.3.2); no Response body."""

    name = "TeleBoot"
    expects_response = False

    def fields(self) -> list[Field]:
        return [("TeleBoot", "Boot")]


@dataclass(frozen=True)
class RecordCmd:
    """``RecordCmd``: start (``Record``) or stop (``StopRecord``) recording
    (§9.3.3); answered with a Response carrying ``Result``."""

    record: bool = True

    name = "RecordCmd"
    expects_response = True

    def fields(self) -> list[Field]:
        return [("RecordCmd", "Record" if self.record else "StopRecord")]


@dataclass(frozen=True)
class GuardCmd:
    """``GuardCmd``: arm (``SetGuard``) or disarm (``ResetGuard``) (§9.3.4);
    answered with a Response carrying ``Result``."""

    guard: bool = True

    name = "GuardCmd"
    expects_response = True

    def fields(self) -> list[Field]:
        return [("GuardCmd", "SetGuard" if self.guard else "ResetGuard")]


@dataclass(frozen=True)
class AlarmCmd:
    """``AlarmCmd``: reset an alarm (``ResetAlarm``, §9.3.5), optionally
    with ``Info/AlarmMethod`` (and ``AlarmType``); answered with ``Result``."""

    alarm_method: str | None = None
    alarm_type: str | None = None

    name = "AlarmCmd"
    expects_response = True

    def fields(self) -> list[Field]:
        info: list[Field] = []
        if self.alarm_method is not None:
            info.append(("AlarmMethod", self.alarm_method))
        if self.alarm_type is not None:
            info.append(("AlarmType", self.alarm_type))
        out: list[Field] = [("AlarmCmd", "ResetAlarm")]
        if info:
            out.append(("Info", info))
        return out


#: What ``Registrar.control()`` takes.
ControlCommand = Union[PTZ, TeleBoot, RecordCmd, GuardCmd, AlarmCmd]
