"""Every exception gbsip raises, in one place.

Two kinds, as in h11:

- :class:`LocalProtocolError`: *you* asked for something that cannot be
  done: a bad option (:class:`ConfigurationError`, also a ``ValueError``),
  invalid SIP to build (:class:`gbsip.SIPBuildError`), a call that makes no
  sense in the current state (``send_keepalive()`` on a closed device, a
  core called from a second thread: :class:`ConcurrentUseError`).
- :class:`RemoteProtocolError`: a *peer* sent something malformed;
  ``status`` is the SIP status a server should answer
  (:class:`gbsip.SIPParseError` says where and why).

A peer's negative answer (401, 403, 423, 5xx) is not an exception: it is a
``Response``, a Digest ``Verdict`` or an event.  The one place that raises
on it is ``async with Device(...)``, whose contract is "registered inside
the block": :class:`RegistrationError` (as the pytest plugin's
``gb_device_factory``, whose contract is the same).
"""
from __future__ import annotations

# Defined by the C core so that its own errors (SIPParseError, SIPBuildError)
# derive from them.
from gbsip._core import (
    ConcurrentUseError,
    GBSIPError,
    LocalProtocolError,
    RemoteProtocolError,
    SIPBuildError,
    SIPParseError,
)

__all__ = [
    "ConcurrentUseError",
    "ConfigurationError",
    "DigestError",
    "GBSIPError",
    "LocalProtocolError",
    "MissingDependency",
    "NotRegisteredError",
    "RegistrarError",
    "RegistrationError",
    "RemoteProtocolError",
    "SIPBuildError",
    "SIPParseError",
    "SimulatorError",
]

class ConfigurationError(LocalProtocolError, ValueError):
    """An option or argument is out of range or inconsistent; the message
    names the option."""


class DigestError(LocalProtocolError, ValueError):
    """The Digest API was called with arguments it cannot work with."""


class MissingDependency(GBSIPError, ImportError):
    """An optional part of gbsip needs a package that is not installed; the
    message says which extra to install."""


class RegistrationError(GBSIPError):
    """A device could not register (GB/T 28181 §9.1).

    ``status`` is the platform's final SIP status (``0`` when none came:
    timeout or transport error), ``reason`` its reason phrase or what went
    wrong, ``kind`` the failure class (``"rejected"``, ``"timeout"``,
    ``"auth_rejected"``, ``"no_challenge"``, ...); ``message``, when
    given, is the whole text (the pytest plugin's ``gb_device_factory`` adds
    the device, the platform and the SIP exchange).
    """

    def __init__(self, status: int, reason: str, kind: str = "rejected",
                 message: str | None = None) -> None:
        super().__init__(message or (f"registration failed: {status} {reason} ({kind})"
                                     if status else f"registration failed: {reason} ({kind})"))
        self.status = status
        self.reason = reason
        self.kind = kind


class NotRegisteredError(LocalProtocolError, LookupError):
    """A request to a device the registrar has no binding for
    (``Registrar.query``/``control``/``subscribe``): it must register first.
    ``device_id`` names it."""

    def __init__(self, device_id: str, message: str | None = None) -> None:
        super().__init__(message or (
            f"device {device_id} is not registered with this registrar: wait for its "
            f"DeviceRegistered event (reg.wait_for(DeviceRegistered, {device_id!r})) "
            "or check reg.bindings"))
        self.device_id = device_id


class RegistrarError(GBSIPError):
    """The registrar cannot run (the port is in use, the address is wrong)."""


class SimulatorError(GBSIPError):
    """The simulation cannot go on (no answer from the server, no sockets...)."""
