"""Digest authentication for SIP and GB/T 28181, both sides.

RFC 7616 (with RFC 8760 for SIP) and its predecessors RFC 2617 and RFC 2069,
the last being what nearly every GB/T 28181 device speaks: MD5, no qop.  The
hashing, parsing and checking run in the C core (``gbsip._core``) on OpenSSL;
this module gives them typed, immutable values.

Client side::

    challenge = Challenge.parse(response.headers["WWW-Authenticate"])
    creds = Credentials.for_challenge(challenge, "34020000001320000001",
                                      password="12345678", method="REGISTER",
                                      uri="sip:34020000002000000001@3402000000")
    request.set_header("Authorization", str(creds))

Server side::

    nonces = NonceFactory(key=secret_key, lifetime=300)
    challenge = nonces.challenge("3402000000", binding=source_address)
    ...
    verdict = verify(request.headers["Authorization"], "REGISTER",
                     password=lookup, nonces=nonces, realm="3402000000",
                     request_uri=request.uri, binding=source_address)
    if verdict.ok: ...
    elif verdict.reason is Reason.STALE_NONCE: challenge again with stale=True

Every negative outcome of :func:`verify` is a :class:`Verdict` with a
:class:`Reason`, never an exception.  Exceptions mean API misuse
(:class:`DigestError`) or, from the ``parse`` methods, malformed peer data
(:class:`gbsip.SIPParseError`).  Time is a parameter (``now``, seconds since
the epoch) wherever it matters, defaulting to :func:`time.time`.
"""
from __future__ import annotations

import enum
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar, Union

from gbsip import _core
from gbsip._core import GBSIPError, SIPParseError
from gbsip.errors import DigestError

__all__ = [
    "Algorithm",
    "Challenge",
    "Credentials",
    "DigestClient",
    "DigestError",
    "NonceFactory",
    "NonceStatus",
    "Qop",
    "Reason",
    "SecretLookup",
    "UriPolicy",
    "Verdict",
    "choose",
    "compute_ha1",
    "compute_response",
    "compute_userhash",
    "is_capability_hint",
    "verify",
]


class Algorithm(str, enum.Enum):
    """Digest algorithms (RFC 7616 §3.3, §6.1).  Members equal their names."""

    MD5 = "MD5"
    MD5_SESS = "MD5-sess"
    SHA256 = "SHA-256"
    SHA256_SESS = "SHA-256-sess"
    SHA512_256 = "SHA-512-256"
    SHA512_256_SESS = "SHA-512-256-sess"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def lookup(cls, name: str) -> Algorithm | None:
        """The algorithm with this name in any case, or None if unknown."""
        folded = name.lower()
        for member in cls:
            if member.value.lower() == folded:
                return member
        return None

    @property
    def strength(self) -> int:
        """Preference when several are offered: SHA-512-256 > SHA-256 > MD5."""
        return {"MD5": 1, "SHA-256": 2, "SHA-512-256": 3}[self.value.replace("-sess", "")]


class Qop(str, enum.Enum):
    """Quality of protection (RFC 7616 §3.3)."""

    AUTH = "auth"
    AUTH_INT = "auth-int"

    def __str__(self) -> str:
        return self.value


class UriPolicy(enum.IntEnum):
    """How the credentials' ``uri`` must relate to the Request-URI.

    The ``uri`` parameter is always hashed exactly as received; the policy
    only decides whether it names this request (RFC 7616 §3.4.6).
    """

    EXACT = 0      #: byte for byte
    SAME_HOST = 1  #: same host (any case); user part, port and params may differ
    ANY = 2        #: not checked: NVRs that send sip:<serverID>@<domain>


