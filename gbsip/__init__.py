"""gbsip: a GB/T 28181 SIP registration engine with a C core.

The C extension (``gbsip._core``) parses, builds and authenticates SIP
messages without doing any I/O; the asyncio roles are built on top of it.
"""
import importlib as _importlib
import os as _os
import sys as _sys


def _run_installed_instead(source_pkg: str) -> None:
    """``python -m gbsip`` in a source tree without a built ``_core``: run
    the gbsip installed elsewhere on the path (what the user meant after
    ``pip install .``), never this tree.  Returns when there is none."""
    root = _os.path.realpath(_os.path.dirname(source_pkg))
    path = [p for p in _sys.path if _os.path.realpath(p or _os.getcwd()) != root]
    from importlib.machinery import PathFinder

    spec = PathFinder.find_spec("gbsip", path)
    # this very package again is no help; one installed in a venv inside the
    # checkout (./run-tests makes .venv there) is what the user meant
    if spec is None or not spec.origin or \
            _os.path.dirname(_os.path.realpath(spec.origin)) == _os.path.realpath(source_pkg):
        return
    import runpy

    _sys.path[:] = path
    for name in [m for m in _sys.modules if m == "gbsip" or m.startswith("gbsip.")]:
        del _sys.modules[name]
    runpy.run_module("gbsip", run_name="__main__", alter_sys=True)
    raise SystemExit(0)


try:
    _importlib.import_module("gbsip._core")
except ModuleNotFoundError as _exc:  # pragma: no cover - exercised by a subprocess test
    if _exc.name != "gbsip._core":
        raise
    _here = _os.path.dirname(_os.path.abspath(__file__))
    _why = (
        f"gbsip's C extension (gbsip._core) is not built in {_here}. This looks like "
        "the source tree, which shadows an installed gbsip when Python runs from the "
        "repository root. Run from another directory (after `pip install .`), or build "
        "in place: `pip install -e .` or `python setup.py build_ext --inplace`."
    )
    if _sys.argv[:1] == ["-m"]:  # `python -m gbsip` (argv[0] is "-m" while it is found)
        _run_installed_instead(_here)
        raise SystemExit(f"python -m gbsip: {_why}")
    raise ImportError(_why) from None

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
from gbsip import camera, digest, device, errors, events, manscdp, queries
from gbsip.device import Device, DeviceState
from gbsip.errors import (
    ConcurrentUseError,
    ConfigurationError,
    LocalProtocolError,
    MissingDependency,
    RegistrarError,
    RegistrationError,
    RemoteProtocolError,
    SimulatorError,
)
from gbsip.registrar import Registrar
from gbsip.simulator import Faults, Simulator

__all__ = [
    "ConcurrentUseError",
    "ConfigurationError",
    "CSeq",
    "Device",
    "Faults",
    "DeviceState",
    "Contact",
    "GBSIPError",
    "Headers",
    "Lenient",
    "Limits",
    "LocalProtocolError",
    "Message",
    "Registrar",
    "Simulator",
    "SimulatorError",
    "RegistrationError",
    "RegistrarError",
    "RemoteProtocolError",
    "MissingDependency",
    "NameAddress",
    "Request",
    "Response",
    "SIPBuildError",
    "SIPParseError",
    "StreamParser",
    "URI",
    "Via",
    "__version__",
    "camera",
    "device",
    "digest",
    "errors",
    "events",
    "manscdp",
    "queries",
    "format_gb_date",
    "frame",
    "parse",
    "parse_date",
    "parse_name_addr",
    "parse_uri",
    "parse_via",
    "status_phrase",
]
