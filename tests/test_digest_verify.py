"""Server-side verification: every outcome is a Verdict with a Reason.

RFC 7616 §3.3-§3.5 (nonce, stale, nc), RFC 3261 §22.4, GB/T 28181 §9.1.2.1.
Time is passed explicitly, so nothing here sleeps.
"""
from __future__ import annotations

import base64

import pytest

from gbsip import GBSIPError
from gbsip.digest import (
    Algorithm,
    Challenge,
    Credentials,
    DigestClient,
    DigestError,
    NonceFactory,
    NonceStatus,
    Reason,
    UriPolicy,
    Verdict,
    compute_ha1,
    compute_userhash,
    verify,
)

KEY = b"gbsip-test-key-0123456789abcdef!"
REALM = "3402000000"
DEVICE = "34020000001320000001"
PASSWORD = "12345678"
SERVER_URI = "sip:34020000002000000001@3402000000"
SOURCE = "192.168.10.117:5061"
T0 = 1_372_263_517.164  # 2013-06-26T16:08:37.164


@pytest.fixture
def nonces() -> NonceFactory:
    return NonceFactory(key=KEY, lifetime=60)


def answer(nonces: NonceFactory, *, password: str = PASSWORD, qop: tuple[str, ...] = (),
           algorithm: str = "MD5", uri: str = SERVER_URI, now: float = T0,
           binding: str = SOURCE, body: bytes = b"", user: str = DEVICE) -> Credentials:
    ch = nonces.challenge(REALM, binding=binding, now=now, algorithm=algorithm, qop=qop)
    return Credentials.for_challenge(ch, user, password, method="REGISTER", uri=uri, body=body)


def check(creds: Credentials | str, nonces: NonceFactory | None, *, now: float = T0 + 1,
          **kw: object) -> Verdict:
    args: dict[str, object] = dict(password=PASSWORD, realm=REALM, request_uri=SERVER_URI,
                                   binding=SOURCE, now=now)
    args.update(kw)
    return verify(creds, "REGISTER", nonces=nonces, **args)  # type: ignore[arg-type]


def test_correct_credentials_verify(nonces: NonceFactory) -> None:
    """RFC 3261 §22.4: the right password over a fresh nonce is accepted."""
    v = check(answer(nonces), nonces)
    assert v.ok and v.reason is Reason.OK
    assert (v.username, v.realm, v.algorithm) == (DEVICE, REALM, "MD5")


def test_seed_credentials_verify_when_the_caller_checks_the_nonce() -> None:
    """GB/T 28181 §9.1.2.1: the seed's platform compared the nonce itself."""
    seed = ('Digest username="34020000001320000001",realm="3402000000",'
            'nonce="324cab6e557268e0",uri="sip:192.168.10.177:5060",'
            'response="7f536c8ce38593239f9130e37a72276e",algorithm=MD5')
    v = verify(seed, "REGISTER", nonces=None, password=PASSWORD, realm=REALM,
               request_uri="sip:192.168.10.177:5060")
    assert v.ok


def test_wrong_password_is_wrong_response(nonces: NonceFactory) -> None:
    """RFC 7616 §3.4: a response that does not match."""
    v = check(answer(nonces, password="87654321"), nonces)
    assert v.reason is Reason.WRONG_RESPONSE and not v.ok


def test_unknown_user(nonces: NonceFactory) -> None:
    """A lookup that returns None: unknown user, before any hashing."""
    v = check(answer(nonces), nonces, password=lambda user, realm: None)
    assert v.reason is Reason.UNKNOWN_USER


def test_lookup_receives_username_and_realm(nonces: NonceFactory) -> None:
    """The secret lookup is called with the credentials' username and realm."""
    seen: list[tuple[str, str]] = []

    def lookup(user: str, realm: str) -> str:
        seen.append((user, realm))
        return PASSWORD

    assert check(answer(nonces), nonces, password=lookup).ok
    assert seen == [(DEVICE, REALM)]


def test_lookup_exception_propagates(nonces: NonceFactory) -> None:
    """A failing lookup is the caller's error, not a verdict."""
    def lookup(user: str, realm: str) -> str:
        raise KeyError(user)

    with pytest.raises(KeyError):
        check(answer(nonces), nonces, password=lookup)