class Reason(enum.Enum):
    """Why :func:`verify` said what it said."""

    OK = "OK"
    MALFORMED = "MALFORMED"                 #: Verdict.detail says what
    NOT_DIGEST = "NOT_DIGEST"               #: another scheme (Basic...)
    CAPABILITY_HINT = "CAPABILITY_HINT"     #: GB 35114 "Capability": challenge it
    REALM_MISMATCH = "REALM_MISMATCH"
    ALGORITHM_NOT_ALLOWED = "ALGORITHM_NOT_ALLOWED"
    QOP_NOT_ALLOWED = "QOP_NOT_ALLOWED"
    OPAQUE_MISMATCH = "OPAQUE_MISMATCH"
    URI_MISMATCH = "URI_MISMATCH"
    FORGED_NONCE = "FORGED_NONCE"           #: not issued by these nonces (or another binding)
    UNKNOWN_USER = "UNKNOWN_USER"
    WRONG_RESPONSE = "WRONG_RESPONSE"
    STALE_NONCE = "STALE_NONCE"             #: right password, old nonce: answer stale=true
    REPLAYED_NC = "REPLAYED_NC"
    INTERNAL = "INTERNAL"                   #: OpenSSL failed

    @property
    def description(self) -> str:
        """Short human text, as the C core words it."""
        return _RESULT_TEXT[self.value]


_RESULT_TEXT: dict[str, str] = dict(_core.DIGEST_RESULTS)
assert set(_RESULT_TEXT) == {r.value for r in Reason}, "Reason out of step with the C core"


class NonceStatus(enum.Enum):
    """What :meth:`NonceFactory.check` found."""

    FRESH = 0
    STALE = 1   #: ours, but older than the lifetime
    FORGED = 2  #: not ours, or bound to something else


#: A secret lookup: (username, realm) -> secret, or (real username, secret)
#: for ``userhash`` credentials, or None for an unknown user.
SecretLookup = Callable[[str, str], Union[str, tuple[str, str], None]]

_Bytes = Union[bytes, bytearray, memoryview, str]


def _now(now: float | None) -> float:
    return time.time() if now is None else float(now)


def _is_token(value: str) -> bool:
    return bool(value) and all(c.isascii() and (c.isalnum() or c in "-.!%*_+`'~")
                               for c in value)


def _extra_param(name: str, value: str) -> tuple[str, str, bool]:
    return (name, value, not _is_token(value))


_T = TypeVar("_T")


def _wrap(fn: Callable[..., _T], *args: object, **kwargs: object) -> _T:
    """Call into the core; its misuse errors become DigestError."""
    try:
        return fn(*args, **kwargs)
    except SIPParseError:
        raise
    except GBSIPError as exc:
        raise DigestError(str(exc)) from None


def _one_of(password: object, ha1: object) -> None:
    if (password is None) == (ha1 is None):
        raise DigestError("give exactly one of password= and ha1=")


def _alg_name(algorithm: Algorithm | str | None) -> str:
    if algorithm is None:
        return "MD5"
    alg = Algorithm.lookup(str(algorithm))
    if alg is None:
        raise DigestError(f"unknown Digest algorithm {algorithm!r}")
    return alg.value


def _bool(value: str) -> bool:
    return value.lower() == "true"


@dataclass(frozen=True)
class Challenge:
    """A Digest challenge (WWW-Authenticate / Proxy-Authenticate, RFC 7616 §3.3).

    ``algorithm`` is as sent (None when absent, which means MD5); ``qop`` the
    offered options in order; ``extra`` the parameters gbsip does not know,
    in wire order.  ``str()`` gives the header value.
    """

    realm: str
    nonce: str
    algorithm: str | None = None
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    domain: str | None = None
    charset: str | None = None
    userhash: bool = False
    extra: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, value: _Bytes) -> Challenge:
        """The first Digest challenge in a header value (RFC 7235 §4.1).

        Raises :class:`gbsip.SIPParseError` if the value is malformed or has
        no Digest challenge.
        """
        found = cls.parse_all(value)
        if not found:
            raise _no_digest(value)
        return found[0]

    @classmethod
    def parse_all(cls, value: _Bytes) -> list[Challenge]:
        """Every Digest challenge in a header value; other schemes are skipped."""
        items = _core.auth_parse(value, 1)
        return [cls._from_params(params) for _scheme, _t68, params in items]

    @classmethod
    def _from_params(cls, params: list[tuple[str, str, bool]]) -> Challenge:
        known: dict[str, object] = {}
        extra: list[tuple[str, str]] = []
        for name, value, _quoted in params:
            key = name.lower()
            if key in ("realm", "nonce", "opaque", "domain", "charset", "algorithm"):
                known[key] = value
            elif key == "qop":
                known["qop"] = tuple(v.strip() for v in value.split(",") if v.strip())
            elif key in ("stale", "userhash"):
                known[key] = _bool(value)
            else:
                extra.append((name, value))
        return cls(extra=tuple(extra), **known)  # type: ignore[arg-type]

    @property
    def algorithm_id(self) -> Algorithm | None:
        """The algorithm as a member (MD5 when absent), None if gbsip does not know it."""
        return Algorithm.MD5 if self.algorithm is None else Algorithm.lookup(self.algorithm)

    def __str__(self) -> str:
        p: list[tuple[str, str, bool]] = [("realm", self.realm, True)]
        if self.domain is not None:
            p.append(("domain", self.domain, True))
        p.append(("nonce", self.nonce, True))
        if self.opaque is not None:
            p.append(("opaque", self.opaque, True))
        if self.stale:
            p.append(("stale", "true", False))
        if self.algorithm is not None:
            p.append(("algorithm", self.algorithm, not _is_token(self.algorithm)))
        if self.qop:
            p.append(("qop", ",".join(self.qop), True))
        if self.charset is not None:
            p.append(("charset", self.charset, not _is_token(self.charset)))
        if self.userhash:
            p.append(("userhash", "true", False))
        p.extend(_extra_param(n, v) for n, v in self.extra)
        return str(_wrap(_core.auth_build, "Digest", p))


