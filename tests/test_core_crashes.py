"""Regression tests for the C crashes of issues 12 and 14, through the binding.

Each test reproduces a report: before its fix the process read or wrote out
of bounds (seen as a segfault, or an ASan report in the sanitizer pass of
``./run-tests``); after it, the core answers, refuses or counts.
"""
from __future__ import annotations

from typing import Any

import pytest

import gbsip
from gbsip._core import RegistrarCore

SERVER_ID = "34020000002000000001"
REALM = "3402000000"
DEV = "34020000001320000001"
RURI = f"sip:{SERVER_ID}@{REALM}"
NOW = 1_000_000
WALL = 1372262917164


def core(**kw: Any) -> RegistrarCore:
    kw.setdefault("shared_password", "12345678")
    kw.setdefault("seed", 7)
    kw.setdefault("nonce_key", b"k" * 32)
    return RegistrarCore(SERVER_ID, **kw)


def handle(reg: RegistrarCore, data: bytes) -> tuple[bytes, Any] | None:
    return reg.handle(data, "10.0.0.5", 5061, 0, 0, NOW, WALL)


def wire(method: str, headers: list[str], body: bytes = b"") -> bytes:
    lines = [f"{method} {RURI} SIP/2.0", *headers, f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode() + body


VIA = "Via: SIP/2.0/UDP 10.0.0.5:5061;rport;branch=z9hG4bKcrash"
FROM = f"From: <sip:{DEV}@{REALM}>;tag=1"
TO = f"To: <sip:{DEV}@{REALM}>"
CALL_ID = "Call-ID: c-1"
KEEPALIVE = (b"<?xml version=\"1.0\"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n"
             b"<SN>1</SN>\r\n<DeviceID>" + DEV.encode() + b"</DeviceID>\r\n</Notify>\r\n")


# --------------------------------------------------------------------------
# Issue 12: missing mandatory headers under Lenient.MISSING_HEADERS


@pytest.mark.parametrize("missing", ["From", "To", "Call-ID", "CSeq"])
def test_register_without_a_mandatory_header_gets_400_naming_it(missing: str) -> None:
    """RFC 3261 §8.1.1 / §8.2.2: a REGISTER lacking To, From, Call-ID or CSeq is answered
    400 with a reason that names the header, even when the parser was told to accept it."""
    reg = core(lenient=gbsip.Lenient.MISSING_HEADERS)
    headers = {"From": FROM, "To": TO, "Call-ID": CALL_ID, "CSeq": "CSeq: 1 REGISTER"}
    del headers[missing]
    answer = handle(reg, wire("REGISTER", [VIA, *headers.values(), "Max-Forwards: 70"]))
    assert answer is not None
    assert answer[0].startswith(f"SIP/2.0 400 Missing {missing} header\r\n".encode())
    assert reg.binding_count() == 0


def test_register_of_request_line_via_and_content_length_is_answered() -> None:
    """Issue 12's reproducer: request line, a Via and Content-Length: 0."""
    reg = core(lenient=gbsip.Lenient.ALL)
    answer = handle(reg, wire("REGISTER", [VIA]))
    assert answer is not None and answer[0].startswith(b"SIP/2.0 400 Missing From header\r\n")
    assert reg.stats()["rejected"] == 1


def test_manscdp_message_without_from_is_answered() -> None:
    """GB/T 28181 §9.6.1 keepalive without From: 400, not a read before the header array."""
    reg = core(lenient=gbsip.Lenient.MISSING_HEADERS)
    data = wire("MESSAGE", [VIA, TO, CALL_ID, "CSeq: 2 MESSAGE",
                            "Content-Type: Application/MANSCDP+xml"], KEEPALIVE)
    answer = handle(reg, data)
    assert answer is not None and answer[0].startswith(b"SIP/2.0 400 Missing From header\r\n")


def test_request_without_via_is_dropped_and_counted() -> None:
    """No Via, nowhere to answer (RFC 3261 §18.2.2): a counted drop."""
    reg = core(lenient=gbsip.Lenient.ALL)
    assert handle(reg, wire("REGISTER", [FROM, TO, CALL_ID])) is None
    assert reg.stats()["dropped_unparseable"] == 1


@pytest.mark.parametrize("lenient", range(int(gbsip.Lenient.ALL) + 1))
def test_every_leniency_answers_or_counts_headerless_requests(lenient: int) -> None:
    """Any input under any leniency: an answer, or a drop the counters show."""
    reg = core(lenient=lenient)
    sent = 0
    for method in ("REGISTER", "MESSAGE", "OPTIONS", "BYE"):
        for mask in range(32):
            via = f"{VIA}{sent}"  # a new transaction each time
            picked = [h for k, h in enumerate([via, FROM, TO, CALL_ID, f"CSeq: 1 {method}"])
                      if mask & (1 << k)]
            data = wire(method, [*picked, "Content-Type: Application/MANSCDP+xml"], KEEPALIVE)
            handle(reg, data)
            sent += 1
    stats = reg.stats()
    assert stats["received"] == sent
    assert stats["answered"] + stats["dropped_unparseable"] == sent
