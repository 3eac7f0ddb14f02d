"""Exceptions of the asyncio roles (the parser's live in ``gbsip._core``)."""
from __future__ import annotations

from gbsip._core import GBSIPError

__all__ = ["GBSIPError", "RegistrationError"]


class RegistrationError(GBSIPError):
    """A device could not register (GB/T 28181 §9.1).

    ``status`` is the platform's final SIP status (``0`` when none came:
    timeout or transport error), ``reason`` its reason phrase or what went
    wrong, ``kind`` the failure class (``"rejected"``, ``"timeout"``,
    ``"auth_rejected"``, ``"no_challenge"``, ...).
    """

    def __init__(self, status: int, reason: str, kind: str = "rejected") -> None:
        super().__init__(f"registration failed: {status} {reason} ({kind})"
                         if status else f"registration failed: {reason} ({kind})")
        self.status = status
        self.reason = reason
        self.kind = kind
