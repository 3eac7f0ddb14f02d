"""Building messages: Request/Response constructors, reply() per RFC 3261
§8.2.6, header set/add/remove, bytes(msg)."""
from __future__ import annotations

import pytest

import gbsip

HEADERS = [
    ("Via", "SIP/2.0/UDP 192.168.10.117:5061;rport;branch=z9hG4bK2509000523"),
    ("Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKproxy1"),
    ("From", "<sip:34020000001320000001@3402000000>;tag=2577708869"),
    ("To", "<sip:34020000001320000001@3402000000>"),
    ("Call-ID", "939764460"),
    ("CSeq", "1 REGISTER"),
    ("Contact", "<sip:34020000001320000001@192.168.10.117:5061>"),
    ("Max-Forwards", "70"),
    ("X-Vendor-Thing", "kept as is"),
    ("Expires", "3600"),
]


MESSAGE_HEADERS = [(n, "20 MESSAGE" if n == "CSeq" else v) for n, v in HEADERS[:6]]


def _register() -> gbsip.Request:
    return gbsip.Request("REGISTER", "sip:34020000002000000001@3402000000", HEADERS)


def test_request_start_line() -> None:
    """RFC 3261 §7.1: Method SP Request-URI SP SIP-Version CRLF."""
    assert bytes(_register()).startswith(b"REGISTER sip:34020000002000000001@3402000000 SIP/2.0\r\n")


def test_request_headers_in_given_order() -> None:
    """Header order and unknown headers are kept as given."""
    msg = gbsip.parse(bytes(_register()))
    assert [(n, v) for n, v in msg.headers.items() if n != "Content-Length"] == HEADERS


def test_request_content_length_written_from_body() -> None:
    """RFC 3261 §20.14 / §18.3: the builder writes Content-Length from the body."""
    req = gbsip.Request("MESSAGE", "sip:a@b", MESSAGE_HEADERS, body=b"<Notify/>")
    msg = gbsip.parse(bytes(req))
    assert (msg.content_length, msg.body) == (9, b"<Notify/>")
    assert bytes(req).endswith(b"Content-Length: 9\r\n\r\n<Notify/>")


def test_request_without_body_has_content_length_zero() -> None:
    """RFC 3261 §18.3: Content-Length 0 when there is no body (stream-safe)."""
    assert bytes(_register()).endswith(b"\r\nContent-Length: 0\r\n\r\n")


def test_request_properties_read_back() -> None:
    """A built Request reads back like a parsed one."""
    req = _register()
    assert (req.method, req.uri, req.call_id, req.cseq) == (
        "REGISTER", "sip:34020000002000000001@3402000000", "939764460", (1, "REGISTER"))
    assert len(req) == len(bytes(req))


def test_response_default_reason() -> None:
    """RFC 3261 §21: the standard reason phrase when none is given."""
    assert bytes(gbsip.Response(401)).startswith(b"SIP/2.0 401 Unauthorized\r\n")
    assert gbsip.status_phrase(423) == "Interval Too Brief"


def test_response_custom_reason() -> None:
    """RFC 3261 §7.2: the reason phrase is free text."""
    resp = gbsip.Response(200, "Very OK", [("Call-ID", "x")])
    assert (resp.status, resp.reason) == (200, "Very OK")
    assert bytes(resp).startswith(b"SIP/2.0 200 Very OK\r\n")


def test_reply_copies_via_from_to_call_id_cseq() -> None:
    """RFC 3261 §8.2.6.2: Via (all, in order), From, To, Call-ID, CSeq copied."""
    req = _register()
    resp = gbsip.parse(bytes(req.reply(401, to_tag="t1")))
    assert isinstance(resp, gbsip.Response)
    assert resp.headers.getall("Via") == [HEADERS[0][1], HEADERS[1][1]]
    assert resp.headers["From"] == HEADERS[2][1]
    assert resp.headers["Call-ID"] == "939764460"
    assert resp.headers["CSeq"] == "1 REGISTER"


def test_reply_adds_to_tag() -> None:
    """RFC 3261 §8.2.6.2: a UAS adds a To tag when the request had none."""
    resp = _register().reply(200, to_tag="31428812")
    assert resp.to is not None and resp.to.tag == "31428812"
    assert resp.headers["To"] == "<sip:34020000001320000001@3402000000>;tag=31428812"


def test_reply_keeps_existing_to_tag() -> None:
    """RFC 3261 §8.2.6.2: an in-dialog request's To tag is kept, not replaced."""
    headers = [(n, v + ";tag=existing" if n == "To" else v) for n, v in HEADERS]
    req = gbsip.Request("REGISTER", "sip:a@b", headers)
    resp = req.reply(200, to_tag="new")
    assert resp.to is not None and resp.to.tag == "existing"


def test_reply_100_has_no_to_tag() -> None:
    """RFC 3261 §8.2.6.1: 100 Trying is sent without a To tag."""
    resp = _register().reply(100, to_tag="nope")
    assert resp.to is not None and resp.to.tag is None


def test_reply_does_not_copy_other_headers() -> None:
    """RFC 3261 §8.2.6.2: only the listed headers are copied."""
    resp = _register().reply(200, to_tag="x")
    assert "X-Vendor-Thing" not in resp.headers
    assert "Max-Forwards" not in resp.headers