def test_stored_ha1_verifies(nonces: NonceFactory) -> None:
    """RFC 7616 §3.4.2: servers may store HA1 instead of the password."""
    ha1 = compute_ha1(DEVICE, REALM, PASSWORD, "SHA-256")
    creds = answer(nonces, algorithm="SHA-256", qop=("auth",))
    assert verify(creds, "REGISTER", nonces=nonces, ha1=ha1, realm=REALM,
                  request_uri=SERVER_URI, binding=SOURCE, now=T0 + 1).ok


def test_ha1_of_another_algorithm_is_not_allowed(nonces: NonceFactory) -> None:
    """An MD5 HA1 cannot check SHA-256 credentials."""
    creds = answer(nonces, algorithm="SHA-256")
    v = verify(creds, "REGISTER", nonces=nonces, ha1=compute_ha1(DEVICE, REALM, PASSWORD),
               realm=REALM, request_uri=SERVER_URI, binding=SOURCE, now=T0 + 1)
    assert v.reason is Reason.ALGORITHM_NOT_ALLOWED
    assert "HA1" in v.detail


def test_nonce_past_its_lifetime_is_stale(nonces: NonceFactory) -> None:
    """RFC 7616 §3.3: an old but authentic nonce with the right answer: stale=true."""
    v = check(answer(nonces), nonces, now=T0 + 60.001)
    assert v.reason is Reason.STALE_NONCE and v.stale
    assert v.nonce_issued == pytest.approx(T0, abs=0.001)


def test_nonce_within_its_lifetime_is_fresh(nonces: NonceFactory) -> None:
    """The lifetime bound is inclusive."""
    assert check(answer(nonces), nonces, now=T0 + 60.0).ok


def test_stale_only_when_the_response_is_right(nonces: NonceFactory) -> None:
    """RFC 7616 §3.3: stale=true only for a client that knows the password."""
    v = check(answer(nonces, password="wrong"), nonces, now=T0 + 61)
    assert v.reason is Reason.WRONG_RESPONSE


def test_nonce_from_another_key_is_forged(nonces: NonceFactory) -> None:
    """A nonce another server key made is not ours."""
    other = NonceFactory(key=b"another-key-another-key-another!", lifetime=60)
    v = check(answer(other), nonces)
    assert v.reason is Reason.FORGED_NONCE


def test_nonce_from_another_address_is_forged(nonces: NonceFactory) -> None:
    """The nonce is bound to the source address it was issued to."""
    v = check(answer(nonces), nonces, binding="192.168.10.118:5061")
    assert v.reason is Reason.FORGED_NONCE


def test_tampered_nonce_is_forged(nonces: NonceFactory) -> None:
    """Changing the timestamp inside a nonce breaks its HMAC."""
    nonce = nonces.issue(binding=SOURCE, now=T0)
    raw = bytearray(base64.urlsafe_b64decode(nonce))
    raw[5] ^= 1  # issue time, last byte
    assert nonces.check(nonce, binding=SOURCE, now=T0) is NonceStatus.FRESH
    forged = base64.urlsafe_b64encode(bytes(raw)).decode()
    assert nonces.check(forged, binding=SOURCE, now=T0) is NonceStatus.FORGED


def test_nonce_tag_is_hmac_sha256_over_time_salt_and_binding() -> None:
    """The documented nonce layout, checked with Python's hmac module."""
    import hashlib
    import hmac

    f = NonceFactory(key=KEY, lifetime=60, encoding="hex")
    nonce = f.issue(binding=SOURCE, now=T0)
    raw = bytes.fromhex(nonce)
    assert len(nonce) == 48 and len(raw) == 24
    assert int.from_bytes(raw[:6], "big") == round(T0 * 1000)
    tag = hmac.new(KEY, raw[:8] + SOURCE.encode(), hashlib.sha256).digest()[:16]
    assert raw[8:] == tag


