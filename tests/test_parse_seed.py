"""The seed registration's four messages (GB/T 28181-2016 §9.1.2.1).

REGISTER -> 401 -> REGISTER with Digest -> 200 OK, as captured between an
eXosip camera and a platform.  Every header is reachable, every value is
the one on the wire, and an untouched message serializes byte-identical.
"""
from __future__ import annotations

from datetime import datetime

import pytest

import gbsip

SEED = ["seed-1-register", "seed-2-401", "seed-3-register", "seed-4-200"]


def _headers(data: bytes) -> list[tuple[str, str]]:
    """(name, value) per header line, split by hand from the wire bytes."""
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    lines = head.split("\r\n")[1:]
    return [(n, v.strip()) for n, _, v in (line.partition(":") for line in lines)]


@pytest.mark.parametrize("name", SEED)
def test_seed_message_round_trips_byte_identical(seed_messages: dict[str, bytes], name: str) -> None:
    """Issue 2: an untouched parsed message serializes byte-identical."""
    data = seed_messages[name]
    assert bytes(gbsip.parse(data)) == data


@pytest.mark.parametrize("name", SEED)
def test_seed_message_length_is_wire_length(seed_messages: dict[str, bytes], name: str) -> None:
    """len(msg) is the number of bytes the message occupies on the wire."""
    data = seed_messages[name]
    assert len(gbsip.parse(data)) == len(data)


@pytest.mark.parametrize("name", SEED)
def test_seed_every_header_reachable_in_wire_order(seed_messages: dict[str, bytes], name: str) -> None:
    """RFC 3261 §7.3: header order is kept; headers.items() lists every line."""
    data = seed_messages[name]
    assert gbsip.parse(data).headers.items() == _headers(data)


@pytest.mark.parametrize("name", SEED)
def test_seed_every_header_by_name_any_case(seed_messages: dict[str, bytes], name: str) -> None:
    """RFC 3261 §7.3.1: header names are case-insensitive."""
    data = seed_messages[name]
    headers = gbsip.parse(data).headers
    for hname, value in _headers(data):
        assert headers[hname] == value
        assert headers.get(hname.upper()) == value
        assert headers.get(hname.lower()) == value
        assert hname in headers


@pytest.mark.parametrize("name", SEED)
def test_seed_header_count(seed_messages: dict[str, bytes], name: str) -> None:
    """len(headers) counts header lines."""
    data = seed_messages[name]
    assert len(gbsip.parse(data).headers) == len(_headers(data))


@pytest.mark.parametrize("name", SEED)
def test_seed_validates(seed_messages: dict[str, bytes], name: str) -> None:
    """Every structured header of the seed is well formed (parse(validate=True))."""
    gbsip.parse(seed_messages[name], validate=True).validate()


def test_seed_register_start_line(seed_messages: dict[str, bytes]) -> None:
    """RFC 3261 §7.1 Request-Line: method, Request-URI."""
    msg = gbsip.parse(seed_messages["seed-1-register"])
    assert isinstance(msg, gbsip.Request)
    assert msg.method == "REGISTER"
    assert msg.uri == "sip:192.168.10.177:5060"
    uri = msg.request_uri
    assert (uri.scheme, uri.user, uri.host, uri.port) == ("sip", None, "192.168.10.177", 5060)


def test_seed_register_dialog_identifiers(seed_messages: dict[str, bytes]) -> None:
    """RFC 3261 §8.1.1: Call-ID, CSeq, From tag; To has no tag outside a dialog."""
    msg = gbsip.parse(seed_messages["seed-1-register"])
    assert msg.call_id == "939764460"
    assert msg.cseq == (1, "REGISTER")
    assert msg.from_ is not None and msg.to is not None
    assert msg.from_.tag == "2577708869"
    assert msg.from_.uri == "sip:34020000001320000001@192.168.10.177"
    assert msg.from_.display_name is None
    assert msg.to.tag is None
    assert msg.to.uri == "sip:34020000001320000001@192.168.10.177"


def test_seed_register_via(seed_messages: dict[str, bytes]) -> None:
    """RFC 3261 §20.42 and RFC 3581: sent-by, branch, rport=value, received."""
    msg = gbsip.parse(seed_messages["seed-1-register"])
    assert len(msg.vias) == 1
    via = msg.via
    assert via is not None
    assert via.transport == "UDP"
    assert (via.host, via.port, via.sent_by) == ("192.168.10.117", 5061, "192.168.10.117:5061")
    assert via.rport == 5061
    assert via.branch == "z9hG4bK2509000523"
    assert via.received == "192.168.10.117"