@dataclass(frozen=True)
class Credentials:
    """Digest credentials (Authorization / Proxy-Authorization, RFC 7616 §3.4).

    Values are as sent, escapes removed; ``nc`` keeps its 8 hex digits and
    ``algorithm`` is None when absent (MD5).  ``str()`` gives the header
    value in the seed's form (``Digest username="..",realm="..",...``).
    """

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str | None = None
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None
    userhash: bool = False
    extra: tuple[tuple[str, str], ...] = ()
    #: the header value this was parsed from; verify() checks exactly these bytes
    raw: str | None = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, value: _Bytes) -> Credentials:
        """Parse one Digest credential.

        Raises :class:`gbsip.SIPParseError` (its ``reason`` says what) when
        the value is malformed, is not Digest, or is the GB capability hint
        ``Capability, algorithm="H:MD5"`` (see :func:`is_capability_hint`).
        """
        [(_scheme, _t68, params)] = _core.auth_parse(value, 2)
        known: dict[str, object] = {}
        extra: list[tuple[str, str]] = []
        for name, v, _quoted in params:
            key = name.lower()
            if key in ("username", "realm", "nonce", "uri", "response", "algorithm",
                       "qop", "nc", "cnonce", "opaque"):
                known[key] = v
            elif key == "userhash":
                known[key] = _bool(v)
            else:
                extra.append((name, v))
        raw = value if isinstance(value, str) else bytes(value).decode("utf-8", "surrogateescape")
        return cls(extra=tuple(extra), raw=raw, **known)  # type: ignore[arg-type]

    @classmethod
    def for_challenge(cls, challenge: Challenge, username: str, password: str | None = None,
                      *, ha1: str | None = None, method: str, uri: str, body: bytes = b"",
                      nc: int = 1, cnonce: str | None = None,
                      qop: Qop | str | None = None) -> Credentials:
        """Answer a challenge (RFC 7616 §3.4).

        Give ``password`` or a stored ``ha1`` (H(username:realm:password) in
        the challenge's algorithm).  ``qop`` defaults to auth when offered,
        else auth-int; ``cnonce`` is drawn from OpenSSL's RAND_bytes when
        needed.  For a counter across requests use :class:`DigestClient`.
        """
        _one_of(password, ha1)
        if nc < 1:
            raise DigestError("nc counts from 1")
        q = -1 if qop is None else {"auth": 1, "auth-int": 2}.get(str(qop), -2)
        if q == -2:
            raise DigestError(f"qop must be 'auth' or 'auth-int', not {qop!r}")
        value = _wrap(_core.digest_answer, str(challenge), username=username, method=method,
                      uri=uri, password=password, ha1=ha1, body=body, cnonce=cnonce,
                      nc=nc, qop=q)
        return cls.parse(str(value))

    @property
    def nc_count(self) -> int | None:
        """nc as a number."""
        return None if self.nc is None else int(self.nc, 16)

    @property
    def algorithm_id(self) -> Algorithm | None:
        """The algorithm as a member (MD5 when absent), None if gbsip does not know it."""
        return Algorithm.MD5 if self.algorithm is None else Algorithm.lookup(self.algorithm)

    def __str__(self) -> str:
        p: list[tuple[str, str, bool]] = [
            ("username", self.username, True), ("realm", self.realm, True),
            ("nonce", self.nonce, True), ("uri", self.uri, True),
            ("response", self.response, True),
        ]
        if self.algorithm is not None:
            p.append(("algorithm", self.algorithm, not _is_token(self.algorithm)))
        if self.cnonce is not None:
            p.append(("cnonce", self.cnonce, True))
        if self.opaque is not None:
            p.append(("opaque", self.opaque, True))
        if self.qop is not None:
            p.append(("qop", self.qop, False))
        if self.nc is not None:
            p.append(("nc", self.nc, False))
        if self.userhash:
            p.append(("userhash", "true", False))
        p.extend(_extra_param(n, v) for n, v in self.extra)
        return str(_wrap(_core.auth_build, "Digest", p))


