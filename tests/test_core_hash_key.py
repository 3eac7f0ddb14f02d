"""The core's table hashes are keyed (issue 14): ``hash_key`` of
RegistrarCore and Fleet.  The key changes where records sit in the tables,
never what the core answers."""
from __future__ import annotations

import pytest

from gbsip._core import Fleet, RegistrarCore

SERVER_ID = "34020000002000000001"
REGISTER = (b"REGISTER sip:34020000002000000001@3402000000 SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 10.0.0.5:5061;branch=z9hG4bKhk%d\r\n"
            b"From: <sip:3402000000132000%04d@3402000000>;tag=1\r\n"
            b"To: <sip:3402000000132000%04d@3402000000>\r\n"
            b"Call-ID: hk-%d\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n"
            b"Contact: <sip:d@10.0.0.5:5061>\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n")


def answers(hash_key: bytes | None) -> list[bytes]:
    core = RegistrarCore(SERVER_ID, shared_password="p", fixed_nonce="n", seed=1,
                         hash_key=hash_key)
    out = []
    for i in range(50):
        answer = core.handle(REGISTER % (i, i, i, i), "10.0.0.5", 5061, 0, 0, 1000, 0)
        assert answer is not None
        out.append(answer[0])
    return out


def test_registrar_answers_do_not_depend_on_the_hash_key() -> None:
    """Same requests, same seed, different keys (or a random one): same bytes."""
    assert answers(b"\x00" * 16) == answers(bytes(range(16))) == answers(None)


@pytest.mark.parametrize("bad", [b"", b"k" * 15, b"k" * 17, "k" * 16])
def test_hash_key_must_be_16_bytes(bad: object) -> None:
    """A 128-bit key, as bytes; anything else is refused before the core exists."""
    with pytest.raises(ValueError, match="hash_key must be 16 bytes"):
        RegistrarCore(SERVER_ID, fixed_nonce="n", hash_key=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hash_key must be 16 bytes"):
        Fleet(server_id=SERVER_ID, server_host="127.0.0.1", hash_key=bad)  # type: ignore[arg-type]


def test_fleet_with_a_given_hash_key_finds_its_devices() -> None:
    """The Call-ID table under a caller's key: devices are added and started."""
    fleet = Fleet(server_id=SERVER_ID, server_host="127.0.0.1", seed=3,
                  hash_key=bytes(range(16)))
    first = fleet.add_serial("3402000000132", 0, 500, 7)
    assert fleet.start_range(first, 500, 0) == 500
    assert len(fleet.pop_datagrams()) == 500
