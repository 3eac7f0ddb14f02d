"""Parser limits and named leniencies."""
from __future__ import annotations

import enum
from dataclasses import dataclass

from gbsip import _core


class Lenient(enum.IntFlag):
    """Named tolerances for peers that bend RFC 3261.  Strict by default.

    Each flag accepts one real-world quirk; combine them with ``|``.
    """

    #: Lines may end in a bare LF instead of CRLF.
    LF_ONLY = _core.LENIENT_LF_ONLY
    #: CSeq's method may differ from the request method (RFC 3261 §8.1.1.5).
    CSEQ_METHOD = _core.LENIENT_CSEQ_METHOD
    #: A message may lack Via, From, To, Call-ID or CSeq.
    MISSING_HEADERS = _core.LENIENT_MISSING_HEADERS
    #: A message on a stream transport may lack Content-Length (body empty).
    STREAM_NO_CONTENT_LENGTH = _core.LENIENT_STREAM_NO_CONTENT_LENGTH
    #: Odd spacing beyond what RFC 3261 already allows.
    SPACING = _core.LENIENT_SPACING
    #: Any SIP/x.y version instead of answering 505.
    VERSION = _core.LENIENT_VERSION
    #: Everything above.
    ALL = _core.LENIENT_ALL


@dataclass(frozen=True)
class Limits:
    """Explicit bounds on what the parser accepts (see docs/parser.md)."""

    max_message: int = _core.DEFAULT_MAX_MESSAGE
    max_headers: int = _core.DEFAULT_MAX_HEADERS
    max_line: int = _core.DEFAULT_MAX_LINE
    max_vias: int = _core.DEFAULT_MAX_VIAS
    max_contacts: int = _core.DEFAULT_MAX_CONTACTS

    def as_kwargs(self) -> dict[str, int]:
        """Keyword arguments for :func:`gbsip.parse` and :func:`gbsip.frame`."""
        return {
            "max_message": self.max_message,
            "max_headers": self.max_headers,
            "max_line": self.max_line,
            "max_vias": self.max_vias,
            "max_contacts": self.max_contacts,
        }
