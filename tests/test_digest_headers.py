"""Challenges and credentials as peers write them, and as gbsip writes them.

RFC 7235 §2.1/§4.1 (auth-param lists, several challenges per header),
RFC 7616 §3.3/§3.4 (Digest parameters), RFC 3261 §25.1 (quoted-string),
GB/T 28181 §9.1.2.1 (the seed's headers).
"""
from __future__ import annotations

import dataclasses

import pytest

import gbsip
from gbsip import SIPParseError
from gbsip.digest import (
    Algorithm,
    Challenge,
    Credentials,
    DigestError,
    NonceFactory,
    choose,
    is_capability_hint,
)

SEED_CHALLENGE = 'Digest realm="3402000000",nonce="324cab6e557268e0"'
SEED_CREDENTIALS = ('Digest username="34020000001320000001",realm="3402000000",'
                    'nonce="324cab6e557268e0",uri="sip:192.168.10.177:5060",'
                    'response="7f536c8ce38593239f9130e37a72276e",algorithm=MD5')


def test_seed_challenge_parses() -> None:
    """GB/T 28181 §9.1.2.1: the seed's 401 has realm and nonce only (MD5 implied)."""
    ch = Challenge.parse(SEED_CHALLENGE)
    assert (ch.realm, ch.nonce, ch.algorithm, ch.qop) == ("3402000000", "324cab6e557268e0", None, ())
    assert ch.algorithm_id is Algorithm.MD5


def test_seed_challenge_round_trips_byte_for_byte() -> None:
    """str() of a parsed challenge is the header value as sent."""
    assert str(Challenge.parse(SEED_CHALLENGE)) == SEED_CHALLENGE


def test_seed_credentials_parse() -> None:
    """GB/T 28181 §9.1.2.1: the seed's second REGISTER's credentials."""
    c = Credentials.parse(SEED_CREDENTIALS)
    assert c.username == "34020000001320000001"
    assert c.uri == "sip:192.168.10.177:5060"
    assert c.response == "7f536c8ce38593239f9130e37a72276e"
    assert c.algorithm == "MD5" and c.qop is None and c.nc is None


def test_seed_credentials_round_trip_byte_for_byte() -> None:
    """str() rebuilds the seed's Authorization value exactly."""
    assert str(Credentials.parse(SEED_CREDENTIALS)) == SEED_CREDENTIALS


def test_seed_headers_parse_from_the_messages(seed_messages: dict[str, bytes]) -> None:
    """The values gbsip.parse() hands out are what Challenge/Credentials take."""
    ch = Challenge.parse(gbsip.parse(seed_messages["seed-2-401"]).headers["WWW-Authenticate"])
    cr = Credentials.parse(gbsip.parse(seed_messages["seed-3-register"]).headers["Authorization"])
    assert cr.nonce == ch.nonce and cr.realm == ch.realm


def test_capability_hint_is_recognised(seed_messages: dict[str, bytes]) -> None:
    """GB 35114 hint in the seed's first REGISTER: a hint, never a credential."""
    value = gbsip.parse(seed_messages["seed-1-register"]).headers["Authorization"]
    assert value == 'Capability, algorithm="H:MD5"'
    assert is_capability_hint(value)
    assert not is_capability_hint(SEED_CREDENTIALS)


def test_capability_hint_is_not_credentials() -> None:
    """Credentials.parse refuses the hint, saying why."""
    with pytest.raises(SIPParseError, match="capability hint"):
        Credentials.parse('Capability, algorithm="H:MD5"')


def test_parameters_in_any_order_case_and_spacing() -> None:
    """RFC 7235 §2.1: names case-insensitive, BWS around '=', LWS around ','."""
    c = Credentials.parse('digest   RESPONSE = "7f536c8ce38593239f9130e37a72276e" ,'
                          'URI="sip:192.168.10.177:5060",\r\n\tNonce=324cab6e557268e0 ,  '
                          'realm="3402000000",USERNAME = "34020000001320000001",,algorithm=md5')
    assert c.response == "7f536c8ce38593239f9130e37a72276e"
    assert c.nonce == "324cab6e557268e0"
    assert c.username == "34020000001320000001"
    assert c.algorithm_id is Algorithm.MD5


