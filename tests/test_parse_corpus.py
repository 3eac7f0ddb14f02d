"""The fixture corpus (tests/data/): RFC 4475 torture messages, the seed and
GB/T 28181 traffic.  Valid messages parse with the expected values; invalid
ones give the expected error code, status and line (RFC 4475 §3)."""
from __future__ import annotations

import pytest

import gbsip
from corpus import Case, cases, render, resolve

VALID = cases("valid")
ERROR = cases("error")
VALIDATE_ERROR = cases("validate-error")


def _ids(items: list[Case]) -> list[str]:
    return [c.name for c in items]


def test_corpus_is_not_empty() -> None:
    """The corpus holds the seed, GB and RFC 4475 cases."""
    names = _ids(cases())
    assert len(names) >= 50
    assert {"seed-1-register", "rfc4475-3.1.1.1-wsinv", "gb-keepalive-message"} <= set(names)


@pytest.mark.parametrize("case", VALID, ids=_ids(VALID))
def test_valid_message_parses(case: Case) -> None:
    """RFC 4475 §3.1.1: valid messages are accepted by a strict parser."""
    msg = gbsip.parse(case.data, **case.parse_kwargs())
    kind = case.meta.get("kind")
    if kind == "request":
        assert isinstance(msg, gbsip.Request)
    elif kind == "response":
        assert isinstance(msg, gbsip.Response)


@pytest.mark.parametrize("case", VALID, ids=_ids(VALID))
def test_valid_message_validates(case: Case) -> None:
    """Every structured header of a valid message sub-parses (validate=True)."""
    gbsip.parse(case.data, validate=True, **case.parse_kwargs())