def test_replayed_nc_is_rejected(nonces: NonceFactory) -> None:
    """RFC 7616 §3.4: with qop, the same nc twice on one nonce is a replay."""
    creds = answer(nonces, qop=("auth",))
    assert check(creds, nonces).ok
    v = check(creds, nonces)
    assert v.reason is Reason.REPLAYED_NC and v.nc == 1


def test_increasing_nc_is_accepted_and_going_back_is_not(nonces: NonceFactory) -> None:
    """nc must grow per nonce; DigestClient counts it."""
    ch = nonces.challenge(REALM, binding=SOURCE, now=T0, qop=("auth",))
    client = DigestClient(DEVICE, PASSWORD)
    first = client.authorize(ch, method="REGISTER", uri=SERVER_URI)
    second = client.authorize(ch, method="REGISTER", uri=SERVER_URI)
    third = client.authorize(ch, method="REGISTER", uri=SERVER_URI)
    assert (first.nc, second.nc, third.nc) == ("00000001", "00000002", "00000003")
    assert check(first, nonces).ok
    assert check(third, nonces).ok
    assert check(second, nonces).reason is Reason.REPLAYED_NC


def test_wrong_response_does_not_burn_an_nc(nonces: NonceFactory) -> None:
    """Only verified requests advance the nc table."""
    ch = nonces.challenge(REALM, binding=SOURCE, now=T0, qop=("auth",))
    bad = Credentials.for_challenge(ch, DEVICE, "wrong", method="REGISTER", uri=SERVER_URI, nc=5)
    good = Credentials.for_challenge(ch, DEVICE, PASSWORD, method="REGISTER", uri=SERVER_URI, nc=2)
    assert check(bad, nonces).reason is Reason.WRONG_RESPONSE
    assert check(good, nonces).ok


def test_nonce_reuse_without_qop_is_allowed_by_default(nonces: NonceFactory) -> None:
    """GB devices resend the same credentials on refresh; RFC 2069 has no nc."""
    creds = answer(nonces)
    assert check(creds, nonces).ok
    assert check(creds, nonces).ok


def test_single_use_nonces_without_qop() -> None:
    """single_use: an RFC 2069-style nonce is accepted once."""
    f = NonceFactory(key=KEY, lifetime=60, single_use=True)
    creds = answer(f)
    assert check(creds, f).ok
    v = check(creds, f)
    assert v.reason is Reason.REPLAYED_NC and v.detail == "nonce already used"


def test_replay_table_forgets_into_stale_never_into_replay() -> None:
    """Bounded memory: evicted nonces come back stale (re-challenge), not accepted."""
    f = NonceFactory(key=KEY, lifetime=600, replay_slots=16)
    sent = []
    for i in range(200):
        creds = answer(f, qop=("auth",), now=T0 + i * 0.01)
        assert check(creds, f, now=T0 + 3).ok
        sent.append(creds)
    outcomes = [check(c, f, now=T0 + 3).reason for c in sent]
    assert set(outcomes) <= {Reason.REPLAYED_NC, Reason.STALE_NONCE}
    assert outcomes.count(Reason.STALE_NONCE) >= 200 - 16


def test_realm_mismatch(nonces: NonceFactory) -> None:
    """Credentials for another realm."""
    assert check(answer(nonces), nonces, realm="3402000001").reason is Reason.REALM_MISMATCH


def test_algorithm_not_allowed(nonces: NonceFactory) -> None:
    """The server's allow-list refuses MD5."""
    v = check(answer(nonces), nonces, algorithms=[Algorithm.SHA256, Algorithm.SHA512_256])
    assert v.reason is Reason.ALGORITHM_NOT_ALLOWED


def test_unknown_algorithm_is_not_allowed(nonces: NonceFactory) -> None:
    """An algorithm gbsip does not implement is never accepted."""
    nonce = nonces.issue(binding=SOURCE, now=T0)
    value = (f'Digest username="{DEVICE}",realm="{REALM}",nonce="{nonce}",uri="{SERVER_URI}",'
             'response="00112233",algorithm=AKAv1-MD5')
    assert check(value, nonces).reason is Reason.ALGORITHM_NOT_ALLOWED