def test_unquoted_values_accepted() -> None:
    """Devices send uri, nonce and response unquoted; the value is kept as is."""
    c = Credentials.parse('Digest username=34020000001320000001,realm=3402000000,nonce=abc,'
                          'uri=sip:34020000002000000001@3402000000;transport=udp,'
                          'response=7f536c8ce38593239f9130e37a72276e')
    assert c.uri == "sip:34020000002000000001@3402000000;transport=udp"


def test_escapes_are_removed_and_written_back() -> None:
    """RFC 3261 §25.1 quoted-pair: a\\"b is a"b; str() escapes it again."""
    value = ('Digest username="a\\"b\\\\c",realm="r",nonce="n",uri="sip:x",'
             'response="7f536c8ce38593239f9130e37a72276e"')
    c = Credentials.parse(value)
    assert c.username == 'a"b\\c'
    assert str(c) == value


def test_several_challenges_in_one_value() -> None:
    """RFC 7235 §4.1: challenges separated by commas; non-Digest ones skipped."""
    value = ('Digest realm="3402000000",nonce="a",algorithm=MD5, Basic realm="x", '
             'Digest realm="3402000000", nonce="b", algorithm=SHA-256, qop="auth,auth-int"')
    found = Challenge.parse_all(value)
    assert [c.nonce for c in found] == ["a", "b"]
    assert found[1].qop == ("auth", "auth-int")
    assert Challenge.parse(value).nonce == "a"


def test_choose_takes_the_strongest_allowed() -> None:
    """RFC 7616 §3.7: the client uses the strongest algorithm it supports."""
    found = [Challenge(realm="r", nonce=str(i), algorithm=a)
             for i, a in enumerate(["MD5", "SHA-512-256", "SHA-256", "AKAv1-MD5"])]
    best = choose(found)
    assert best is not None and best.nonce == "1"
    allowed = choose(found, allowed=[Algorithm.MD5, Algorithm.SHA256])
    assert allowed is not None and allowed.nonce == "2"
    assert choose(found, allowed=["MD5-sess"]) is None


def test_unknown_parameters_are_kept_in_order() -> None:
    """Unknown auth-params survive parse and str() (RFC 7235 §2.1 extensibility)."""
    value = 'Digest realm="r",x-gb-ver="3.0",nonce="n",algorithm=MD5,foo=bar'
    ch = Challenge.parse(value)
    assert ch.extra == (("x-gb-ver", "3.0"), ("foo", "bar"))
    again = Challenge.parse(str(ch))
    assert again == ch


def test_unknown_algorithm_parses_but_cannot_be_answered() -> None:
    """An algorithm gbsip does not know is kept; answering it is refused."""
    ch = Challenge.parse('Digest realm="r",nonce="n",algorithm=AKAv1-MD5')
    assert ch.algorithm == "AKAv1-MD5" and ch.algorithm_id is None
    with pytest.raises(DigestError, match="algorithm"):
        Credentials.for_challenge(ch, "u", "p", method="REGISTER", uri="sip:x")


@pytest.mark.parametrize(("value", "reason"), [
    ('Digest realm="r"', "missing nonce"),
    ('Digest nonce="n"', "missing realm"),
    ('Digest realm="r",nonce="n",realm="s"', "duplicate realm"),
    ('Digest realm="r,nonce=n', "unterminated quoted string"),
    ('Digest realm="r,nonce="n"', "expected ','"),
    ('Digest realm="r" nonce="n"', "expected ','"),
    ('Basic realm="r"', "no Digest challenge"),
    ('', "no Digest challenge"),
])
def test_malformed_challenge_says_what(value: str, reason: str) -> None:
    """A malformed challenge raises SIPParseError (status 400) with the reason."""
    with pytest.raises(SIPParseError) as info:
        Challenge.parse(value)
    assert reason in info.value.reason
    assert info.value.status == 400


