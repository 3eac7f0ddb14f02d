"""Stream (TCP) framing: RFC 3261 §18.3 Content-Length delimits messages,
CRLF keep-alives (RFC 5626 §3.5.1) may come between them; GB/T 28181-2022
§9.1.1 keeps one TCP connection for all traffic."""
from __future__ import annotations

import pytest

import gbsip
from corpus import DATA_DIR, load

SEED = [load(DATA_DIR / f"{n}.sip").data for n in
        ("seed-1-register", "seed-2-401", "seed-3-register", "seed-4-200")]
KEEPALIVE = load(DATA_DIR / "gb-keepalive-message.sip").data


def test_several_messages_in_one_feed() -> None:
    """Back-to-back messages in one read come out in order."""
    parser = gbsip.StreamParser()
    parser.feed(b"".join(SEED))
    assert [bytes(m) for m in parser] == SEED


def test_byte_at_a_time() -> None:
    """Feeding one byte at a time yields each message exactly once, whole."""
    parser = gbsip.StreamParser()
    out = []
    for b in b"".join(SEED) + KEEPALIVE:
        parser.feed(bytes([b]))
        out.extend(bytes(m) for m in parser)
    assert out == SEED + [KEEPALIVE]


def test_body_framed_by_content_length() -> None:
    """RFC 3261 §18.3: the body ends after Content-Length bytes; the next
    message starts right after."""
    parser = gbsip.StreamParser()
    parser.feed(KEEPALIVE + SEED[0])
    first, second = list(parser)
    assert first.body.startswith(b"<?xml") and first.body.endswith(b"</Notify>\r\n")
    assert bytes(second) == SEED[0]


def test_crlf_keepalives_skipped() -> None:
    """RFC 5626 §3.5.1: CRLFCRLF pings and CRLF pongs between messages are skipped."""
    parser = gbsip.StreamParser()
    parser.feed(b"\r\n\r\n" + SEED[0] + b"\r\n" + b"\r\n\r\n" + SEED[1])
    assert [bytes(m) for m in parser] == SEED[:2]


def test_only_keepalives_yield_nothing() -> None:
    """A connection carrying only pings yields no message and holds no bytes."""
    parser = gbsip.StreamParser()
    for _ in range(100):
        parser.feed(b"\r\n\r\n")
        assert list(parser) == []
    assert parser.buffered == 0


def test_frame_reports_keepalive_skip() -> None:
    """frame() says how many keep-alive bytes precede the message."""
    assert gbsip.frame(b"\r\n\r\n" + SEED[0]) == (4, len(SEED[0]))


def test_frame_need_more_is_none() -> None:
    """frame() returns None until a whole message is there."""
    assert gbsip.frame(b"") is None
    assert gbsip.frame(SEED[0][:-1]) is None


def test_frame_ignores_following_bytes() -> None:
    """frame() measures the first message only."""
    assert gbsip.frame(SEED[0] + SEED[1][:10]) == (0, len(SEED[0]))


def test_missing_content_length_refused_on_stream() -> None:
    """RFC 3261 §18.3/§20.14: on a stream, Content-Length is required."""
    data = SEED[0].replace(b"Content-Length: 0\r\n", b"")
    with pytest.raises(gbsip.SIPParseError):
        gbsip.frame(data)


def test_missing_content_length_lenient_means_empty_body() -> None:
    """Lenient.STREAM_NO_CONTENT_LENGTH: a message without it has an empty body."""
    data = SEED[0].replace(b"Content-Length: 0\r\n", b"")
    assert gbsip.frame(data, lenient=gbsip.Lenient.STREAM_NO_CONTENT_LENGTH) == (0, len(data))


def test_garbage_raises() -> None:
    """Bytes that cannot start a SIP message raise SIPParseError."""
    parser = gbsip.StreamParser()
    parser.feed(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not sip at all\r\n\r\n")
    with pytest.raises(gbsip.SIPParseError):
        list(parser)


def test_messages_after_partial_read_keep_rest() -> None:
    """A read that ends mid-message keeps the tail for the next feed."""
    data = b"".join(SEED)
    cut = len(SEED[0]) + 17
    parser = gbsip.StreamParser()
    parser.feed(data[:cut])
    assert [bytes(m) for m in parser] == SEED[:1]
    assert parser.buffered == 17
    parser.feed(data[cut:])
    assert [bytes(m) for m in parser] == SEED[1:]


def test_stream_messages_are_parsed_messages() -> None:
    """What the stream yields is a Request/Response with fields readable."""
    parser = gbsip.StreamParser()
    parser.feed(SEED[1])
    (msg,) = list(parser)
    assert isinstance(msg, gbsip.Response)
    assert (msg.status, msg.call_id) == (401, "939764460")