def test_qop_not_allowed(nonces: NonceFactory) -> None:
    """A server demanding qop=auth refuses RFC 2069-style answers."""
    assert check(answer(nonces), nonces, qops=["auth"]).reason is Reason.QOP_NOT_ALLOWED


def test_opaque_mismatch(nonces: NonceFactory) -> None:
    """RFC 7616 §3.3: opaque must come back unchanged."""
    ch = Challenge(realm=REALM, nonce=nonces.issue(binding=SOURCE, now=T0), opaque="xyz")
    creds = Credentials.for_challenge(ch, DEVICE, PASSWORD, method="REGISTER", uri=SERVER_URI)
    assert creds.opaque == "xyz"
    assert check(creds, nonces, opaque="xyz").ok
    assert check(creds, nonces, opaque="abc").reason is Reason.OPAQUE_MISMATCH


def test_uri_mismatch_under_exact_policy(nonces: NonceFactory) -> None:
    """RFC 7616 §3.4.6: the digest-uri must name the request target."""
    v = check(answer(nonces), nonces, request_uri="sip:192.168.10.177:5060")
    assert v.reason is Reason.URI_MISMATCH


def test_same_host_policy_ignores_user_and_port(nonces: NonceFactory) -> None:
    """SAME_HOST: sip:id@host vs sip:host:port is the same target."""
    creds = answer(nonces, uri="sip:34020000002000000001@192.168.10.177")
    assert check(creds, nonces, request_uri="sip:192.168.10.177:5060",
                 uri_policy=UriPolicy.SAME_HOST).ok
    assert check(creds, nonces, request_uri="sip:192.168.10.178:5060",
                 uri_policy=UriPolicy.SAME_HOST).reason is Reason.URI_MISMATCH


def test_nvr_uri_quirk_hashes_the_uri_as_received(nonces: NonceFactory) -> None:
    """Hikvision NVRs put sip:<serverID>@<domain> in uri; ANY accepts, hash uses it."""
    creds = answer(nonces, uri=SERVER_URI)
    assert check(creds, nonces, request_uri="sip:192.168.10.177:5060",
                 uri_policy=UriPolicy.ANY).ok


def test_malformed_credentials_say_what_was_malformed(nonces: NonceFactory) -> None:
    """Malformed is a verdict with detail, not an exception."""
    v = check(f'Digest username="{DEVICE}",realm="{REALM}",uri="{SERVER_URI}",'
              'response="7f536c8ce38593239f9130e37a72276e"', nonces)
    assert v.reason is Reason.MALFORMED and v.detail == "missing nonce"
    v = check('Digest username="unterminated', nonces)
    assert v.reason is Reason.MALFORMED and "unterminated" in v.detail
    assert v.offset == len('Digest username="unterminated')


def test_capability_hint_is_not_a_failed_credential(nonces: NonceFactory) -> None:
    """GB 35114 hint: its own reason, so the registrar challenges instead of refusing."""
    v = check('Capability, algorithm="H:MD5"', nonces)
    assert v.reason is Reason.CAPABILITY_HINT and not v.ok


def test_other_scheme_is_not_digest(nonces: NonceFactory) -> None:
    """RFC 4475 §3.3.7: an unknown Authorization scheme."""
    assert check("NoOneKnowsThisScheme opaque-data=here", nonces).reason is Reason.NOT_DIGEST


def test_auth_int_covers_the_body(nonces: NonceFactory) -> None:
    """qop=auth-int: a changed body is a wrong response."""
    body = b"<?xml version=\"1.0\"?><Notify><SN>1</SN></Notify>"
    creds = answer(nonces, qop=("auth-int",), body=body)
    assert check(creds, nonces, body=b"tampered").reason is Reason.WRONG_RESPONSE
    assert check(creds, nonces, body=body).ok


