"""Type stubs for gbsip._core, the C extension (sans-IO SIP core)."""
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Final, NamedTuple, overload

_Buffer = bytes | bytearray | memoryview
_HeaderList = Iterable[tuple[str, str]]

class GBSIPError(Exception):
    """Base class of every exception gbsip raises."""

class SIPBuildError(GBSIPError, ValueError):
    """The caller asked for a message that would not be valid SIP."""

class SIPParseError(GBSIPError, ValueError):
    """Malformed SIP from a peer.  Says what and where, and what to answer."""
    code: str            # e.g. "CSEQ_METHOD"
    reason: str          # short human text
    line: int            # 1-based line, 0 when not about one line
    offset: int          # byte offset into the parsed buffer
    status: int          # the SIP status a server should answer (400, 505, 513...)
    header: str | None   # canonical name of the header concerned

DEFAULT_MAX_MESSAGE: Final[int]
DEFAULT_MAX_HEADERS: Final[int]
DEFAULT_MAX_LINE: Final[int]
DEFAULT_MAX_VIAS: Final[int]
DEFAULT_MAX_CONTACTS: Final[int]

LENIENT_LF_ONLY: Final[int]
LENIENT_CSEQ_METHOD: Final[int]
LENIENT_MISSING_HEADERS: Final[int]
LENIENT_STREAM_NO_CONTENT_LENGTH: Final[int]
LENIENT_SPACING: Final[int]
LENIENT_VERSION: Final[int]
LENIENT_ALL: Final[int]

class CSeq(NamedTuple):
    number: int
    method: str

class URI(NamedTuple):
    raw: str
    scheme: str
    user: str | None          # %-escapes decoded
    password: str | None
    host: str                 # IPv6 keeps its brackets
    port: int | None
    params: dict[str, str | None]
    headers: dict[str, str]

class NameAddress(NamedTuple):
    display_name: str | None  # unquoted, escapes removed
    uri: str
    tag: str | None
    params: dict[str, str | None]

class Contact(NamedTuple):
    display_name: str | None
    uri: str                  # "*" for the wildcard (Contact: *)
    expires: int | None
    q: float | None
    params: dict[str, str | None]

class Via(NamedTuple):
    transport: str            # upper-case as sent: "UDP", "TCP"...
    host: str
    port: int | None
    branch: str | None
    rport: int | bool | None  # None absent, True present without value, int value
    received: str | None
    params: dict[str, str | None]
    sent_by: str              # "host[:port]" as on the wire

class Headers:
    """Read-only multi-dict of a message's header lines, in wire order.

    Names match case-insensitively and in long or compact form ("i" is
    Call-ID).  One entry per header line; values have line folding undone.
    """
    def get(self, name: str, default: str | None = None) -> str | None: ...
    def getall(self, name: str) -> list[str]: ...
    def items(self) -> list[tuple[str, str]]: ...
    def keys(self) -> list[str]: ...
    def __getitem__(self, name: str) -> str: ...
    def __contains__(self, name: object) -> bool: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[str]: ...

class Message:
    """A parsed SIP message: its wire bytes plus a zero-copy index.

    Fields are parsed from the bytes when read.  Mutators rebuild the bytes
    and re-index, so bytes(msg) always is the message as it would be sent.
    """
    @property
    def headers(self) -> Headers: ...
    @property
    def call_id(self) -> str | None: ...
    @property
    def cseq(self) -> CSeq | None: ...
    @property
    def from_(self) -> NameAddress | None: ...
    @property
    def to(self) -> NameAddress | None: ...
    @property
    def via(self) -> Via | None: ...
    @property
    def vias(self) -> list[Via]: ...
    @property
    def contacts(self) -> list[Contact]: ...
    @property
    def expires(self) -> int | None: ...
    @property
    def min_expires(self) -> int | None: ...
    @property
    def max_forwards(self) -> int | None: ...
    @property
    def content_type(self) -> str | None: ...
    @property
    def content_length(self) -> int | None: ...
    @property
    def user_agent(self) -> str | None: ...
    @property
    def body(self) -> bytes: ...
    @property
    def date(self) -> datetime | None: ...
    def validate(self) -> None: ...
    def set_header(self, name: str, value: str) -> None: ...
    def add_header(self, name: str, value: str) -> None: ...
    def remove_header(self, name: str) -> int: ...
    def set_body(self, body: bytes, content_type: str | None = None) -> None: ...
    def header_line(self, name: str) -> int | None: ...
    def __bytes__(self) -> bytes: ...
    def __len__(self) -> int: ...

class Request(Message):
    def __init__(self, method: str, uri: str, headers: _HeaderList = (),
                 body: bytes = b"") -> None: ...
    @property
    def method(self) -> str: ...
    @property
    def uri(self) -> str: ...
    @property
    def request_uri(self) -> URI: ...
    def reply(self, status: int, reason: str | None = None, *,
              to_tag: str | None = None, headers: _HeaderList = (),
              body: bytes = b"", received: str | None = None,
              rport: int | None = None) -> Response: ...

class Response(Message):
    def __init__(self, status: int, reason: str | None = None,
                 headers: _HeaderList = (), body: bytes = b"") -> None: ...
    @property
    def status(self) -> int: ...
    @property
    def reason(self) -> str: ...

def parse(data: _Buffer, *, lenient: int = 0, max_message: int = ...,
          max_headers: int = ..., max_line: int = ..., max_vias: int = ...,
          max_contacts: int = ..., validate: bool = False) -> Request | Response: ...
def frame(data: _Buffer, *, lenient: int = 0,
          max_message: int = ...) -> tuple[int, int] | None: ...
def parse_uri(value: str) -> URI: ...
def parse_name_addr(value: str) -> NameAddress: ...
def parse_via(value: str) -> list[Via]: ...
def parse_date(value: str) -> datetime: ...
def format_gb_date(value: datetime) -> str: ...
def status_phrase(status: int) -> str: ...
