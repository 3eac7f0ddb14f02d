"""gbsip: a GB/T 28181 SIP registration engine with a C core.

The C extension (``gbsip._core``) parses, builds and authenticates SIP
messages without doing any I/O; the asyncio roles are built on top of it.
"""
from gbsip._core import (
    Contact,
    CSeq,
    GBSIPError,
    Headers,
    Message,
    NameAddress,
    Request,
    Response,
    SIPBuildError,
    SIPParseError,
    URI,
    Via,
    format_gb_date,
    frame,
    parse,
    parse_date,
    parse_name_addr,
    parse_uri,
    parse_via,
    status_phrase,
)
from gbsip._limits import Lenient, Limits
from gbsip._stream import StreamParser
from gbsip._version import __version__
from gbsip import digest, device
from gbsip import manscdp
from gbsip.device import Device, DeviceState
from gbsip.errors import RegistrationError
from gbsip.registrar import Registrar, RegistrarError
from gbsip.simulator import Faults, Simulator, SimulatorError

__all__ = [
    "CSeq",
    "Device",
    "Faults",
    "DeviceState",
    "Contact",
    "GBSIPError",
    "Headers",
    "Lenient",
    "Limits",
    "Message",
    "Registrar",
    "Simulator",
    "SimulatorError",
    "RegistrationError",
    "RegistrarError",
    "NameAddress",
    "Request",
    "Response",
    "SIPBuildError",
    "SIPParseError",
    "StreamParser",
    "URI",
    "Via",
    "__version__",
    "device",
    "digest",
    "manscdp",
    "format_gb_date",
    "frame",
    "parse",
    "parse_date",
    "parse_name_addr",
    "parse_uri",
    "parse_via",
    "status_phrase",
]
