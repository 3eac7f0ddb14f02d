"""Property tests (hypothesis): build -> serialize -> parse is the identity
on generated requests and responses; arbitrary bytes never crash parse()."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gbsip

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# RFC 3261 §25.1 token characters
TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~",
                min_size=1, max_size=20)
# Extension header names that are not ones the core knows (X- prefix avoids
# compact forms and single-valued headers).
EXT_NAME = TOKEN.map(lambda s: "X-" + s)
# A header value: visible ASCII and inner spaces, trimmed (RFC 3261 §25.1 TEXT-UTF8).
VALUE = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40) \
    .flatmap(lambda a: st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)
             .map(lambda mid: (a + mid + a).strip()))
METHOD = st.sampled_from(["REGISTER", "MESSAGE", "INVITE", "OPTIONS", "BYE", "NOTIFY", "SUBSCRIBE"]) | \
    TOKEN.filter(lambda s: s.isupper() and s.isalpha())
BODY = st.binary(max_size=300)
DIGITS = st.text(alphabet="0123456789", min_size=20, max_size=20)


@st.composite
def core_headers(draw: st.DrawFn, method: str) -> list[tuple[str, str]]:
    device = draw(DIGITS)
    return [
        ("Via", f"SIP/2.0/UDP 192.0.2.{draw(st.integers(1, 254))}:{draw(st.integers(1, 65535))};"
                f"rport;branch=z9hG4bK{draw(st.integers(0, 2**40))}"),
        ("From", f"<sip:{device}@3402000000>;tag={draw(st.integers(0, 2**32))}"),
        ("To", f"<sip:{device}@3402000000>"),
        ("Call-ID", draw(TOKEN)),
        ("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {method}"),
    ]


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, list[tuple[str, str]], bytes]:
    method = draw(METHOD)
    uri = f"sip:{draw(DIGITS)}@3402000000"
    extra = draw(st.lists(st.tuples(EXT_NAME, VALUE), max_size=8))
    headers = draw(core_headers(method)) + extra
    return method, uri, headers, draw(BODY)


@SETTINGS
@given(requests())
def test_request_build_parse_identity(req: tuple[str, str, list[tuple[str, str]], bytes]) -> None:
    """RFC 3261 §7: a built request parses back to the same method, URI,
    headers in order, and body; serializing again gives the same bytes."""
    method, uri, headers, body = req
    built = gbsip.Request(method, uri, headers, body=body)
    data = bytes(built)
    msg = gbsip.parse(data)
    assert isinstance(msg, gbsip.Request)
    assert (msg.method, msg.uri, msg.body) == (method, uri, body)
    assert [(n, v) for n, v in msg.headers.items() if n != "Content-Length"] == headers
    assert bytes(msg) == data


@SETTINGS
@given(st.integers(100, 699), st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", min_size=1, max_size=30)
       .map(str.strip).filter(bool), st.lists(st.tuples(EXT_NAME, VALUE), max_size=8), BODY,
       st.data())
def test_response_build_parse_identity(status: int, reason: str, extra: list[tuple[str, str]],
                                       body: bytes, data: st.DataObject) -> None:
    """RFC 3261 §7.2: a built response parses back to the same status,
    reason, headers and body."""
    headers = data.draw(core_headers("REGISTER")) + extra
    built = gbsip.Response(status, reason, headers, body=body)
    msg = gbsip.parse(bytes(built))
    assert isinstance(msg, gbsip.Response)
    assert (msg.status, msg.reason, msg.body) == (status, reason, body)
    assert [(n, v) for n, v in msg.headers.items() if n != "Content-Length"] == headers


@SETTINGS
@given(requests())
def test_reply_parses_and_matches_request(req: tuple[str, str, list[tuple[str, str]], bytes]) -> None:
    """RFC 3261 §8.2.6.2: reply() of any built request parses and carries its
    Call-ID, CSeq and From."""
    method, uri, headers, body = req
    request = gbsip.Request(method, uri, headers, body=body)
    resp = gbsip.parse(bytes(request.reply(200, to_tag="t")))
    assert (resp.call_id, resp.cseq) == (request.call_id, request.cseq)
    assert resp.headers["From"] == request.headers["From"]


@SETTINGS
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash_parse(data: bytes) -> None:
    """Any input either parses or raises SIPParseError (nothing else)."""
    try:
        msg = gbsip.parse(data, validate=True)
    except gbsip.SIPParseError as err:
        assert 400 <= err.status <= 599
        return
    bytes(msg)


@SETTINGS
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash_frame(data: bytes) -> None:
    """frame() returns None, a (skip, length) inside the data, or raises SIPParseError."""
    try:
        result = gbsip.frame(data)
    except gbsip.SIPParseError:
        return
    if result is not None:
        skip, length = result
        assert 0 <= skip and skip + length <= len(data)


SEED_LIKE = (b"REGISTER sip:192.168.10.177:5060 SIP/2.0\r\n"
             b"Via: SIP/2.0/UDP 192.168.10.117:5061;rport=5061;branch=z9hG4bK2509000523\r\n"
             b"From: <sip:34020000001320000001@192.168.10.177>;tag=2577708869\r\n"
             b"To: <sip:34020000001320000001@192.168.10.177>\r\n"
             b"Call-ID: 939764460\r\nCSeq: 1 REGISTER\r\n"
             b"Contact: <sip:34020000001320000001@192.168.10.117:5061>\r\n"
             b"Date: 2013-06-26T16:08:37.164\r\nContent-Length: 0\r\n\r\n")


@SETTINGS
@given(st.integers(0, len(SEED_LIKE) - 1), st.binary(min_size=1, max_size=4))
def test_mutated_seed_never_crashes(pos: int, patch: bytes) -> None:
    """Overwriting bytes of a real REGISTER gives a message or SIPParseError,
    and every field of a message that parses reads or raises SIPParseError."""
    data = SEED_LIKE[:pos] + patch + SEED_LIKE[pos + len(patch):]
    try:
        msg = gbsip.parse(data)
    except gbsip.SIPParseError:
        return
    for name in ("call_id", "cseq", "from_", "to", "vias", "contacts", "expires", "date", "body"):
        try:
            getattr(msg, name)
        except gbsip.SIPParseError:
            pass