def _no_digest(value: _Bytes) -> SIPParseError:
    err = SIPParseError("no Digest challenge in the header value")
    err.code = "AUTH"
    err.reason = "no Digest challenge in the header value"
    err.line = 0
    err.offset = 0
    err.status = 400
    err.header = None
    return err


def is_capability_hint(value: _Bytes) -> bool:
    """True for the GB 35114 hint ``Capability, algorithm="H:MD5"``.

    A REGISTER carrying it has no credentials yet: challenge it, never count
    it as a failed login.
    """
    try:
        items = _core.auth_parse(value, 0)
    except SIPParseError:
        return False
    return len(items) == 1 and items[0][0].lower() == "capability"


def choose(challenges: Iterable[Challenge],
           allowed: Iterable[Algorithm | str] | None = None) -> Challenge | None:
    """The strongest challenge whose algorithm is allowed (first on ties)."""
    allow = None if allowed is None else {_alg_name(a) for a in allowed}
    best: Challenge | None = None
    for ch in challenges:
        alg = ch.algorithm_id
        if alg is None or (allow is not None and alg.value not in allow):
            continue
        if best is None or alg.strength > (best.algorithm_id or Algorithm.MD5).strength:
            best = ch
    return best


def compute_response(*, username: str, realm: str, nonce: str, method: str, uri: str,
                     password: str | None = None, ha1: str | None = None,
                     algorithm: Algorithm | str = Algorithm.MD5, qop: Qop | str | None = None,
                     nc: str | int | None = None, cnonce: str | None = None,
                     body: bytes = b"") -> str:
    """The request-digest (RFC 7616 §3.4.1), lowercase hex.

    ``uri`` is the digest-uri exactly as in the credentials; ``nc`` an int
    or its 8 hex digits; ``body`` is hashed for auth-int only.
    """
    _one_of(password, ha1)
    ncs = f"{nc:08x}" if isinstance(nc, int) else nc
    return str(_wrap(_core.digest_response, algorithm=_alg_name(algorithm), username=username,
                     realm=realm, nonce=nonce, method=method, uri=uri, password=password,
                     ha1=ha1, qop=None if qop is None else str(qop), nc=ncs, cnonce=cnonce,
                     body=body))


def compute_ha1(username: str, realm: str, password: str,
                algorithm: Algorithm | str = Algorithm.MD5) -> str:
    """H(username:realm:password): what a server may store instead of the password."""
    return str(_wrap(_core.digest_ha1, _alg_name(algorithm), username, realm, password))


def compute_userhash(username: str, realm: str,
                     algorithm: Algorithm | str = Algorithm.MD5) -> str:
    """H(username:realm), the RFC 7616 §3.4.4 userhash."""
    return str(_wrap(_core.digest_userhash, _alg_name(algorithm), username, realm))


