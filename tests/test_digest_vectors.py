"""Digest responses against published vectors and an independent reference.

The reference below composes HA1, HA2 and the response itself from
``hashlib`` (RFC 7616 §3.4.1-§3.4.3), sharing no code with gbsip, so a
mistake in gbsip's composition cannot hide in both.
"""
from __future__ import annotations

import hashlib

import pytest

import gbsip
from gbsip.digest import (
    Algorithm,
    Challenge,
    Credentials,
    NonceFactory,
    Reason,
    compute_ha1,
    compute_response,
    compute_userhash,
    verify,
)

DEVICE = "34020000001320000001"
SERVER_URI = "sip:34020000002000000001@3402000000"
_HASHLIB = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}


def _h(alg: str, text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return hashlib.new(_HASHLIB[alg.replace("-sess", "")], data).hexdigest()


def reference_response(alg: str, user: str, realm: str, password: str, method: str,
                       uri: str, nonce: str, qop: str | None = None, nc: str = "",
                       cnonce: str = "", body: bytes = b"") -> str:
    """RFC 7616 §3.4.1-§3.4.3 written out with hashlib."""
    ha1 = _h(alg, f"{user}:{realm}:{password}")
    if alg.endswith("-sess"):
        ha1 = _h(alg, f"{ha1}:{nonce}:{cnonce}")
    if qop == "auth-int":
        ha2 = _h(alg, f"{method}:{uri}:{_h(alg, body)}")
    else:
        ha2 = _h(alg, f"{method}:{uri}")
    if qop is None:
        return _h(alg, f"{ha1}:{nonce}:{ha2}")
    return _h(alg, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def test_seed_vector() -> None:
    """GB/T 28181 §9.1.2.1 seed: RFC 2069 style (no qop), MD5."""
    assert compute_response(
        username="34020000001320000001", realm="3402000000", password="12345678",
        method="REGISTER", uri="sip:192.168.10.177:5060", nonce="324cab6e557268e0",
    ) == "7f536c8ce38593239f9130e37a72276e"


def test_rfc2617_vector() -> None:
    """RFC 2617 §3.5: Mufasa, qop=auth, MD5."""
    assert compute_response(
        username="Mufasa", realm="testrealm@host.com", password="Circle Of Life",
        method="GET", uri="/dir/index.html", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        qop="auth", nc="00000001", cnonce="0a4f113b",
    ) == "6629fae49393a05397450978507c4ef1"


@pytest.mark.parametrize(("algorithm", "expected"), [
    (Algorithm.MD5, "8ca523f5e9506fed4657c9700eebdbec"),
    (Algorithm.SHA256, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
])
def test_rfc7616_vectors(algorithm: Algorithm, expected: str) -> None:
    """RFC 7616 §3.9.1: MD5 and SHA-256 examples."""
    assert compute_response(
        algorithm=algorithm, username="Mufasa", realm="http-auth@example.org",
        password="Circle of Life", method="GET", uri="/dir/index.html",
        nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", qop="auth", nc=1,
        cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    ) == expected


@pytest.mark.parametrize("qop", [None, "auth", "auth-int"])
@pytest.mark.parametrize("algorithm", [a.value for a in Algorithm])
def test_every_algorithm_and_qop_matches_hashlib_reference(algorithm: str, qop: str | None) -> None:
    """RFC 7616 §3.4.1-§3.4.3 (RFC 8760 for SIP): all six algorithms, three qops."""
    nonce = "n-" + algorithm
    nc = "0000000a" if qop else None
    cnonce = "c0ffee" if (qop or algorithm.endswith("-sess")) else None
    body = b'<?xml version="1.0"?><Notify/>'
    want = reference_response(algorithm, DEVICE, "3402000000", "12345678", "REGISTER",
                              SERVER_URI, nonce, qop, nc or "", cnonce or "", body)
    got = compute_response(algorithm=algorithm, username=DEVICE, realm="3402000000",
                           password="12345678", method="REGISTER", uri=SERVER_URI,
                           nonce=nonce, qop=qop, nc=nc, cnonce=cnonce, body=body)
    assert got == want


def test_sha512_256_matches_hashlib_reference() -> None:
    """RFC 7616 §3.3 SHA-512-256 (SHA-512/256 of FIPS 180-4), cross-checked."""
    got = compute_response(
        algorithm="SHA-512-256", username="Mufasa", realm="http-auth@example.org",
        password="Circle of Life", method="GET", uri="/dir/index.html",
        nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", qop="auth", nc=1,
        cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")
    want = reference_response(
        "SHA-512-256", "Mufasa", "http-auth@example.org", "Circle of Life", "GET",
        "/dir/index.html", "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "auth",
        "00000001", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")
    assert got == want
    assert len(got) == 64


@pytest.mark.parametrize("algorithm", [a.value for a in Algorithm])
def test_stored_ha1_gives_the_same_response(algorithm: str) -> None:
    """RFC 7616 §3.4.2: a server may keep H(username:realm:password) instead."""
    ha1 = compute_ha1("34020000001320000001", "3402000000", "12345678", algorithm)
    assert ha1 == _h(algorithm, "34020000001320000001:3402000000:12345678")
    def response(password: str | None = None, ha1: str | None = None) -> str:
        return compute_response(algorithm=algorithm, username=DEVICE, realm="3402000000",
                                nonce="abc", method="REGISTER", uri="sip:x", qop="auth",
                                nc=1, cnonce="c", password=password, ha1=ha1)

    assert response(ha1=ha1) == response(password="12345678")


def test_userhash_matches_hashlib_reference() -> None:
    """RFC 7616 §3.4.4: userhash = H(username:realm)."""
    assert compute_userhash("Mufasa", "http-auth@example.org", "SHA-256") == \
        _h("SHA-256", "Mufasa:http-auth@example.org")


def test_answering_the_seed_challenge_gives_the_seed_authorization_byte_for_byte(
        seed_messages: dict[str, bytes]) -> None:
    """GB/T 28181 §9.1.2.1: the seed's 401 answered gives the seed's third message's header."""
    challenge = Challenge.parse(gbsip.parse(seed_messages["seed-2-401"]).headers["WWW-Authenticate"])
    expected = gbsip.parse(seed_messages["seed-3-register"]).headers["Authorization"]
    creds = Credentials.for_challenge(challenge, "34020000001320000001", "12345678",
                                      method="REGISTER", uri="sip:192.168.10.177:5060")
    assert str(creds) == expected


@pytest.mark.parametrize("qop", [None, "auth", "auth-int"])
@pytest.mark.parametrize("algorithm", [a.value for a in Algorithm])
def test_credentials_gbsip_computes_verify_against_hashlib_reference(algorithm: str, qop: str | None) -> None:
    """Issue 3 cross-check: gbsip's client output recomputed with hashlib."""
    challenge = Challenge(realm="3402000000", nonce="Zm9vYmFy", algorithm=algorithm,
                          qop=(qop,) if qop else ())
    body = b"<Notify><CmdType>Keepalive</CmdType></Notify>"
    creds = Credentials.for_challenge(challenge, "34020000001320000001", "12345678",
                                      method="MESSAGE", uri="sip:34020000002000000001@3402000000",
                                      body=body)
    assert creds.algorithm == algorithm and creds.qop == qop
    want = reference_response(algorithm, "34020000001320000001", "3402000000", "12345678",
                              "MESSAGE", creds.uri, creds.nonce, qop, creds.nc or "",
                              creds.cnonce or "", body)
    assert creds.response == want


@pytest.mark.parametrize("algorithm", [a.value for a in Algorithm])
def test_credentials_the_reference_computes_verify_in_gbsip(algorithm: str) -> None:
    """Issue 3 cross-check the other way: a hashlib-built answer passes verify()."""
    nonces = NonceFactory(key=b"r" * 32, lifetime=60)
    nonce = nonces.issue(binding="192.168.10.117:5061", now=1000.0)
    uri = "sip:34020000002000000001@3402000000"
    resp = reference_response(algorithm, "34020000001320000001", "3402000000", "12345678",
                              "REGISTER", uri, nonce, "auth", "00000001", "0a4f113b")
    value = (f'Digest username="34020000001320000001", realm="3402000000", nonce="{nonce}", '
             f'uri="{uri}", response="{resp}", algorithm={algorithm}, qop=auth, '
             f'nc=00000001, cnonce="0a4f113b"')
    verdict = verify(value, "REGISTER", password="12345678", nonces=nonces, realm="3402000000",
                     request_uri=uri, binding="192.168.10.117:5061", now=1001.0)
    assert verdict.reason is Reason.OK