def test_reply_extra_headers_and_body() -> None:
    """reply() adds the caller's headers and body after CSeq."""
    resp = _register().reply(200, to_tag="x", headers=[("Expires", "3600"), ("Date", "2013-06-26T16:08:37.164")],
                             body=b"")
    assert resp.expires == 3600
    assert resp.headers["Date"] == "2013-06-26T16:08:37.164"
    names = [n for n, _ in resp.headers.items()]
    assert names.index("Expires") > names.index("CSeq")


def test_reply_received_and_rport() -> None:
    """RFC 3581 §4: the top Via gets received= and the empty rport its value."""
    resp = _register().reply(200, to_tag="x", received="203.0.113.9", rport=40111)
    assert resp.via is not None
    assert (resp.via.received, resp.via.rport) == ("203.0.113.9", 40111)
    assert resp.vias[1].received is None


def test_reply_custom_reason() -> None:
    """RFC 3261 §21.4.3: a 403 with the platform's own reason phrase."""
    resp = _register().reply(403, "Forbidden Device", to_tag="x")
    assert (resp.status, resp.reason) == (403, "Forbidden Device")


def test_reply_of_parsed_seed_matches_seed_401_headers(seed_messages: dict[str, bytes]) -> None:
    """GB/T 28181 §9.1.2.1: the 401 to the seed REGISTER copies its Via, From,
    Call-ID and CSeq exactly as the seed's 401 does."""
    req = gbsip.parse(seed_messages["seed-1-register"])
    seed_401 = gbsip.parse(seed_messages["seed-2-401"])
    resp = req.reply(401, to_tag="66081813_53173353_54026835-98f6-4d1e-b562-0d969636b944")  # type: ignore[union-attr]
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        assert resp.headers[name] == seed_401.headers[name], name


def test_set_header_replaces_in_place() -> None:
    """set_header keeps the header's position and every other header."""
    req = _register()
    req.set_header("Expires", "60")
    assert req.expires == 60
    names = [n for n, _ in req.headers.items()]
    assert names.index("Expires") == [n for n, _ in HEADERS].index("Expires")
    assert req.headers["X-Vendor-Thing"] == "kept as is"


def test_set_header_adds_when_absent() -> None:
    """set_header on an absent header adds it."""
    req = _register()
    req.set_header("User-Agent", "gbsip")
    assert req.user_agent == "gbsip"


def test_set_header_replaces_all_lines() -> None:
    """set_header leaves exactly one line of that header."""
    req = _register()
    req.set_header("Via", "SIP/2.0/TCP 192.0.2.1;branch=z9hG4bKonly")
    assert req.headers.getall("Via") == ["SIP/2.0/TCP 192.0.2.1;branch=z9hG4bKonly"]


def test_add_header_appends_another_line() -> None:
    """add_header adds a line and keeps the existing ones in order."""
    req = _register()
    req.add_header("Route", "<sip:p1;lr>")
    req.add_header("Route", "<sip:p2;lr>")
    assert req.headers.getall("Route") == ["<sip:p1;lr>", "<sip:p2;lr>"]
    assert [v for n, v in req.headers.items() if n == "Via"] == [HEADERS[0][1], HEADERS[1][1]]


def test_remove_header_returns_count() -> None:
    """remove_header removes every line of the header and says how many."""
    req = _register()
    assert req.remove_header("Via") == 2
    assert req.headers.getall("Via") == []
    assert req.remove_header("Via") == 0
    assert req.headers["X-Vendor-Thing"] == "kept as is"


def test_remove_header_by_compact_name() -> None:
    """RFC 3261 §7.3.3: the compact name names the same header."""
    req = _register()
    assert req.remove_header("m") == 1
    assert req.contacts == []


def test_mutated_message_reparses_to_same_bytes() -> None:
    """bytes(msg) after mutation is a message that parses to the same bytes."""
    req = _register()
    req.set_header("CSeq", "2 REGISTER")
    req.add_header("Authorization", 'Digest username="34020000001320000001"')
    req.remove_header("X-Vendor-Thing")
    data = bytes(req)
    assert bytes(gbsip.parse(data)) == data
    assert gbsip.parse(data).cseq == (2, "REGISTER")


def test_set_body_updates_content_length_and_type() -> None:
    """RFC 3261 §20.14/§20.15: set_body rewrites Content-Length and Content-Type."""
    req = gbsip.Request("MESSAGE", "sip:a@b", MESSAGE_HEADERS)
    req.set_body(b"<Notify>x</Notify>", "Application/MANSCDP+xml")
    msg = gbsip.parse(bytes(req))
    assert (msg.content_type, msg.content_length, msg.body) == (
        "Application/MANSCDP+xml", 18, b"<Notify>x</Notify>")


def test_parsed_message_mutation_keeps_unknown_headers() -> None:
    """Issue 2: unknown headers and order survive an edit of a parsed message."""
    data = bytes(_register())
    msg = gbsip.parse(data)
    msg.set_header("Expires", "0")
    out = bytes(msg)
    assert out.replace(b"Expires: 0", b"Expires: 3600") == data


def test_header_line_number() -> None:
    """header_line gives the 1-based line of a header (start line is 1)."""
    msg = gbsip.parse(bytes(_register()))
    assert msg.header_line("Call-ID") == 6
    assert msg.header_line("Subject") is None


@pytest.mark.parametrize("name,value", [("Bad Name", "x"), ("X-A", "line\r\nInjected: 1")])
def test_header_injection_refused(name: str, value: str) -> None:
    """Building never writes a header that would change the message's meaning
    (CRLF in a value, space in a name)."""
    with pytest.raises((gbsip.GBSIPError, ValueError)):
        gbsip.Request("OPTIONS", "sip:a@b", [(name, value)])
