"""Truncation ladder (picohttpparser's habit): every proper prefix of every
valid corpus message is "need more" for stream framing and an error for a
datagram, never a crash and never a wrong message (RFC 3261 §18.3, §18.4).

A prefix that cuts only the body of a message *without* Content-Length is
the one exception: as a datagram it is a valid message whose body is the
rest of the datagram (RFC 3261 §18.3)."""
from __future__ import annotations

import pytest

import gbsip
from corpus import Case, cases, has_content_length

# dblreq carries two messages in one datagram; the ladder is about one message.
LADDER = [c for c in cases("valid") if not c.name.endswith("dblreq")]
WITH_LENGTH = [c for c in LADDER if has_content_length(c)]


def _ids(items: list[Case]) -> list[str]:
    return [c.name for c in items]


def _frame_kwargs(case: Case) -> dict[str, int]:
    # frame() applies the same limits as parse() (a fixture may set limits).
    return case.parse_kwargs()


def _stream_parser(case: Case) -> gbsip.StreamParser:
    kwargs = case.parse_kwargs()
    lenient = kwargs.pop("lenient", 0)
    return gbsip.StreamParser(lenient=lenient, limits=gbsip.Limits(**kwargs))


def _header_end(data: bytes, case: Case) -> int:
    sep = b"\n\n" if case.meta.get("newline") == "lf" else b"\r\n\r\n"
    return data.index(sep) + len(sep)


@pytest.mark.parametrize("case", LADDER, ids=_ids(LADDER))
def test_every_prefix_is_a_datagram_error(case: Case) -> None:
    """RFC 3261 §18.3: a datagram that ends early is refused with SIPParseError;
    for a message without Content-Length, a prefix that keeps the whole header
    section is a valid datagram with a shorter body."""
    data = case.data
    kwargs = case.parse_kwargs()
    full = gbsip.parse(data, **kwargs)
    hend = _header_end(data, case)
    for n in range(len(data)):
        prefix = data[:n]
        if full.content_length is None and n >= hend:
            msg = gbsip.parse(prefix, **kwargs)
            assert msg.body == data[hend:n], n
            continue
        try:
            gbsip.parse(prefix, **kwargs)
        except gbsip.SIPParseError:
            continue
        pytest.fail(f"prefix of {n}/{len(data)} bytes parsed as a whole datagram")


@pytest.mark.parametrize("case", LADDER, ids=_ids(LADDER))
def test_every_prefix_error_status_is_a_client_error(case: Case) -> None:
    """Each refusal carries a 4xx/5xx status a server could answer with."""
    kwargs = case.parse_kwargs()
    for n in range(0, len(case.data), 7):
        try:
            gbsip.parse(case.data[:n], **kwargs)
        except gbsip.SIPParseError as err:
            assert 400 <= err.status <= 599, (n, err.code)


@pytest.mark.parametrize("case", WITH_LENGTH, ids=_ids(WITH_LENGTH))
def test_every_prefix_needs_more_for_frame(case: Case) -> None:
    """RFC 3261 §18.4: on a stream, a message is complete only when its
    Content-Length bytes of body are there; before that, frame() says None."""
    kwargs = _frame_kwargs(case)
    for n in range(len(case.data)):
        assert gbsip.frame(case.data[:n], **kwargs) is None, n
    assert gbsip.frame(case.data, **kwargs) == (0, len(case.data))


@pytest.mark.parametrize("case", WITH_LENGTH, ids=_ids(WITH_LENGTH))
def test_every_prefix_yields_nothing_from_stream_parser(case: Case) -> None:
    """A StreamParser fed a proper prefix yields no message; the rest completes it."""
    for n in range(0, len(case.data)):
        parser = _stream_parser(case)
        parser.feed(case.data[:n])
        assert list(parser) == [], n
        parser.feed(case.data[n:])
        (msg,) = list(parser)
        assert bytes(msg) == case.data


@pytest.mark.parametrize("case", LADDER, ids=_ids(LADDER))
def test_every_prefix_validate_never_crashes(case: Case) -> None:
    """parse(validate=True) on any prefix returns or raises SIPParseError only."""
    kwargs = case.parse_kwargs()
    for n in range(len(case.data)):
        try:
            gbsip.parse(case.data[:n], validate=True, **kwargs)
        except gbsip.SIPParseError:
            pass


@pytest.mark.parametrize("case", LADDER, ids=_ids(LADDER))
def test_every_prefix_fields_never_crash(case: Case) -> None:
    """Reading every property of whatever a prefix parses to raises nothing
    but SIPParseError (lazy sub-parsers see cut values too)."""
    kwargs = case.parse_kwargs()
    names = ["call_id", "cseq", "from_", "to", "via", "vias", "contacts", "expires",
             "min_expires", "max_forwards", "content_type", "content_length",
             "user_agent", "body", "date", "headers"]
    for n in range(len(case.data)):
        try:
            msg = gbsip.parse(case.data[:n], **kwargs)
        except gbsip.SIPParseError:
            continue
        for name in names:
            try:
                getattr(msg, name)
            except gbsip.SIPParseError:
                pass
