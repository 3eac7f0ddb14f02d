"""Explicit limits (issue 2): each gives its own error code and status,
never a crash or a truncation that changes meaning.  Statuses: TOO_LARGE,
TOO_MANY_HEADERS, LINE_TOO_LONG, TOO_MANY_VIAS, TOO_MANY_CONTACTS -> 513
(RFC 3261 §21.5.14 Message Too Large)."""
from __future__ import annotations

import pytest

import gbsip
from corpus import DATA_DIR, Case, cases, load


def _request(*headers: str, body: bytes = b"") -> bytes:
    lines = [
        "OPTIONS sip:34020000002000000001@3402000000 SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKlim",
        "From: <sip:a@3402000000>;tag=1",
        "To: <sip:b@3402000000>",
        "Call-ID: limits-1",
        "CSeq: 1 OPTIONS",
        *headers,
        f"Content-Length: {len(body)}",
        "",
        "",
    ]
    return "\r\n".join(lines).encode() + body


def _error(data: bytes, **kwargs: int) -> gbsip.SIPParseError:
    with pytest.raises(gbsip.SIPParseError) as info:
        gbsip.parse(data, **kwargs)
    return info.value


def test_default_limits_documented_values() -> None:
    """The documented defaults (csrc/core/sip_parser.h): 64 KiB, 128 headers, 8192-byte lines, 70 Vias, 32 Contacts."""
    limits = gbsip.Limits()
    assert (limits.max_message, limits.max_headers, limits.max_line,
            limits.max_vias, limits.max_contacts) == (65536, 128, 8192, 70, 32)


def test_message_over_max_message() -> None:
    """A message past max_message is TOO_LARGE, 513."""
    data = _request(body=b"x" * 70000)
    err = _error(data)
    assert (err.code, err.status) == ("TOO_LARGE", 513)


def test_message_at_max_message_accepted() -> None:
    """A message of exactly max_message bytes is accepted (bound inclusive)."""
    data = _request(body=b"x" * 100)
    assert gbsip.parse(data, max_message=len(data)).body == b"x" * 100
    assert _error(data, max_message=len(data) - 1).code == "TOO_LARGE"


def test_too_many_headers() -> None:
    """More header lines than max_headers is TOO_MANY_HEADERS, 513."""
    data = _request(*[f"X-H{i}: {i}" for i in range(200)])
    err = _error(data)
    assert (err.code, err.status) == ("TOO_MANY_HEADERS", 513)


def test_headers_at_limit_accepted() -> None:
    """Exactly max_headers header lines are accepted."""
    data = _request(*[f"X-H{i}: {i}" for i in range(10)])  # 5 + 10 + Content-Length
    assert len(gbsip.parse(data, max_headers=16).headers) == 16
    assert _error(data, max_headers=15).code == "TOO_MANY_HEADERS"


def test_line_too_long() -> None:
    """A header line past max_line is LINE_TOO_LONG, 513, on that line."""
    data = _request("Subject: " + "s" * 9000)
    err = _error(data)
    assert (err.code, err.status, err.line) == ("LINE_TOO_LONG", 513, 7)


def test_folded_line_counts_continuations() -> None:
    """max_line covers a header with its folded continuation lines."""
    data = _request("Subject: " + "\r\n ".join(["a" * 100] * 100))
    assert _error(data).code == "LINE_TOO_LONG"


def test_long_line_under_limit_kept_whole() -> None:
    """A long value under the limit is read back complete, never truncated."""
    call_id = "c" * 8000
    data = _request().replace(b"Call-ID: limits-1", b"Call-ID: " + call_id.encode())
    assert gbsip.parse(data).call_id == call_id


def test_too_many_vias_lines() -> None:
    """More Via values than max_vias is TOO_MANY_VIAS, 513."""
    vias = [f"Via: SIP/2.0/UDP 192.0.2.{i};branch=z9hG4bK{i}" for i in range(80)]
    err = _error(_request(*vias))
    assert (err.code, err.status) == ("TOO_MANY_VIAS", 513)


