"""Structured header values: URIs, name-addr, Contact, Via, Date, CSeq,
compact forms, folding and comma lists (RFC 3261 §7.3, §19.1, §20, §25)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

import gbsip


def _request(*headers: str, method: str = "REGISTER", body: bytes = b"") -> bytes:
    """A minimal valid request with extra header lines."""
    base = [
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds",
        "From: <sip:34020000001320000001@3402000000>;tag=1928301774",
        "To: <sip:34020000001320000001@3402000000>",
        "Call-ID: a84b4c76e66710",
        f"CSeq: 314159 {method}",
    ]
    lines = [f"{method} sip:34020000002000000001@3402000000 SIP/2.0", *base, *headers,
             f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode() + body


# --- URI (RFC 3261 §19.1) ---------------------------------------------------

def test_uri_user_password_host_port() -> None:
    """RFC 3261 §19.1.1: userinfo with password, host, port."""
    uri = gbsip.parse_uri("sip:alice:secretword@atlanta.com:5070")
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        "sip", "alice", "secretword", "atlanta.com", 5070)


def test_uri_without_user() -> None:
    """RFC 3261 §19.1.1: userinfo is optional (the seed's Request-URI)."""
    uri = gbsip.parse_uri("sip:192.168.10.177:5060")
    assert (uri.user, uri.password, uri.host, uri.port) == (None, None, "192.168.10.177", 5060)


def test_uri_ipv6_reference_keeps_brackets() -> None:
    """RFC 3261 §19.1.1 / RFC 5118: an IPv6 host is an IPv6reference in []."""
    uri = gbsip.parse_uri("sips:[2001:db8::10]:5061")
    assert (uri.scheme, uri.host, uri.port) == ("sips", "[2001:db8::10]", 5061)


def test_uri_ipv6_without_port() -> None:
    """RFC 5118 §4.1: IPv6 host with user and no port."""
    uri = gbsip.parse_uri("sip:user@[2001:db8::9:1]")
    assert (uri.user, uri.host, uri.port) == ("user", "[2001:db8::9:1]", None)


def test_uri_params_with_and_without_value() -> None:
    """RFC 3261 §19.1.1: uri-parameters, `lr` without a value."""
    uri = gbsip.parse_uri("sip:proxy.example.com;transport=tcp;lr")
    assert uri.params == {"transport": "tcp", "lr": None}


def test_uri_headers() -> None:
    """RFC 3261 §19.1.1: headers after `?`, separated by `&`."""
    uri = gbsip.parse_uri("sip:bob@biloxi.com?subject=project&priority=urgent")
    assert uri.headers == {"subject": "project", "priority": "urgent"}


def test_uri_user_escapes_decoded() -> None:
    """RFC 3261 §19.1.2 / RFC 4475 §3.1.1.3: %HH in the user part decodes."""
    uri = gbsip.parse_uri("sip:sips%3Auser%40example.com@example.net")
    assert (uri.user, uri.host) == ("sips:user@example.com", "example.net")


def test_uri_raw_is_the_input() -> None:
    """URI.raw keeps the text as given."""
    text = "sip:%61lice@atlanta.com;maddr=239.255.255.1;ttl=15"
    assert gbsip.parse_uri(text).raw == text


def test_uri_gb_device_id_user() -> None:
    """GB/T 28181 §4 / §9.1: From/To are sip:<20-digit ID>@<10-digit domain>."""
    uri = gbsip.parse_uri("sip:34020000001320000001@3402000000")
    assert (uri.user, uri.host, uri.port) == ("34020000001320000001", "3402000000", None)


@pytest.mark.parametrize("text", [
    "sip:",                      # no host
    "sip:user@",                 # empty host
    "sip:host:99999",            # port past 65535
    "sip:host:5o60",             # non-digit port
    "sip:[2001:db8::1",          # unclosed IPv6 reference
    "sip:us%4g@host",           # bad escape
    "no-scheme-here",
])
def test_uri_malformed_raises(text: str) -> None:
    """RFC 3261 §25.1 SIP-URI grammar: malformed URIs raise SIPParseError."""
    with pytest.raises(gbsip.SIPParseError):
        gbsip.parse_uri(text)


@pytest.mark.parametrize("text,offset,why", [
    ("sip:[2001:db8:::192.0.2.1]", 15, "empty group"),   # RFC 5118 §4.10, RFC 5954
    ("sip:[2001:db8::1::2]", 16, 'more than one "::"'),
    ("sip:[1:2:3:4:5:6:7]", 5, "eight groups"),
    ("sip:[::256.0.0.1]", 7, "IPv4 part"),
])
def test_uri_ipv6_reference_outside_rfc3986_grammar_raises(text: str, offset: int,
                                                            why: str) -> None:
    """Issue 14: an IPv6 reference must be an RFC 3986 §3.2.2 IPv6address; the error
    says where and why."""
    with pytest.raises(gbsip.SIPParseError) as info:
        gbsip.parse_uri(text)
    assert (info.value.code, info.value.offset) == ("URI", offset)
    assert why in info.value.reason


def test_three_colon_ipv6_reference_in_to_names_its_line() -> None:
    """Issue 14: [2001:db8:::192.0.2.1] in To is refused on validate, naming To's line."""
    data = (b"OPTIONS sip:user@[2001:db8::192.0.2.1] SIP/2.0\r\n"
            b"To: sip:user@[2001:db8:::192.0.2.1]\r\n"
            b"From: sip:user@example.com;tag=810x2\r\n"
            b"Via: SIP/2.0/UDP lab1.east.example.com;branch=z9hG4bKas3-111\r\n"
            b"Call-ID: G9559905523997077@hlau_4100\r\nCSeq: 689 OPTIONS\r\n"
            b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(gbsip.SIPParseError) as info:
        gbsip.parse(data, validate=True)
    assert (info.value.line, info.value.header, info.value.status) == (2, "To", 400)
    assert "empty group" in info.value.reason


# --- name-addr (RFC 3261 §20.10, §25.1) -------------------------------------

def test_name_addr_quoted_display_name_with_escapes() -> None:
    """RFC 3261 §25.1 quoted-pair: `\\"` and `\\\\` are unescaped."""
    na = gbsip.parse_name_addr(r'"J Rosenberg \\\"" <sip:jdrosen@example.com>;tag=98asjd8')
    assert na.display_name == 'J Rosenberg \\"'
    assert (na.uri, na.tag) == ("sip:jdrosen@example.com", "98asjd8")


def test_name_addr_token_display_name() -> None:
    """RFC 3261 §25.1: display-name may be tokens separated by LWS."""
    na = gbsip.parse_name_addr("Bob Smith <sip:bob@biloxi.com>")
    assert (na.display_name, na.uri, na.tag) == ("Bob Smith", "sip:bob@biloxi.com", None)


def test_name_addr_without_display_name() -> None:
    """RFC 3261 §20.20: `<uri>;tag=` without display name (the seed's From)."""
    na = gbsip.parse_name_addr("<sip:34020000001320000001@192.168.10.177>;tag=2577708869")
    assert (na.display_name, na.uri, na.tag) == (
        None, "sip:34020000001320000001@192.168.10.177", "2577708869")


def test_name_addr_uri_params_stay_in_uri() -> None:
    """RFC 3261 §20.10: parameters inside <> belong to the URI, after it to the header."""
    na = gbsip.parse_name_addr("<sip:a@b;transport=tcp>;tag=7;x=y")
    assert na.uri == "sip:a@b;transport=tcp"
    assert na.params == {"tag": "7", "x": "y"}


def test_addr_spec_params_belong_to_header() -> None:
    """RFC 3261 §20.10: without <>, `;` after the URI starts header parameters."""
    na = gbsip.parse_name_addr("sip:caller@example.net;tag=93942939o2")
    assert (na.uri, na.tag) == ("sip:caller@example.net", "93942939o2")


def test_addr_spec_with_spaces_before_params() -> None:
    """RFC 3261 §25.1 SEMI = SWS ";" SWS and EQUAL = SWS "=" SWS: spaces
    around `;` and `=` after an addr-spec are allowed (RFC 4475 wsinv's To)."""
    na = gbsip.parse_name_addr("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n")
    assert (na.uri, na.tag) == ("sip:vivekg@chair-dnrc.example.com", "1918181833n")


def test_name_addr_display_name_holds_comma_and_angle() -> None:
    """RFC 3261 §25.1: a quoted display name may hold `,`, `<` and `;`."""
    na = gbsip.parse_name_addr('"Bell, A. <x>; y" <sip:a.g.bell@example.com>')
    assert na.display_name == "Bell, A. <x>; y"
    assert na.uri == "sip:a.g.bell@example.com"


@pytest.mark.parametrize("text", [
    '"unterminated <sip:a@b>',
    "<sip:a@b",
    "Bell, Alexander <sip:a.g.bell@example.com>",
])
def test_name_addr_malformed_raises(text: str) -> None:
    """RFC 4475 §3.1.2.6 / §3.1.2.15: malformed name-addr raises SIPParseError."""
    with pytest.raises(gbsip.SIPParseError):
        gbsip.parse_name_addr(text)


# --- Contact (RFC 3261 §20.10) ----------------------------------------------

def test_contact_wildcard() -> None:
    """RFC 3261 §10.2.2: `Contact: *` with `Expires: 0` removes all bindings."""
    msg = gbsip.parse(_request("Contact: *", "Expires: 0"), validate=True)
    (contact,) = msg.contacts
    assert contact.uri == "*"
    assert contact.wildcard


def test_contact_expires_and_q_params() -> None:
    """RFC 3261 §20.10: contact-params expires and q."""
    msg = gbsip.parse(_request('Contact: "Cam" <sip:cam@192.0.2.7:5060>;expires=3600;q=0.7;+sip.instance="<urn:x>"'))
    (contact,) = msg.contacts
    assert (contact.display_name, contact.uri, contact.expires, contact.q) == (
        "Cam", "sip:cam@192.0.2.7:5060", 3600, 0.7)
    assert contact.params["+sip.instance"] == "<urn:x>"


def test_contact_comma_list_not_split_inside_quotes_or_angles() -> None:
    """RFC 3261 §7.3.1: commas inside quoted strings and <> do not separate values."""
    msg = gbsip.parse(_request('Contact: "Doe, John" <sip:a,b@h1>, <sip:c@h2>;expires=60'))
    assert [c.uri for c in msg.contacts] == ["sip:a,b@h1", "sip:c@h2"]
    assert msg.contacts[0].display_name == "Doe, John"
    assert msg.contacts[1].expires == 60


def test_contact_lines_and_lists_combine_in_order() -> None:
    """RFC 3261 §7.3.1: several lines and comma lists are one list, in order."""
    msg = gbsip.parse(_request("Contact: <sip:a@h1>, <sip:b@h2>", "m: <sip:c@h3>"))
    assert [c.uri for c in msg.contacts] == ["sip:a@h1", "sip:b@h2", "sip:c@h3"]


# --- Via (RFC 3261 §20.42, RFC 3581) -----------------------------------------

def test_via_rport_without_value() -> None:
    """RFC 3581 §3: a client asks for rport with an empty `rport` parameter."""
    (via,) = gbsip.parse_via("SIP/2.0/UDP 192.168.10.117:5061;rport;branch=z9hG4bK1")
    assert via.rport is True
    assert via.received is None


def test_via_rport_with_value_and_received() -> None:
    """RFC 3581 §4: the server fills rport and adds received."""
    (via,) = gbsip.parse_via(
        "SIP/2.0/UDP 192.168.10.117:5061;rport=5061;branch=z9hG4bK2509000523;received=192.168.10.117")
    assert (via.rport, via.received, via.branch) == (5061, "192.168.10.117", "z9hG4bK2509000523")


def test_via_without_rport() -> None:
    """RFC 3261 §20.42: rport absent reads as None."""
    (via,) = gbsip.parse_via("SIP/2.0/TCP 192.0.2.4;branch=z9hG4bK7")
    assert (via.transport, via.host, via.port, via.rport) == ("TCP", "192.0.2.4", None, None)


def test_via_ipv6_sent_by() -> None:
    """RFC 5118 §4.5: an IPv6 sent-by keeps its brackets; the port follows."""
    (via,) = gbsip.parse_via("SIP/2.0/UDP [2001:db8::9:1]:5070;branch=z9hG4bKas3")
    assert (via.host, via.port, via.sent_by) == ("[2001:db8::9:1]", 5070, "[2001:db8::9:1]:5070")


def test_via_comma_list() -> None:
    """RFC 3261 §20.42: one Via line may carry several values."""
    vias = gbsip.parse_via("SIP/2.0/UDP a.example.com;branch=z9hG4bK1 , SIP/2.0/TCP b.example.com:5062;branch=z9hG4bK2")
    assert [(v.transport, v.host, v.port, v.branch) for v in vias] == [
        ("UDP", "a.example.com", None, "z9hG4bK1"), ("TCP", "b.example.com", 5062, "z9hG4bK2")]


def test_via_lws_inside_protocol() -> None:
    """RFC 3261 §25.1 SLASH = SWS "/" SWS (RFC 4475 wsinv)."""
    (via,) = gbsip.parse_via("SIP  / 2.0  / TCP     spindle.example.com   ;  branch  =   z9hG4bK9ikj8")
    assert (via.transport, via.host, via.branch) == ("TCP", "spindle.example.com", "z9hG4bK9ikj8")


def test_via_unknown_params_kept() -> None:
    """RFC 3261 §20.42 via-extension: unknown parameters are kept."""
    (via,) = gbsip.parse_via("SIP/2.0/UDP h;branch=z9hG4bK1;maddr=224.2.0.1;ttl=16;foo")
    assert via.params["maddr"] == "224.2.0.1"
    assert via.params["ttl"] == "16"
    assert via.params["foo"] is None


@pytest.mark.parametrize("text", [
    "SIP/2.0/UDP",              # no sent-by
    "SIP/2.0 192.0.2.1",        # no transport
    "SIP/2.0/UDP 192.0.2.1;;,;,,",  # RFC 4475 badinv01
    "SIP/2.0/UDP host:70000",   # port out of range
])
def test_via_malformed_raises(text: str) -> None:
    """RFC 3261 §25.1 Via grammar: malformed values raise SIPParseError."""
    with pytest.raises(gbsip.SIPParseError):
        gbsip.parse_via(text)


# --- compact forms, folding, lists in messages --------------------------------

def test_compact_header_forms() -> None:
    """RFC 3261 §7.3.3: i f t v m l c k s e o are the compact names."""
    data = (b"MESSAGE sip:34020000002000000001@3402000000 SIP/2.0\r\n"
            b"v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKc1\r\n"
            b"f: <sip:a@h>;tag=1\r\nt: <sip:b@h>\r\ni: compact-1\r\n"
            b"CSeq: 2 MESSAGE\r\nm: <sip:a@192.0.2.1>\r\nc: text/plain\r\n"
            b"s: hello\r\nk: path\r\ne: gzip\r\nl: 2\r\n\r\nhi")
    msg = gbsip.parse(data, validate=True)
    assert msg.call_id == "compact-1"
    assert msg.from_ is not None and msg.from_.tag == "1"
    assert msg.to is not None and msg.to.uri == "sip:b@h"
    assert msg.via is not None and msg.via.branch == "z9hG4bKc1"
    assert [c.uri for c in msg.contacts] == ["sip:a@192.0.2.1"]
    assert msg.content_type == "text/plain"
    assert msg.content_length == 2 and msg.body == b"hi"
    assert msg.headers["Subject"] == "hello"
    assert msg.headers["Supported"] == "path"
    assert msg.headers["Content-Encoding"] == "gzip"


def test_header_names_case_insensitive() -> None:
    """RFC 3261 §7.3.1: field names are case-insensitive."""
    msg = gbsip.parse(_request("mAx-FoRwArDs: 69", "X-GB-Ver: 3.0"))
    assert msg.max_forwards == 69
    assert msg.headers.get("x-gb-ver") == "3.0"
    assert msg.headers.get("X-GB-VER") == "3.0"


def test_folded_value_unfolded() -> None:
    """RFC 3261 §7.3.1: a continuation line (leading SP/HT) is part of the
    value; reading it replaces each fold with one SP."""
    msg = gbsip.parse(_request("Subject: first part\r\n\tsecond part\r\n   third"))
    assert msg.headers["Subject"] == "first part second part third"


def test_folded_value_round_trips_unchanged() -> None:
    """Folding is undone for reading only; bytes(msg) keeps the wire form."""
    data = _request("Subject: first part\r\n\tsecond part")
    assert bytes(gbsip.parse(data)) == data


def test_folded_structured_header() -> None:
    """RFC 3261 §7.3.1: folding inside a structured value (From)."""
    data = _request().replace(b"From: <sip", b"From:\r\n <sip")
    msg = gbsip.parse(data, validate=True)
    assert msg.from_ is not None and msg.from_.tag == "1928301774"


def test_getall_keeps_each_line() -> None:
    """Headers.getall returns one entry per header line, in wire order."""
    msg = gbsip.parse(_request("Route: <sip:p1;lr>", "Route: <sip:p2;lr>, <sip:p3;lr>"))
    assert msg.headers.getall("Route") == ["<sip:p1;lr>", "<sip:p2;lr>, <sip:p3;lr>"]


def test_whitespace_before_colon() -> None:
    """RFC 3261 §7.3.1 HCOLON = *( SP / HTAB ) ":" SWS."""
    msg = gbsip.parse(_request("Expires \t: 60"))
    assert msg.expires == 60


def test_empty_header_value() -> None:
    """RFC 3261 §20.36: an empty Subject is allowed (RFC 4475 wsinv `s :`)."""
    msg = gbsip.parse(_request("Subject:"))
    assert msg.headers["Subject"] == ""


def test_continuation_before_first_header_refused() -> None:
    """RFC 3261 §7.3.1: a continuation line needs a header to continue."""
    data = b"OPTIONS sip:a@b SIP/2.0\r\n folded\r\n" + _request().split(b"\r\n", 1)[1]
    with pytest.raises(gbsip.SIPParseError) as info:
        gbsip.parse(data)
    assert info.value.line == 2


def test_space_in_header_name_refused() -> None:
    """RFC 3261 §25.1: a header name is a token."""
    with pytest.raises(gbsip.SIPParseError) as info:
        gbsip.parse(_request("Bad Name: x"))
    assert info.value.code in ("HEADER_NAME", "HEADER_COLON")
    assert info.value.line == 7


def test_header_without_colon_refused() -> None:
    """RFC 3261 §7.3: every header line has a colon."""
    with pytest.raises(gbsip.SIPParseError) as info:
        gbsip.parse(_request("NoColonHere"))
    assert info.value.code in ("HEADER_COLON", "HEADER_NAME")


def test_bare_cr_in_value_refused() -> None:
    """RFC 3261 §7: CR only appears in CRLF; a lone CR inside a value is refused."""
    with pytest.raises(gbsip.SIPParseError) as info:
        gbsip.parse(_request("Subject: a\rb"))
    assert info.value.code in ("HEADER_VALUE", "LINE_ENDING")
    assert info.value.line == 7


# --- CSeq, Max-Forwards, Expires (RFC 3261 §20.16, §20.22, §20.19) -------------

def test_cseq_number_and_method() -> None:
    """RFC 3261 §20.16: CSeq is a number and a method."""
    msg = gbsip.parse(_request().replace(b"CSeq: 314159 REGISTER", b"CSeq:   0007   REGISTER"))
    assert msg.cseq == (7, "REGISTER")
    assert msg.cseq is not None and (msg.cseq.number, msg.cseq.method) == (7, "REGISTER")


def test_cseq_largest_number() -> None:
    """RFC 3261 §8.1.1.5: the number is below 2**31."""
    msg = gbsip.parse(_request().replace(b"314159", str(2**31 - 1).encode()))
    assert msg.cseq is not None and msg.cseq.number == 2**31 - 1


def test_cseq_number_2_31_refused() -> None:
    """RFC 3261 §8.1.1.5: 2**31 is too large."""
    with pytest.raises(gbsip.SIPParseError) as info:
        gbsip.parse(_request().replace(b"314159", str(2**31).encode()))
    assert (info.value.code, info.value.status, info.value.header) == ("CSEQ", 400, "CSeq")


def test_cseq_without_method_refused() -> None:
    """RFC 3261 §20.16: the method is required."""
    with pytest.raises(gbsip.SIPParseError) as info:
        gbsip.parse(_request().replace(b"CSeq: 314159 REGISTER", b"CSeq: 314159"))
    assert info.value.code == "CSEQ"


def test_cseq_method_case_sensitive() -> None:
    """RFC 3261 §7.1: methods are case-sensitive, so `register` is not REGISTER."""
    with pytest.raises(gbsip.SIPParseError) as info:
        gbsip.parse(_request().replace(b"314159 REGISTER", b"314159 register"))
    assert info.value.code == "CSEQ_METHOD"


@pytest.mark.parametrize("value,ok", [("0", True), ("255", True), ("256", False), ("-1", False), ("x", False)])
def test_max_forwards_range(value: str, ok: bool) -> None:
    """RFC 3261 §20.22: Max-Forwards is 0..255 here (the issue's bound)."""
    data = _request(f"Max-Forwards: {value}")
    if ok:
        assert gbsip.parse(data).max_forwards == int(value)
    else:
        with pytest.raises(gbsip.SIPParseError) as info:
            gbsip.parse(data)
        assert info.value.code == "MAX_FORWARDS"


def test_expires_not_a_number_refused() -> None:
    """RFC 3261 §20.19: Expires is delta-seconds."""
    with pytest.raises(gbsip.SIPParseError) as info:
        gbsip.parse(_request("Expires: soon"))
    assert info.value.code == "EXPIRES"


def test_duplicate_same_call_id_tolerated() -> None:
    """A repeated single-valued header with the same value is no conflict."""
    msg = gbsip.parse(_request("Call-ID: a84b4c76e66710"))
    assert msg.call_id == "a84b4c76e66710"


def test_duplicate_different_expires_refused() -> None:
    """Issue 2: two different Expires values are DUPLICATE_HEADER."""
    with pytest.raises(gbsip.SIPParseError) as info:
        gbsip.parse(_request("Expires: 60", "Expires: 3600"))
    assert (info.value.code, info.value.header, info.value.line) == ("DUPLICATE_HEADER", "Expires", 8)


# --- Date (RFC 3261 §20.17, GB/T 28181 §9.10) ----------------------------------

def test_date_rfc1123_is_utc() -> None:
    """RFC 3261 §20.17: rfc1123-date, always GMT."""
    assert gbsip.parse_date("Sat, 13 Nov 2010 23:29:00 GMT") == datetime(
        2010, 11, 13, 23, 29, 0, tzinfo=timezone.utc)


def test_date_gb_with_milliseconds_is_naive_local() -> None:
    """GB/T 28181-2016 §9.10: `yyyy-MM-ddTHH:mm:ss.SSS`, local time, no zone."""
    value = gbsip.parse_date("2013-06-26T16:08:37.164")
    assert value == datetime(2013, 6, 26, 16, 8, 37, 164000)
    assert value.tzinfo is None


def test_date_gb_without_milliseconds() -> None:
    """GB/T 28181 §9.10 as devices send it: milliseconds are optional."""
    assert gbsip.parse_date("2013-06-26T16:08:37") == datetime(2013, 6, 26, 16, 8, 37)


def test_format_gb_date_has_milliseconds() -> None:
    """GB/T 28181-2016 §9.10: the platform writes three millisecond digits."""
    assert gbsip.format_gb_date(datetime(2013, 6, 26, 16, 8, 37, 164999)) == "2013-06-26T16:08:37.164"
    assert gbsip.format_gb_date(datetime(2024, 1, 2, 3, 4, 5)) == "2024-01-02T03:04:05.000"


def test_format_then_parse_gb_date_round_trips() -> None:
    """format_gb_date and parse_date agree to the millisecond."""
    when = datetime(2022, 12, 31, 23, 59, 59, 999000)
    assert gbsip.parse_date(gbsip.format_gb_date(when)) == when


@pytest.mark.parametrize("text", [
    "Fri, 01 Jan 2010 16:00:00 EST",   # RFC 4475 §3.1.2.12
    "2013-13-26T16:08:37",             # month 13
    "2013-06-26 16:08:37",             # no T
    "2013-06-31T00:00:00",             # 31 June
    "yesterday",
])
def test_date_malformed_raises(text: str) -> None:
    """RFC 3261 §20.17 / GB §9.10: other forms raise SIPParseError (code DATE)."""
    with pytest.raises(gbsip.SIPParseError) as info:
        gbsip.parse_date(text)
    assert info.value.code == "DATE"


def test_message_date_property_reads_gb_form() -> None:
    """Message.date parses the Date header lazily (GB/T 28181 §9.10)."""
    msg = gbsip.parse(_request("Date: 2024-02-29T08:00:00"))
    assert msg.date == datetime(2024, 2, 29, 8, 0, 0)


def test_bad_date_raises_only_when_read() -> None:
    """Lazy sub-parsing: a bad Date does not stop parse(), reading .date raises."""
    msg = gbsip.parse(_request("Date: Fri, 01 Jan 2010 16:00:00 EST"))
    assert msg.call_id == "a84b4c76e66710"
    with pytest.raises(gbsip.SIPParseError) as info:
        _ = msg.date
    assert (info.value.code, info.value.header, info.value.line) == ("DATE", "Date", 7)


def test_utc_offset_not_applied_to_gb_date() -> None:
    """GB dates carry no zone: parse_date does not shift them."""
    value = gbsip.parse_date("2013-06-26T16:08:37.164")
    assert value.utcoffset() is None
    assert value - datetime(2013, 6, 26) == timedelta(hours=16, minutes=8, seconds=37, milliseconds=164)