@pytest.mark.parametrize(("value", "reason"), [
    ('Digest realm="r",nonce="n",uri="u",response="7f536c8ce38593239f9130e37a72276e"',
     "missing username"),
    ('Digest username="u",nonce="n",uri="u",response="7f536c8ce38593239f9130e37a72276e"',
     "missing realm"),
    ('Digest username="u",realm="r",uri="u",response="7f536c8ce38593239f9130e37a72276e"',
     "missing nonce"),
    ('Digest username="u",realm="r",nonce="n",response="7f536c8ce38593239f9130e37a72276e"',
     "missing uri"),
    ('Digest username="u",realm="r",nonce="n",uri="u"', "missing response"),
    ('Digest username="u",realm="r",nonce="n",uri="u",response="xyz"', "not hex"),
    ('Digest username="u",realm="r",nonce="n",uri="u",response="7f53"', "length"),
    ('Digest username="u",realm="r",nonce="n",uri="u",qop=auth,cnonce="c",'
     'response="7f536c8ce38593239f9130e37a72276e"', "qop without nc"),
    ('Digest username="u",realm="r",nonce="n",uri="u",qop=auth,nc=1,cnonce="c",'
     'response="7f536c8ce38593239f9130e37a72276e"', "nc is not 8 hex digits"),
    ('Digest username="u",realm="r",nonce="n",uri="u",username="v",'
     'response="7f536c8ce38593239f9130e37a72276e"', "duplicate username"),
    ('Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==', "not Digest"),
    ('Digest username="u", Digest realm="r"', "more than one"),
])
def test_malformed_credentials_say_what(value: str, reason: str) -> None:
    """RFC 7616 §3.4: required parameters, formats; the reason names the fault."""
    with pytest.raises(SIPParseError) as info:
        Credentials.parse(value)
    assert reason in info.value.reason


def test_values_are_frozen() -> None:
    """Challenges and credentials are immutable values."""
    ch = Challenge.parse(SEED_CHALLENGE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ch.nonce = "other"  # type: ignore[misc]
    assert ch == Challenge(realm="3402000000", nonce="324cab6e557268e0")
    assert "324cab6e557268e0" in repr(ch)


def test_factory_challenge_always_names_the_algorithm() -> None:
    """GB field quirk: some devices answer nothing without algorithm=MD5."""
    ch = NonceFactory(key=b"k" * 32).challenge("3402000000", now=1000.0)
    assert str(ch).startswith('Digest realm="3402000000",nonce="')
    assert str(ch).endswith(",algorithm=MD5")


def test_challenge_with_every_field_round_trips() -> None:
    """str() then parse gives the same value for every field."""
    ch = Challenge(realm="3402000000", nonce="n", algorithm="SHA-512-256-sess",
                   qop=("auth", "auth-int"), opaque="o\"q", stale=True, domain="sip:x",
                   charset="UTF-8", userhash=True, extra=(("x", "a b"),))
    assert Challenge.parse(str(ch)) == ch
    assert 'stale=true' in str(ch) and 'qop="auth,auth-int"' in str(ch)


def test_credentials_with_qop_round_trip() -> None:
    """RFC 7616 §3.4: qop and nc unquoted, cnonce and opaque quoted."""
    c = Credentials(username="u", realm="r", nonce="n", uri="sip:x",
                    response="7f536c8ce38593239f9130e37a72276e", algorithm="MD5",
                    qop="auth", nc="0000000a", cnonce="c", opaque="", userhash=False)
    text = str(c)
    assert text.endswith(',algorithm=MD5,cnonce="c",opaque="",qop=auth,nc=0000000a')
    assert Credentials.parse(text) == c
    assert c.nc_count == 10


def test_header_injection_is_refused() -> None:
    """A value with CR/LF cannot be written into a header."""
    with pytest.raises(DigestError):
        str(Challenge(realm="r\r\nVia: evil", nonce="n"))