def test_seed_register_contact_keeps_uri_param(seed_messages: dict[str, bytes]) -> None:
    """RFC 3261 §20.10: a ;line= inside <> belongs to the URI, not the Contact."""
    (contact,) = gbsip.parse(seed_messages["seed-1-register"]).contacts
    assert contact.uri == "sip:34020000001320000001@192.168.10.117:5061;line=6513f93347c330b"
    assert contact.expires is None
    assert contact.params == {}
    assert not contact.wildcard


def test_seed_register_scalar_headers(seed_messages: dict[str, bytes]) -> None:
    """Max-Forwards, Expires, Content-Length, User-Agent as numbers/text."""
    msg = gbsip.parse(seed_messages["seed-1-register"])
    assert msg.max_forwards == 70
    assert msg.expires == 3600
    assert msg.content_length == 0
    assert msg.user_agent == "eXosip/3.6.0"
    assert msg.body == b""
    assert msg.content_type is None
    assert msg.date is None


def test_seed_register_capability_authorization_parses(seed_messages: dict[str, bytes]) -> None:
    """GB/T 28181 field quirk: `Authorization: Capability, algorithm="H:MD5"` is
    accepted as a header (a GB 35114 capability hint, not a credential)."""
    msg = gbsip.parse(seed_messages["seed-1-register"], validate=True)
    assert msg.headers["Authorization"] == 'Capability, algorithm="H:MD5"'


def test_seed_401_status_line_and_challenge(seed_messages: dict[str, bytes]) -> None:
    """RFC 3261 §7.2 Status-Line; §22.1 WWW-Authenticate kept verbatim."""
    msg = gbsip.parse(seed_messages["seed-2-401"])
    assert isinstance(msg, gbsip.Response)
    assert (msg.status, msg.reason) == (401, "Unauthorized")
    assert msg.headers["WWW-Authenticate"] == 'Digest realm="3402000000",nonce="324cab6e557268e0"'
    assert msg.to is not None
    assert msg.to.tag == "66081813_53173353_54026835-98f6-4d1e-b562-0d969636b944"
    assert msg.cseq == (1, "REGISTER")


def test_seed_second_register_same_call_id_next_cseq(seed_messages: dict[str, bytes]) -> None:
    """RFC 3261 §10.2.4 / GB/T 28181 §9.1: same Call-ID and From tag, CSeq + 1, new branch."""
    first = gbsip.parse(seed_messages["seed-1-register"])
    second = gbsip.parse(seed_messages["seed-3-register"])
    assert second.call_id == first.call_id
    assert second.from_ is not None and first.from_ is not None
    assert second.from_.tag == first.from_.tag
    assert second.cseq == (first.cseq.number + 1, "REGISTER")  # type: ignore[union-attr]
    assert second.via is not None and first.via is not None
    assert second.via.branch != first.via.branch


def test_seed_second_register_digest_credentials_verbatim(seed_messages: dict[str, bytes]) -> None:
    """RFC 3261 §22.2: the Authorization header reaches the verifier unchanged."""
    msg = gbsip.parse(seed_messages["seed-3-register"])
    assert msg.headers.get("authorization") == (
        'Digest username="34020000001320000001",realm="3402000000",'
        'nonce="324cab6e557268e0",uri="sip:192.168.10.177:5060",'
        'response="7f536c8ce38593239f9130e37a72276e",algorithm=MD5'
    )


def test_seed_200_gb_date(seed_messages: dict[str, bytes]) -> None:
    """GB/T 28181-2016 §9.10: Date `yyyy-MM-ddTHH:mm:ss.SSS`, local time without zone."""
    msg = gbsip.parse(seed_messages["seed-4-200"])
    assert msg.date == datetime(2013, 6, 26, 16, 8, 37, 164000)
    assert msg.date.tzinfo is None  # type: ignore[union-attr]


def test_seed_200_echoes_contact_and_expires(seed_messages: dict[str, bytes]) -> None:
    """RFC 3261 §10.3 step 8: the 200 lists the binding with its lifetime."""
    msg = gbsip.parse(seed_messages["seed-4-200"])
    assert (msg.status, msg.reason) == (200, "OK")
    assert [c.uri for c in msg.contacts] == [
        "sip:34020000001320000001@192.168.10.117:5061;line=6513f93347c330b"]
    assert msg.expires == 3600


def test_seed_accepts_bytearray_and_memoryview(seed_register: bytes) -> None:
    """The parser takes any buffer (bytes, bytearray, memoryview)."""
    for buf in (bytearray(seed_register), memoryview(seed_register)):
        msg = gbsip.parse(buf)
        assert msg.call_id == "939764460"
        assert bytes(msg) == seed_register


def test_seed_parse_copies_from_mutable_buffer(seed_register: bytes) -> None:
    """A parsed message does not change when the caller reuses its buffer."""
    buf = bytearray(seed_register)
    msg = gbsip.parse(buf)
    buf[:] = b"X" * len(buf)
    assert msg.call_id == "939764460"
    assert bytes(msg) == seed_register