class NonceFactory:
    """Stateless server nonces and the nc replay guard.

    A nonce carries its issue time and a counter, and an HMAC-SHA256 tag over
    them and the ``binding`` the caller names (the source address, say), so
    checking it needs no per-nonce storage: a nonce from another key or
    another binding is forged, an authentic one past ``lifetime`` seconds is
    stale.  For qop=auth the factory remembers the highest nc per nonce in a
    table of ``replay_slots`` entries; when the table must forget, the
    forgotten nonces become stale, so a replay is never let through.  With
    ``single_use`` a nonce without qop is accepted once.

    ``key`` (16 to 64 bytes) must be kept secret and shared by all servers
    that verify each other's nonces; None draws a random one (nonces then die
    with the process).  Not thread-safe: one per thread or a lock.
    """

    __slots__ = ("_n",)

    def __init__(self, key: bytes | None = None, lifetime: float = 300.0, *,
                 replay_slots: int = 4096, encoding: str = "base64url",
                 single_use: bool = False) -> None:
        if key is None:
            key = secrets.token_bytes(32)
        if not isinstance(key, (bytes, bytearray, memoryview)):
            raise DigestError("key must be bytes")
        if replay_slots < 16:
            raise DigestError("replay_slots must be at least 16")
        self._n: _core.DigestNonces = _wrap(_core.DigestNonces, bytes(key), float(lifetime),
                        replay_slots=replay_slots, encoding=encoding, single_use=single_use)

    @property
    def lifetime(self) -> float:
        """Seconds a nonce stays fresh."""
        return float(self._n.lifetime)

    @property
    def encoding(self) -> str:
        """'base64url' (32 characters) or 'hex' (48)."""
        return str(self._n.encoding)

    def issue(self, *, binding: _Bytes = b"", now: float | None = None) -> str:
        """A fresh nonce bound to ``binding``."""
        return str(_wrap(self._n.issue, _now(now), binding))

    def check(self, nonce: str, *, binding: _Bytes = b"",
              now: float | None = None) -> NonceStatus:
        """Authenticate and age a nonce (no replay bookkeeping)."""
        status, _issued = _wrap(self._n.check, nonce, _now(now), binding)
        return NonceStatus(status)

    def challenge(self, realm: str, *, binding: _Bytes = b"", now: float | None = None,
                  algorithm: Algorithm | str = Algorithm.MD5,
                  qop: Iterable[Qop | str] = (), opaque: str | None = None,
                  stale: bool = False, domain: str | None = None,
                  userhash: bool = False) -> Challenge:
        """A challenge with a fresh nonce.  ``algorithm`` is always written:
        some GB devices answer nothing without it."""
        return Challenge(realm=realm, nonce=self.issue(binding=binding, now=now),
                         algorithm=_alg_name(algorithm), qop=tuple(str(q) for q in qop),
                         opaque=opaque, stale=stale, domain=domain, userhash=userhash)

    def __repr__(self) -> str:
        return (f"NonceFactory(lifetime={self.lifetime:g}, encoding={self.encoding!r}, "
                f"replay_slots={self._n.replay_slots}, single_use={self._n.single_use})")


class Verdict(NamedTuple):
    """The outcome of :func:`verify`: ``ok``, and if not, the ``reason``.

    An immutable value (a named tuple, cheap to make on every REGISTER).
    """

    reason: Reason
    detail: str
    username: str | None = None
    realm: str | None = None
    algorithm: str | None = None
    qop: str | None = None
    nc: int | None = None
    nonce_issued: float | None = None
    offset: int = 0  #: for MALFORMED: byte offset of the problem in the value

    @property
    def ok(self) -> bool:
        return self.reason is Reason.OK

    @property
    def stale(self) -> bool:
        """Challenge again with stale=true (RFC 7616 §3.3): the client knows
        the password, only the nonce is too old."""
        return self.reason is Reason.STALE_NONCE


_REASONS: dict[str, Reason] = {r.value: r for r in Reason}
_ALG_BITS = {a.value: 1 << i for i, a in enumerate(Algorithm)}
assert tuple(_core.DIGEST_ALGORITHMS) == tuple(a.value for a in Algorithm)
_QOP_BITS = {None: 1, "auth": 2, "auth-int": 4}