def test_userhash_credentials(nonces: NonceFactory) -> None:
    """RFC 7616 §3.4.4: the lookup maps the hash to (user, password)."""
    hashed = compute_userhash(DEVICE, REALM, "SHA-256")
    ch = Challenge(realm=REALM, nonce=nonces.issue(binding=SOURCE, now=T0),
                   algorithm="SHA-256", userhash=True)
    creds = Credentials.for_challenge(ch, DEVICE, PASSWORD, method="REGISTER", uri=SERVER_URI)
    assert creds.username == hashed and creds.userhash
    users = {hashed: (DEVICE, PASSWORD)}
    assert check(creds, nonces, password=lambda u, r: users.get(u)).ok
    wrong = {hashed: ("34020000001320000002", PASSWORD)}
    assert check(creds, nonces, password=lambda u, r: wrong.get(u)).reason is Reason.UNKNOWN_USER


def test_every_reason_has_a_description() -> None:
    """Each result has text from the C core."""
    assert Reason.REPLAYED_NC.description == "replayed nonce count"
    assert all(r.description for r in Reason)


def test_verify_takes_parsed_credentials_and_raw_values_alike(nonces: NonceFactory) -> None:
    """A Credentials object is checked on the bytes it was parsed from."""
    creds = answer(nonces)
    assert check(str(creds), nonces).ok
    assert check(Credentials.parse(str(creds)), nonces).ok


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"password": PASSWORD, "ha1": "00"}, "exactly one"),
    ({}, "exactly one"),
    ({"password": PASSWORD, "request_uri": None, "uri_policy": UriPolicy.EXACT}, "request_uri"),
    ({"password": PASSWORD, "algorithms": ["SHA-1"]}, "unknown Digest algorithm"),
    ({"password": PASSWORD, "qops": ["auth-conf"]}, "unknown qop"),
    ({"password": PASSWORD, "realm": ""}, "realm"),
])
def test_api_misuse_raises_digest_error(nonces: NonceFactory, kwargs: dict[str, object],
                                         match: str) -> None:
    """Misuse is an exception (a GBSIPError), unlike a peer's bad credentials."""
    args: dict[str, object] = dict(realm=REALM, request_uri=SERVER_URI, now=T0)
    args.update(kwargs)
    with pytest.raises(DigestError, match=match) as info:
        verify(str(answer(nonces)), "REGISTER", nonces=nonces, **args)  # type: ignore[arg-type]
    assert isinstance(info.value, GBSIPError)


def test_factory_misuse_raises_digest_error() -> None:
    """Short keys and nonsense lifetimes are refused up front."""
    with pytest.raises(DigestError, match="key"):
        NonceFactory(key=b"short", lifetime=60)
    with pytest.raises(DigestError, match="lifetime"):
        NonceFactory(key=KEY, lifetime=0)
    with pytest.raises(DigestError, match="encoding"):
        NonceFactory(key=KEY, encoding="base32")


def test_hex_nonces_verify_too() -> None:
    """encoding='hex' for devices that only take hex nonces."""
    f = NonceFactory(key=KEY, lifetime=60, encoding="hex")
    creds = answer(f)
    assert len(creds.nonce) == 48 and int(creds.nonce, 16) >= 0
    assert check(creds, f).ok


def test_default_time_is_now() -> None:
    """Without now=, the wall clock is used on both sides."""
    f = NonceFactory(key=KEY, lifetime=60)
    ch = f.challenge(REALM)
    creds = Credentials.for_challenge(ch, DEVICE, PASSWORD, method="REGISTER", uri=SERVER_URI)
    assert verify(creds, "REGISTER", nonces=f, password=PASSWORD, realm=REALM,
                  request_uri=SERVER_URI).ok


def test_repeated_verification_does_not_leak(nonces: NonceFactory) -> None:
    """The binding releases every object it makes or borrows (lookup results too)."""
    import gc
    import tracemalloc

    creds = str(answer(nonces, qop=("auth",)))

    def run(n: int) -> None:
        for _ in range(n):
            # a fresh tuple per call: a leaked reference would keep each alive
            verify(creds, "REGISTER", nonces=nonces, password=lambda u, r: (u, PASSWORD),
                   realm=REALM, request_uri=SERVER_URI, binding=SOURCE, now=T0 + 1)
            Credentials.parse(creds)
            Challenge.parse_all("Digest realm=\"r\",nonce=\"n\", Basic x=y")

    run(200)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        run(5000)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024