@pytest.mark.parametrize("case", VALID, ids=_ids(VALID))
def test_valid_message_has_expected_values(case: Case) -> None:
    """The fields named in the fixture read back as the fixture says."""
    msg = gbsip.parse(case.data, **case.parse_kwargs())
    wrong = []
    for key, want in case.checks:
        got = render(resolve(msg, key))
        if got != want:
            wrong.append(f"{key}: want {want!r}, got {got!r}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("case", VALID, ids=_ids(VALID))
def test_valid_message_round_trips(case: Case) -> None:
    """Issue 2: an untouched message serializes byte-identical; bytes a
    datagram carries past Content-Length are not part of it (RFC 3261 §18.3)."""
    msg = gbsip.parse(case.data, **case.parse_kwargs())
    out = bytes(msg)
    assert case.data.startswith(out)
    if case.name != "rfc4475-3.1.1.8-dblreq":
        assert out == case.data


@pytest.mark.parametrize("case", VALID, ids=_ids(VALID))
def test_valid_message_reparses_to_same_bytes(case: Case) -> None:
    """parse(bytes(parse(x))) gives the same bytes again."""
    once = bytes(gbsip.parse(case.data, **case.parse_kwargs()))
    assert bytes(gbsip.parse(once, **case.parse_kwargs())) == once


@pytest.mark.parametrize("case", VALID, ids=_ids(VALID))
def test_valid_message_body_matches_content_length(case: Case) -> None:
    """RFC 3261 §20.14: the body is exactly Content-Length bytes when present."""
    msg = gbsip.parse(case.data, **case.parse_kwargs())
    if msg.content_length is not None:
        assert len(msg.body) == msg.content_length


def _assert_error(err: gbsip.SIPParseError, case: Case) -> None:
    meta = case.meta
    assert err.code == meta["error"], f"{err.code} ({err.reason}) at line {err.line}"
    if "error-status" in meta:
        assert err.status == int(meta["error-status"])
    if "error-line" in meta:
        assert err.line == int(meta["error-line"]), f"{err.code}: {err.reason}"
    if "error-header" in meta:
        assert err.header == meta["error-header"]
    assert 0 <= err.offset <= len(case.data)
    assert isinstance(err.reason, str) and err.reason


@pytest.mark.parametrize("case", ERROR, ids=_ids(ERROR))
def test_invalid_message_is_refused_with_expected_error(case: Case) -> None:
    """RFC 4475 §3.1.2 / §3.3: malformed messages give the error, status and
    line the fixture names."""
    with pytest.raises(gbsip.SIPParseError) as info:
        gbsip.parse(case.data, **case.parse_kwargs())
    _assert_error(info.value, case)


@pytest.mark.parametrize("case", ERROR, ids=_ids(ERROR))
def test_invalid_message_error_offset_on_named_line(case: Case) -> None:
    """The error's byte offset falls inside the line it names."""
    with pytest.raises(gbsip.SIPParseError) as info:
        gbsip.parse(case.data, **case.parse_kwargs())
    err = info.value
    # A short body is found where the datagram ends, after the named line.
    if err.line and err.code != "CONTENT_LENGTH_MISMATCH":
        starts = [0] + [i + 1 for i, b in enumerate(case.data) if b == 0x0A]
        line_start = starts[err.line - 1]
        line_end = starts[err.line] if err.line < len(starts) else len(case.data)
        assert line_start <= err.offset <= line_end


@pytest.mark.parametrize("case", ERROR, ids=_ids(ERROR))
def test_invalid_message_error_is_gbsip_error(case: Case) -> None:
    """SIPParseError is a GBSIPError and a ValueError (gbsip/_core.pyi)."""
    with pytest.raises(gbsip.GBSIPError):
        gbsip.parse(case.data, **case.parse_kwargs())
    with pytest.raises(ValueError):
        gbsip.parse(case.data, **case.parse_kwargs())


@pytest.mark.parametrize("case", VALIDATE_ERROR, ids=_ids(VALIDATE_ERROR))
def test_field_level_error_found_by_validate(case: Case) -> None:
    """RFC 4475 §3.1.2: a malformed structured header is refused by
    parse(validate=True) with the expected code, status and line."""
    with pytest.raises(gbsip.SIPParseError) as info:
        gbsip.parse(case.data, validate=True, **case.parse_kwargs())
    _assert_error(info.value, case)


@pytest.mark.parametrize("case", VALIDATE_ERROR, ids=_ids(VALIDATE_ERROR))
def test_field_level_error_found_by_validate_method(case: Case) -> None:
    """msg.validate() reports the same error as parse(validate=True)."""
    try:
        msg = gbsip.parse(case.data, **case.parse_kwargs())
    except gbsip.SIPParseError as err:  # an eager parser may find it already
        _assert_error(err, case)
        return
    with pytest.raises(gbsip.SIPParseError) as info:
        msg.validate()
    _assert_error(info.value, case)


def test_lenient_version_accepts_sip_7() -> None:
    """RFC 4475 §3.1.2.16 (badvers) with Lenient.VERSION: accepted by name."""
    (case,) = [c for c in ERROR if c.name.endswith("badvers")]
    msg = gbsip.parse(case.data, lenient=gbsip.Lenient.VERSION)
    assert msg.call_id == "badvers.31417@c.example.com"


def test_lenient_cseq_method_accepts_mismatch01() -> None:
    """RFC 4475 §3.1.2.17 with Lenient.CSEQ_METHOD: the mismatch is tolerated."""
    (case,) = [c for c in ERROR if c.name.endswith("mismatch01")]
    msg = gbsip.parse(case.data, lenient=gbsip.Lenient.CSEQ_METHOD)
    assert msg.cseq == (8, "INVITE")
    assert msg.method == "OPTIONS"  # type: ignore[union-attr]


def test_lenient_missing_headers_accepts_insuf() -> None:
    """RFC 4475 §3.3.1 (insuf) with Lenient.MISSING_HEADERS: absent fields read as None."""
    (case,) = [c for c in ERROR if c.name.endswith("insuf")]
    msg = gbsip.parse(case.data, lenient=gbsip.Lenient.MISSING_HEADERS)
    assert msg.call_id is None
    assert msg.from_ is None and msg.to is None
    assert msg.cseq == (193942, "INVITE")


def test_lenient_all_is_every_flag() -> None:
    """Lenient.ALL is the union of the named tolerances."""
    flags = [gbsip.Lenient.LF_ONLY, gbsip.Lenient.CSEQ_METHOD, gbsip.Lenient.MISSING_HEADERS,
             gbsip.Lenient.STREAM_NO_CONTENT_LENGTH, gbsip.Lenient.SPACING, gbsip.Lenient.VERSION]
    union = 0
    for flag in flags:
        union |= int(flag)
    assert int(gbsip.Lenient.ALL) == union


def test_version_string() -> None:
    """gbsip.__version__ is a dotted version string (issue 2, Python API)."""
    parts = gbsip.__version__.split(".")
    assert len(parts) >= 2 and all(p.isdigit() for p in parts[:2])


def test_wsinv_unknown_header_value_kept_raw() -> None:
    """RFC 4475 §3.1.1.1: an unknown header with a value that would be invalid
    as generic-param is kept as a plain value and forwarded unchanged."""
    (case,) = [c for c in VALID if c.name.endswith("wsinv")]
    msg = gbsip.parse(case.data)
    assert msg.headers.getall("UnknownHeaderWithUnusualValue") == [";;,,;;,;"]


def test_wsinv_compact_and_long_via_lines_both_counted() -> None:
    """RFC 3261 §7.3.3 / §20.42: `v:` and `Via:` lines are the same header;
    the `v:` line's comma list gives two values, so three in all."""
    (case,) = [c for c in VALID if c.name.endswith("wsinv")]
    msg = gbsip.parse(case.data)
    assert len(msg.headers.getall("Via")) == 2
    assert msg.headers.getall("v") == msg.headers.getall("Via")
    assert [v.branch for v in msg.vias] == ["390skdjuw", "z9hG4bK9ikj8", "z9hG4bK30239"]


def test_esc02_percent_header_name_is_not_contact() -> None:
    """RFC 4475 §3.1.1.5: `C%6Fntact` is an unknown header, not Contact."""
    (case,) = [c for c in VALID if c.name.endswith("esc02")]
    msg = gbsip.parse(case.data)
    assert "C%6Fntact" in msg.headers
    assert len(msg.headers.getall("Contact")) == 2


def test_escnull_user_holds_nul_byte() -> None:
    """RFC 4475 §3.1.1.4: %00 decodes to a NUL in the URI user part."""
    (case,) = [c for c in VALID if c.name.endswith("escnull")]
    msg = gbsip.parse(case.data)
    assert msg.to is not None
    assert gbsip.parse_uri(msg.to.uri).user == "null-\x00-null"


def test_dblreq_second_request_ignored() -> None:
    """RFC 4475 §3.1.1.8: the INVITE after the REGISTER in one datagram is ignored."""
    (case,) = [c for c in VALID if c.name.endswith("dblreq")]
    msg = gbsip.parse(case.data)
    assert b"INVITE" not in bytes(msg)
    assert bytes(msg).endswith(b"Content-Length: 0\r\n\r\n")