def test_too_many_vias_in_one_comma_list() -> None:
    """Via values are counted after splitting comma lists."""
    value = ", ".join(f"SIP/2.0/UDP 192.0.2.{i};branch=z9hG4bK{i}" for i in range(80))
    err = _error(_request("Via: " + value))
    assert (err.code, err.status) == ("TOO_MANY_VIAS", 513)


def test_vias_at_limit_accepted() -> None:
    """Exactly max_vias Via values are accepted."""
    vias = [f"Via: SIP/2.0/UDP 192.0.2.{i};branch=z9hG4bK{i}" for i in range(69)]
    assert len(gbsip.parse(_request(*vias)).vias) == 70


def test_longreq_accepted_with_default_limits() -> None:
    """Issue 12: RFC 4475 §3.1.1.7 (longreq) is valid with 34 Vias, so the default
    max_vias (70) accepts it; a lower limit refuses it as TOO_MANY_VIAS, not cut."""
    data = load(DATA_DIR / "rfc4475-3.1.1.7-longreq.sip").data
    assert len(gbsip.parse(data).vias) == 34
    err = _error(data, max_vias=33)
    assert (err.code, err.status) == ("TOO_MANY_VIAS", 513)


@pytest.mark.parametrize("case", [c for c in cases("valid") if c.name.startswith(("rfc4475-",
                                                                                 "rfc5118-"))],
                         ids=lambda c: c.name)
def test_every_valid_torture_message_parses_with_default_limits(case: Case) -> None:
    """Issue 12: every valid RFC 4475 and RFC 5118 message passes the default limits
    (only named leniencies may differ: the fixture's limits are not applied)."""
    kwargs = {k: v for k, v in case.parse_kwargs().items() if k == "lenient"}
    gbsip.parse(case.data, validate=True, **kwargs)


def test_too_many_contacts() -> None:
    """More Contact values than max_contacts is TOO_MANY_CONTACTS, 513."""
    contacts = ", ".join(f"<sip:c{i}@192.0.2.1>" for i in range(40))
    err = _error(_request("Contact: " + contacts))
    assert (err.code, err.status) == ("TOO_MANY_CONTACTS", 513)


def test_custom_contact_limit() -> None:
    """max_contacts is the caller's choice."""
    data = _request("Contact: <sip:a@h>, <sip:b@h>, <sip:c@h>")
    assert len(gbsip.parse(data, max_contacts=3).contacts) == 3
    assert _error(data, max_contacts=2).code == "TOO_MANY_CONTACTS"


def test_frame_refuses_content_length_past_max_message() -> None:
    """A stream message announcing more than max_message is refused at once,
    not buffered (bounded memory)."""
    head = _request().replace(b"Content-Length: 0", b"Content-Length: 1000000")
    with pytest.raises(gbsip.SIPParseError) as info:
        gbsip.frame(head)
    assert (info.value.code, info.value.status) == ("TOO_LARGE", 513)


def test_frame_refuses_endless_header_section() -> None:
    """Bytes past max_message without the blank line are TOO_LARGE, not "need more"."""
    data = b"OPTIONS sip:a@b SIP/2.0\r\n" + b"X-Pad: " + b"p" * 100 + b"\r\n"
    data = data + b"X-Pad: q\r\n" * (70000 // 10)
    with pytest.raises(gbsip.SIPParseError) as info:
        gbsip.frame(data)
    assert info.value.code in ("TOO_LARGE", "TOO_MANY_HEADERS")
    assert info.value.status == 513


def test_huge_content_length_number_refused() -> None:
    """A Content-Length of 2**64 is an error, not a wrapped small number."""
    data = _request().replace(b"Content-Length: 0", b"Content-Length: 18446744073709551616")
    err = _error(data)
    assert err.code in ("CONTENT_LENGTH", "TOO_LARGE")