def verify(credentials: Credentials | _Bytes, method: str, *,
           nonces: NonceFactory | None,
           password: str | SecretLookup | None = None,
           ha1: str | SecretLookup | None = None,
           realm: str | None = None,
           request_uri: str | None = None,
           uri_policy: UriPolicy | None = None,
           algorithms: Iterable[Algorithm | str] | None = None,
           qops: Iterable[Qop | str | None] | None = None,
           opaque: str | None = None,
           binding: _Bytes = b"",
           now: float | None = None,
           body: bytes = b"") -> Verdict:
    """Verify Digest credentials (RFC 7616 §3.4; RFC 3261 §22.4).

    ``credentials`` is an Authorization value or a parsed :class:`Credentials`.
    The secret is ``password`` or a stored ``ha1``: a string, or a lookup
    called with (username, realm) that returns it, (real username, secret)
    for userhash credentials, or None for an unknown user.

    ``nonces`` is the :class:`NonceFactory` that issued the challenge (None
    only when the caller checks nonces itself, as the seed's platform does).
    ``realm``, ``opaque``: what the challenge said (None: not checked).
    ``request_uri`` with ``uri_policy`` (default EXACT when a request_uri is
    given, ANY otherwise) checks the digest-uri, which is hashed as received.
    ``algorithms`` and ``qops`` restrict what is accepted (None: all; a qop
    of None means RFC 2069 style without qop).  ``binding`` must be what the
    nonce was issued with.  ``body`` is needed for qop=auth-int.
    """
    _one_of(password, ha1)
    if isinstance(credentials, Credentials):
        value: _Bytes = credentials.raw if credentials.raw is not None else str(credentials)
    else:
        value = credentials
    if uri_policy is None:
        uri_policy = UriPolicy.ANY if request_uri is None else UriPolicy.EXACT
    if request_uri is None and uri_policy is not UriPolicy.ANY:
        raise DigestError("request_uri is needed unless uri_policy is UriPolicy.ANY")
    alg_mask = 0
    if algorithms is not None:
        for a in algorithms:
            alg_mask |= _ALG_BITS[_alg_name(a)]
        if not alg_mask:
            raise DigestError("algorithms allows nothing")
    qop_mask = 0
    if qops is not None:
        for q in qops:
            key = None if q is None else str(q)
            if key not in _QOP_BITS:
                raise DigestError(f"unknown qop {q!r}")
            qop_mask |= _QOP_BITS[key]
        if not qop_mask:
            raise DigestError("qops allows nothing")
    if nonces is not None and not isinstance(nonces, NonceFactory):
        raise DigestError("nonces must be a NonceFactory or None")
    if realm == "":
        raise DigestError("realm must not be empty")
    name, detail, offset, user, rlm, alg, qop, nc, issued = _wrap(
        _core.digest_verify, value, method, nonces=None if nonces is None else nonces._n,
        password=password, ha1=ha1, realm=realm, request_uri=request_uri,
        uri_policy=int(uri_policy), algorithms=alg_mask, qops=qop_mask, opaque=opaque,
        binding=binding, now=_now(now), body=body)
    return Verdict(_REASONS[name], detail, user, rlm, alg, qop, nc, issued, offset)


class DigestClient:
    """One user answering challenges, with nc counted per nonce (RFC 7616 §3.4).

    ``algorithms`` limits what is answered; among several challenges the
    strongest allowed one is taken.
    """

    __slots__ = ("_username", "_password", "_ha1", "_mask", "_client")

    def __init__(self, username: str, password: str | None = None, *, ha1: str | None = None,
                 algorithms: Iterable[Algorithm | str] | None = None) -> None:
        _one_of(password, ha1)
        self._username = username
        self._password = password
        self._ha1 = ha1
        self._mask = 0
        if algorithms is not None:
            for a in algorithms:
                self._mask |= _ALG_BITS[_alg_name(a)]
            if not self._mask:
                raise DigestError("algorithms allows nothing")
        self._client = _core.DigestClient()

    def authorize(self, challenge: Challenge | str | Sequence[Challenge], *, method: str,
                  uri: str, body: bytes = b"") -> Credentials:
        """Credentials for the next request: a WWW-Authenticate value (str),
        one Challenge or several."""
        if isinstance(challenge, Challenge):
            value = str(challenge)
        elif isinstance(challenge, str):
            value = challenge
        else:
            value = ", ".join(str(c) for c in challenge)
        answer = _wrap(_core.digest_answer, value, username=self._username, method=method,
                       uri=uri, password=self._password, ha1=self._ha1, body=body,
                       client=self._client, algorithms=self._mask)
        return Credentials.parse(str(answer))

    def __repr__(self) -> str:
        return f"DigestClient(username={self._username!r})"
