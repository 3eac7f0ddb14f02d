"""The registrar's rules through ``gbsip._core.RegistrarCore``, sans IO.

Every test drives the core with explicit monotonic (``now``) and wall
(``wall``) milliseconds, so timers and the GB Date are exact and nothing
sleeps.  Answers are inspected with :func:`gbsip.parse`; Digest responses
are computed here from RFC 2617 with :mod:`hashlib`, independently of the
C code under test.
"""
from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest

import gbsip
from gbsip._core import RegistrarCore

SERVER_ID = "34020000002000000001"
REALM = "3402000000"
DEV = "34020000001320000001"
DEV2 = "34020000001320000002"
RURI = f"sip:{SERVER_ID}@{REALM}"
PASSWORD = "12345678"
NOW = 1_000_000
WALL_SEED = 1372262917164  # 2013-06-26T16:08:37.164, already local time

# Event type codes of registrar.h (gb_event_type).
REGISTERED, REFRESHED, UNREGISTERED, EXPIRED, AUTH_FAILED, REJECTED = 1, 2, 3, 4, 5, 6
ONLINE, OFFLINE, KEEPALIVE, MESSAGE, NEED_SECRET, REDIRECTED = 7, 8, 9, 10, 11, 12

KEEPALIVE_BODY = (
    '<?xml version="1.0" encoding="GB2312"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n'
    "<SN>{sn}</SN>\r\n<DeviceID>{dev}</DeviceID>\r\n<Status>OK</Status>\r\n</Notify>\r\n"
)


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def digest_response(user: str, password: str, nonce: str, uri: str = RURI,
                    method: str = "REGISTER", realm: str = REALM, qop: str | None = None,
                    nc: str = "00000001", cnonce: str = "0a4f113b") -> str:
    """RFC 2617 §3.2.2.1 request-digest (MD5), with or without qop=auth."""
    ha1 = md5(f"{user}:{realm}:{password}")
    ha2 = md5(f"{method}:{uri}")
    if qop:
        return md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return md5(f"{ha1}:{nonce}:{ha2}")


def authorization(user: str, password: str, nonce: str, *, uri: str = RURI,
                  qop: str | None = None, nc: str = "00000001", ha1_user: str | None = None) -> str:
    resp = digest_response(ha1_user or user, password, nonce, uri, qop=qop, nc=nc)
    value = (f'Digest username="{user}",realm="{REALM}",nonce="{nonce}",uri="{uri}",'
             f'response="{resp}",algorithm=MD5')
    if qop:
        value += f',qop={qop},nc={nc},cnonce="0a4f113b"'
    return value


def challenge_params(answer: gbsip.Response) -> dict[str, str]:
    """The parameters of a WWW-Authenticate: Digest challenge, unquoted."""
    value = answer.headers["WWW-Authenticate"]
    assert value.startswith("Digest ")
    out = {}
    for part in value[len("Digest "):].split(","):
        name, _, val = part.strip().partition("=")
        out[name.lower()] = val.strip('"')
    return out


_branches = itertools.count(1)


def request(method: str = "REGISTER", *, device: str = DEV, call_id: str = "call-1",
            cseq: int = 1, contact: str | None = None, expires: int | None = 3600,
            auth: str | None = None, extra: list[tuple[str, str]] | None = None,
            body: bytes = b"", content_type: str | None = None, uri: str = RURI,
            branch: str | None = None, via_host: str = "10.0.0.5:5061") -> bytes:
    headers = [
        ("Via", f"SIP/2.0/UDP {via_host};rport;branch={branch or f'z9hG4bKpy{next(_branches)}'}"),
        ("From", f"<sip:{device}@{REALM}>;tag=ft{device[-4:]}"),
        ("To", f"<sip:{device}@{REALM}>"),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {method}"),
        ("Max-Forwards", "70"),
    ]
    if contact is None and method == "REGISTER":
        contact = f"<sip:{device}@10.0.0.5:5061>"
    if contact:
        headers.append(("Contact", contact))
    if expires is not None:
        headers.append(("Expires", str(expires)))
    if auth:
        headers.append(("Authorization", auth))
    headers += extra or []
    if content_type:
        headers.append(("Content-Type", content_type))
    return bytes(gbsip.Request(method, uri, headers, body))


def keepalive(device: str = DEV, sn: int = 1, call_id: str = "ka", cseq: int = 1,
              content_type: str = "Application/MANSCDP+xml") -> bytes:
    body = KEEPALIVE_BODY.format(sn=sn, dev=device).encode()
    return request("MESSAGE", device=device, call_id=call_id, cseq=cseq, expires=None,
                   body=body, content_type=content_type)


@dataclass
class Core:
    """A RegistrarCore with a tiny driver: feed bytes, get a parsed answer."""

    core: RegistrarCore
    events: list[tuple[Any, ...]] = field(default_factory=list)

    def send(self, data: bytes, now: int = NOW, wall: int = WALL_SEED,
             host: str = "10.0.0.5", port: int = 5061, transport: int = 0,
             conn_id: int = 0) -> gbsip.Response | None:
        answer = self.core.handle(data, host, port, transport, conn_id, now, wall)
        self.events += self.core.pop_events()
        if answer is None:
            return None
        msg = gbsip.parse(answer[0])
        assert isinstance(msg, gbsip.Response)
        return msg

    def raw(self, data: bytes, now: int = NOW, host: str = "10.0.0.5",
            port: int = 5061) -> tuple[bytes, tuple[Any, ...]] | None:
        answer = self.core.handle(data, host, port, 0, 0, now, WALL_SEED)
        self.events += self.core.pop_events()
        return answer

    def timer(self, now: int) -> None:
        self.core.handle_timer(now)
        self.events += self.core.pop_events()

    def take(self, kind: int | None = None) -> list[tuple[Any, ...]]:
        """Events so far (of that kind), forgetting all of them."""
        out = [e for e in self.events if kind is None or e[0] == kind]
        self.events.clear()
        return out

    def register(self, device: str = DEV, password: str = PASSWORD, *, call_id: str = "call-1",
                 cseq: int = 1, expires: int | None = 3600, now: int = NOW,
                 port: int = 5061) -> gbsip.Response:
        """REGISTER, 401, REGISTER with credentials (GB/T 28181 §9.1.2.1)."""
        first = self.send(request(device=device, call_id=call_id, cseq=cseq, expires=expires),
                          now=now, port=port)
        assert first is not None and first.status == 401, first
        nonce = challenge_params(first)["nonce"]
        second = self.send(request(device=device, call_id=call_id, cseq=cseq + 1, expires=expires,
                                   auth=authorization(device, password, nonce)),
                           now=now, port=port)
        assert second is not None
        return second


def make(**kw: Any) -> Core:
    kw.setdefault("shared_password", PASSWORD)
    kw.setdefault("seed", 7)
    return Core(RegistrarCore(SERVER_ID, **kw))


def fixed(**kw: Any) -> Core:
    """A core with the fixed nonce "n": credentials can be computed up front."""
    return make(fixed_nonce="n", **kw)


def creds(device: str = DEV, password: str = PASSWORD) -> str:
    return authorization(device, password, "n")


# --------------------------------------------------------------------------
# The seed (GB/T 28181 §9.1.2.1, §9.10)


def test_seed_first_register_is_challenged_with_the_fixed_nonce(seed_messages: dict[str, bytes]) -> None:
    """GB/T 28181 §9.1.2.1: the first REGISTER gets 401 with realm, the nonce and algorithm=MD5."""
    reg = make(fixed_nonce="324cab6e557268e0")
    ans = reg.send(seed_messages["seed-1-register"], host="192.168.10.117", port=5061)
    assert ans is not None and ans.status == 401
    params = challenge_params(ans)
    assert params == {"realm": REALM, "nonce": "324cab6e557268e0", "algorithm": "MD5"}
    assert ans.call_id == "939764460" and ans.cseq == (1, "REGISTER")
    assert reg.take(AUTH_FAILED) == []  # the Capability hint is not a failed credential


def test_seed_authenticated_register_gets_200_with_gb_date(seed_messages: dict[str, bytes]) -> None:
    """GB/T 28181 §9.1.2.1 and §9.10: the seed's third message is accepted; 200 OK has the GB Date."""
    reg = make(fixed_nonce="324cab6e557268e0")
    reg.send(seed_messages["seed-1-register"], host="192.168.10.117", port=5061)
    ans = reg.send(seed_messages["seed-3-register"], now=NOW + 40, host="192.168.10.117",
                   port=5061)
    assert ans is not None and ans.status == 200
    assert ans.headers["Date"] == "2013-06-26T16:08:37.164"
    assert ans.headers["Expires"] == "3600"
    assert ans.headers.getall("Contact") == [
        "<sip:34020000001320000001@192.168.10.117:5061;line=6513f93347c330b>;expires=3600"]
    (ev,) = reg.take(REGISTERED)
    assert ev[1] == DEV and ev[3] == 3600 and ev[10] == "eXosip/3.6.0"


def test_seed_answer_carries_received_and_rport(seed_messages: dict[str, bytes]) -> None:
    """RFC 3581 / RFC 3261 §18.2.1: the answer's Via names where the request really came from."""
    reg = make(fixed_nonce="324cab6e557268e0")
    answer = reg.raw(seed_messages["seed-1-register"], host="127.0.0.9", port=40000)
    assert answer is not None
    data, dest = answer
    via = gbsip.parse(data).via
    assert via is not None and via.received == "127.0.0.9"
    assert dest[:3] == ("127.0.0.9", 40000, 0)


def test_bare_rport_is_filled_with_the_source_port() -> None:
    """RFC 3581 §4: an rport without value is set to the request's source port."""
    answer = make().raw(request(), host="127.0.0.9", port=40000)
    assert answer is not None
    via = gbsip.parse(answer[0]).via
    assert via is not None and via.rport == 40000 and via.received == "127.0.0.9"


def test_date_uses_the_wall_clock_given() -> None:
    """GB/T 28181 §9.10: Date is yyyy-MM-ddTHH:mm:ss.SSS of the wall time passed in."""
    reg = fixed()
    ans = reg.send(request(auth=creds()), wall=1709251199999)
    assert ans is not None and ans.headers["Date"] == "2024-02-29T23:59:59.999"


def test_x_gb_ver_sent_when_configured() -> None:
    """GB/T 28181-2022: X-GB-Ver names the edition when the platform is configured with one."""
    reg = fixed(gb_version="3.0")
    ans = reg.send(request(auth=creds()))
    assert ans is not None and ans.headers.get("X-GB-Ver") == "3.0"
    assert fixed().send(request(auth=creds())).headers.get("X-GB-Ver") is None  # type: ignore[union-attr]


# --------------------------------------------------------------------------
# RFC 3261 §10.3


def test_older_cseq_on_same_call_id_is_rejected() -> None:
    """RFC 3261 §10.3 step 7: a CSeq not above the binding's on its Call-ID aborts the update."""
    reg = fixed()
    assert reg.send(request(cseq=5, auth=creds())).status == 200  # type: ignore[union-attr]
    for cseq in (4, 5):
        ans = reg.send(request(cseq=cseq, auth=creds(), expires=7200))
        assert ans is not None and ans.status == 500 and "CSeq" in ans.reason
    binding = reg.core.binding(DEV)
    assert binding[5] == 5 and binding[7] == NOW + 3600_000


def test_higher_cseq_refreshes() -> None:
    """RFC 3261 §10.3 step 7: a higher CSeq on the same Call-ID updates the binding."""
    reg = fixed()
    reg.send(request(cseq=1, auth=creds()))
    reg.take()
    ans = reg.send(request(cseq=2, auth=creds()), now=NOW + 5000)
    assert ans is not None and ans.status == 200
    (ev,) = reg.take(REFRESHED)
    assert ev[1] == DEV and reg.core.binding(DEV)[7] == NOW + 5000 + 3600_000


def test_new_call_id_replaces_the_binding() -> None:
    """RFC 3261 §10.3 step 7 / GB/T 28181 §9.1: a rebooted device (new Call-ID, CSeq 1) replaces its binding."""
    reg = fixed()
    reg.send(request(call_id="A", cseq=50, auth=creds()))
    ans = reg.send(request(call_id="B", cseq=1, auth=creds(), contact=f"<sip:{DEV}@10.0.0.9:5061>"),
                   host="10.0.0.9")
    assert ans is not None and ans.status == 200
    b = reg.core.binding(DEV)
    assert b[4] == "B" and b[5] == 1 and b[6][0] == "10.0.0.9"
    assert [uri for uri, _ in reg.core.contacts(DEV)] == [f"sip:{DEV}@10.0.0.9:5061"]


def test_wildcard_with_expires_zero_removes_every_contact() -> None:
    """RFC 3261 §10.3 step 6: Contact: * with Expires: 0 unregisters."""
    reg = fixed()
    reg.send(request(cseq=1, auth=creds()))
    reg.take()
    ans = reg.send(request(cseq=2, contact="*", expires=0, auth=creds()))
    assert ans is not None and ans.status == 200
    assert ans.headers.getall("Contact") == []
    assert reg.core.binding_count() == 0
    assert [e[1] for e in reg.take(UNREGISTERED)] == [DEV]


@pytest.mark.parametrize("contact,expires", [("*", None), ("*", 3600),
                                             (f"*, <sip:{DEV}@10.0.0.5:5061>", 0)])
def test_wildcard_otherwise_is_400(contact: str, expires: int | None) -> None:
    """RFC 3261 §10.3 step 6: '*' only with Expires: 0 and no other Contact; else 400."""
    reg = fixed()
    reg.send(request(cseq=1, auth=creds()))
    ans = reg.send(request(cseq=2, contact=contact, expires=expires, auth=creds()))
    assert ans is not None and ans.status == 400 and "Contact: *" in ans.reason
    assert reg.core.binding_count() == 1


def test_expires_zero_unregisters() -> None:
    """GB/T 28181 §9.1.2.2: unregistration is a REGISTER with Expires: 0."""
    reg = fixed()
    reg.send(request(cseq=1, auth=creds()))
    ans = reg.send(request(cseq=2, expires=0, auth=creds()))
    assert ans is not None and ans.status == 200 and ans.headers["Expires"] == "0"
    assert reg.core.binding_count() == 0


def test_below_min_expires_is_423_with_min_expires() -> None:
    """RFC 3261 §10.3 step 7 / §21.4.17: too brief an expiry gets 423 and Min-Expires."""
    reg = fixed(min_expires=3600)
    ans = reg.send(request(expires=60, auth=creds()))
    assert ans is not None and ans.status == 423 and ans.min_expires == 3600
    assert reg.core.binding_count() == 0
    assert [e[2] for e in reg.take(REJECTED)] == [423]


def test_contact_expires_param_below_min_is_423() -> None:
    """RFC 3261 §10.2.1.1: a Contact's expires parameter overrides Expires, and is checked too."""
    reg = fixed()
    ans = reg.send(request(expires=None, contact=f"<sip:{DEV}@10.0.0.5:5061>;expires=5",
                           auth=creds()))
    assert ans is not None and ans.status == 423


def test_longer_than_max_is_clamped() -> None:
    """RFC 3261 §10.3 step 7: the registrar may shorten the expiry; 200 carries what was granted."""
    reg = fixed(max_expires=7200)
    ans = reg.send(request(expires=999999, auth=creds()))
    assert ans is not None and ans.status == 200
    assert ans.headers["Expires"] == "7200"
    assert ans.contacts[0].expires == 7200
    (ev,) = reg.take(REGISTERED)
    assert ev[3] == 7200


def test_default_expires_when_none_given() -> None:
    """RFC 3261 §10.3 step 7: without Expires the registrar picks its default (GB: 3600)."""
    reg = fixed()
    ans = reg.send(request(expires=None, auth=creds()))
    assert ans is not None and ans.headers["Expires"] == "3600"


def test_register_without_contact_is_a_query() -> None:
    """RFC 3261 §10.2.3: a REGISTER without Contact lists the current bindings."""
    reg = fixed()
    reg.send(request(cseq=1, auth=creds()))
    ans = reg.send(request(cseq=2, contact="", expires=None, auth=creds()), now=NOW + 1000)
    assert ans is not None and ans.status == 200
    assert [c.uri for c in ans.contacts] == [f"sip:{DEV}@10.0.0.5:5061"]
    assert ans.contacts[0].expires == 3599


# --------------------------------------------------------------------------
# Authentication (GB/T 28181 §9.1.2.1, RFC 3261 §22)


def test_wrong_password_is_403_without_second_challenge() -> None:
    """GB/T 28181 §9.1.2.1: a wrong response is refused with 403, not challenged again."""
    reg = make()
    ans = reg.register(password="wrong")
    assert ans.status == 403 and "WWW-Authenticate" not in ans.headers
    (ev,) = reg.take(AUTH_FAILED)
    assert ev[1] == DEV and ev[2] == 403 and "password" in ev[8]
    assert reg.core.binding_count() == 0


def test_unknown_device_is_403() -> None:
    """GB/T 28181 §9.1.2.1: a device the platform has no password for is refused with 403."""
    reg = make(shared_password=None)
    reg.core.set_secret(DEV, "pw1")
    ans = reg.register(device=DEV2, password="pw1")
    assert ans.status == 403 and "unknown" in ans.reason
    assert reg.register(device=DEV, password="pw1", call_id="c2").status == 200


def test_per_device_ha1() -> None:
    """RFC 2617 §3.2.2.2: a stored HA1 verifies like the password it was made from."""
    reg = make(shared_password=None)
    reg.core.set_secret(DEV, md5(f"{DEV}:{REALM}:pw-ha1"), is_ha1=True)
    assert reg.register(password="pw-ha1").status == 200


def test_forgotten_secret_makes_device_unknown() -> None:
    """A secret removed with forget_secret no longer authenticates (403)."""
    reg = make(shared_password=None)
    reg.core.set_secret(DEV, "pw")
    assert reg.core.forget_secret(DEV) is True
    assert reg.register(password="pw").status == 403


def test_credentials_naming_another_device_are_403() -> None:
    """GB/T 28181 §9.1.2.1: the Digest username must be the registering device."""
    reg = fixed()
    ans = reg.send(request(device=DEV, auth=creds(DEV2)))
    assert ans is not None and ans.status == 403 and reg.core.binding_count() == 0


def test_stale_nonce_is_rechallenged_with_stale_true() -> None:
    """RFC 2617 §3.2.1 / RFC 3261 §22.4: a right answer to an expired nonce gets 401 stale=true."""
    reg = make(nonce_lifetime=2)
    first = reg.send(request(cseq=1))
    assert first is not None and "stale" not in challenge_params(first)
    nonce = challenge_params(first)["nonce"]
    ans = reg.send(request(cseq=2, auth=authorization(DEV, PASSWORD, nonce)), now=NOW + 5000)
    assert ans is not None and ans.status == 401
    params = challenge_params(ans)
    assert params["stale"] == "true" and params["algorithm"] == "MD5" and params["nonce"] != nonce
    ok = reg.send(request(cseq=3, auth=authorization(DEV, PASSWORD, params["nonce"])),
                  now=NOW + 5001)
    assert ok is not None and ok.status == 200


def test_qop_auth_offered_and_nc_replay_refused() -> None:
    """RFC 2617 §3.2.2: with qop=auth a reused nc is a replay and is not accepted."""
    reg = make(qop_auth=True)
    first = reg.send(request(cseq=1))
    assert first is not None
    params = challenge_params(first)
    assert params["qop"] == "auth" and params["algorithm"] == "MD5"
    nonce = params["nonce"]
    auth1 = authorization(DEV, PASSWORD, nonce, qop="auth", nc="00000001")
    assert reg.send(request(cseq=2, auth=auth1)).status == 200  # type: ignore[union-attr]
    reg.take()
    replay = reg.send(request(cseq=3, auth=auth1))
    assert replay is not None and replay.status == 401
    assert len(reg.take(AUTH_FAILED)) == 1
    auth2 = authorization(DEV, PASSWORD, nonce, qop="auth", nc="00000002")
    assert reg.send(request(cseq=4, auth=auth2)).status == 200  # type: ignore[union-attr]


def test_forged_nonce_is_rechallenged() -> None:
    """RFC 2617 §3.2.2: credentials for a nonce the server never issued get a new challenge."""
    reg = make()
    ans = reg.send(request(auth=authorization(DEV, PASSWORD, "00112233445566778899aabbccddeeff")))
    assert ans is not None and ans.status == 401
    assert reg.core.binding_count() == 0


def test_refresh_policy_challenge_challenges_every_refresh() -> None:
    """GB/T 28181 §9.1.2.1: policy CHALLENGE answers a credential-less refresh with 401."""
    reg = make(refresh_policy=0)
    assert reg.register().status == 200
    ans = reg.send(request(cseq=3), now=NOW + 1000)
    assert ans is not None and ans.status == 401


def test_refresh_policy_trust_call_id_accepts_refresh() -> None:
    """Policy TRUST_CALL_ID: a refresh on the device's Call-ID from its address needs no challenge."""
    reg = make(refresh_policy=1)
    assert reg.register().status == 200
    reg.take()
    ans = reg.send(request(cseq=3), now=NOW + 1000)
    assert ans is not None and ans.status == 200
    assert len(reg.take(REFRESHED)) == 1


@pytest.mark.parametrize("call_id,port", [("other", 5061), ("call-1", 6000)])
def test_refresh_policy_trust_call_id_still_challenges_others(call_id: str, port: int) -> None:
    """Policy TRUST_CALL_ID trusts only the same Call-ID from the same address."""
    reg = make(refresh_policy=1)
    reg.register()
    ans = reg.send(request(call_id=call_id, cseq=3), now=NOW + 1000, port=port)
    assert ans is not None and ans.status == 401


def test_secret_lookup_pends_then_resumes() -> None:
    """ask_for_secrets: an unknown user becomes a NEED_SECRET event; resume() finishes it."""
    reg = make(shared_password=None, ask_for_secrets=True)
    first = reg.send(request(cseq=1))
    assert first is not None
    nonce = challenge_params(first)["nonce"]
    assert reg.send(request(cseq=2, auth=authorization(DEV, "s3", nonce))) is None
    (need,) = reg.take(NEED_SECRET)
    assert need[1] == DEV and reg.core.stats()["pending"] == 1
    answer = reg.core.resume(need[6], 1, "s3", NOW + 3, WALL_SEED)
    assert answer is not None and gbsip.parse(answer[0]).status == 200
    assert answer[1][:2] == ("10.0.0.5", 5061)
    assert reg.core.resume(need[6], 1, "s3", NOW + 4, WALL_SEED) is None


def test_secret_lookup_unknown_is_403() -> None:
    """resume() with kind 0 (no such device) answers 403."""
    reg = make(shared_password=None, ask_for_secrets=True)
    nonce = challenge_params(reg.send(request(cseq=1)))["nonce"]  # type: ignore[arg-type]
    reg.send(request(cseq=2, auth=authorization(DEV, "x", nonce)))
    (need,) = reg.take(NEED_SECRET)
    answer = reg.core.resume(need[6], 0, None, NOW, WALL_SEED)
    assert answer is not None and gbsip.parse(answer[0]).status == 403


# --------------------------------------------------------------------------
# Keepalive (GB/T 28181 §9.6.1) and timers


def test_keepalive_is_answered_200_with_event() -> None:
    """GB/T 28181 §9.6.1: a MANSCDP Keepalive MESSAGE is answered 200 and reported with its SN."""
    reg = fixed()
    reg.send(request(auth=creds()))
    reg.take()
    ans = reg.send(keepalive(sn=43), now=NOW + 1000)
    assert ans is not None and ans.status == 200
    (ev,) = reg.take(KEEPALIVE)
    assert ev[1] == DEV and ev[4] == 43 and ev[9] == "OK"
    assert reg.core.binding(DEV)[9] == NOW + 1000


def test_keepalive_content_type_is_case_insensitive() -> None:
    """GB/T 28181 §9.6.1: Application/MANSCDP+xml matches in any case."""
    reg = fixed()
    reg.send(request(auth=creds()))
    ans = reg.send(keepalive(content_type="application/manscdp+xml"))
    assert ans is not None and ans.status == 200


def test_keepalive_from_another_port_does_not_move_the_binding() -> None:
    """Issue 14: a keepalive carries no credentials, so one from another address (here the
    same host, another port: a NAT, or someone else) is answered 403 there (rport/received)
    and moves nothing; the device's next REGISTER, with credentials, moves the binding."""
    reg = fixed()
    reg.send(request(auth=creds()))
    answer = reg.raw(keepalive(), port=40123)
    assert answer is not None and answer[1][:2] == ("10.0.0.5", 40123)
    assert gbsip.parse(answer[0]).status == 403
    assert reg.core.binding(DEV)[6][:2] == ("10.0.0.5", 5061)
    reg.raw(request(auth=creds(), cseq=2), port=40123)
    assert reg.core.binding(DEV)[6][:2] == ("10.0.0.5", 40123)


def test_keepalive_from_unregistered_device_is_403() -> None:
    """GB/T 28181 §9.6.1: the platform only tracks registered devices."""
    ans = make().send(keepalive())
    assert ans is not None and ans.status == 403


def test_other_manscdp_message_is_reported() -> None:
    """GB/T 28181 §9.6: other MANSCDP notifications of a registered device are answered 200
    and passed on."""
    reg = fixed()
    reg.send(request(auth=creds()))
    reg.take()
    body = (b"<?xml version=\"1.0\"?><Notify><CmdType>Alarm</CmdType><SN>1</SN>"
            b"<DeviceID>34020000001320000001</DeviceID></Notify>")
    ans = reg.send(request("MESSAGE", expires=None, body=body,
                           content_type="Application/MANSCDP+xml"))
    assert ans is not None and ans.status == 200
    (ev,) = reg.take(MESSAGE)
    assert "Alarm" in ev[9]


def test_malformed_manscdp_message_is_refused_with_the_reason() -> None:
    """GB/T 28181 Annex A: a registered device's MESSAGE that is no MANSCDP document (no SN,
    broken XML, an unknown CmdType) gets 400 (501) naming the problem, not 200, and no
    MessageReceived."""
    reg = fixed()
    reg.send(request(auth=creds()))
    reg.take()
    for body, status in [
            (b"<Notify><CmdType>Alarm</CmdType><DeviceID>1</DeviceID></Notify>", 400),
            (b"<Notify><CmdType>Alarm</CmdType><SN>1</SN><DeviceID>1</DeviceID>", 400),
            (b"<Notify><CmdType>Jump</CmdType><SN>1</SN><DeviceID>1</DeviceID></Notify>", 501)]:
        ans = reg.send(request("MESSAGE", expires=None, body=body,
                               content_type="Application/MANSCDP+xml"))
        assert ans is not None and ans.status == status, body
        assert ans.reason and ans.reason != gbsip.status_phrase(status)
    assert reg.take(MESSAGE) == []
    assert reg.core.stats()["messages_malformed"] == 3


def test_missed_keepalives_mark_offline_then_online() -> None:
    """GB/T 28181 §9.6.1: interval x timeout count without keepalive -> offline; a keepalive -> online."""
    reg = fixed(keepalive_interval_ms=1000, keepalive_timeout_count=3)
    reg.send(request(auth=creds()))
    reg.send(keepalive(sn=1), now=NOW + 1000)
    reg.take()
    reg.timer(NOW + 3999)
    assert reg.take(OFFLINE) == []
    reg.timer(NOW + 4000)
    assert [e[1] for e in reg.take(OFFLINE)] == [DEV]
    assert reg.core.binding(DEV)[10] is False and reg.core.binding_count() == 1
    reg.timer(NOW + 20000)
    assert reg.take(OFFLINE) == []
    reg.send(keepalive(sn=2, cseq=2), now=NOW + 21000)
    assert [e[1] for e in reg.take(ONLINE)] == [DEV]
    assert reg.core.binding(DEV)[10] is True


def test_binding_expires_by_timer() -> None:
    """RFC 3261 §10.3: a binding not refreshed by its expiry is removed (Expired event)."""
    reg = fixed(min_expires=10, keepalive_interval_ms=0)
    reg.send(request(expires=10, auth=creds()))
    reg.take()
    reg.timer(NOW + 9999)
    assert reg.core.next_deadline() == NOW + 10000
    assert reg.take(EXPIRED) == []
    reg.timer(NOW + 10000)
    assert [e[1] for e in reg.take(EXPIRED)] == [DEV]
    assert reg.core.binding_count() == 0
    reg.timer(NOW + 100000)
    assert reg.core.next_deadline() is None


# --------------------------------------------------------------------------
# Retransmissions (RFC 3261 §17.2.1)


def test_retransmission_gets_identical_cached_answer() -> None:
    """RFC 3261 §17.2.1: a retransmitted request gets the same answer, processed once."""
    reg = fixed()
    data = request(auth=creds(), branch="z9hG4bKsame")
    first = reg.raw(data)
    events = reg.take()
    second = reg.raw(data, now=NOW + 500)
    assert first is not None and second is not None and first[0] == second[0]
    assert [e[0] for e in events].count(REGISTERED) == 1
    assert reg.take() == []
    stats = reg.core.stats()
    assert stats["retransmissions_absorbed"] == 1 and stats["registrations"] == 1


def test_retransmitted_register_is_not_challenged_twice() -> None:
    """RFC 3261 §17.2.1: a retransmitted unauthenticated REGISTER gets the same 401 (same nonce)."""
    reg = make()
    data = request(branch="z9hG4bKsame401")
    a, b = reg.raw(data), reg.raw(data, now=NOW + 500)
    assert a is not None and b is not None and a[0] == b[0]
    assert reg.core.stats()["challenges"] == 1


def test_cached_answers_age_out_after_timer_j() -> None:
    """RFC 3261 §17.2.1 Timer J: the cache lets go of an answer after transaction_ms."""
    reg = fixed(transaction_ms=32000)
    reg.send(request(auth=creds()))
    assert reg.core.stats()["transactions"] == 1
    reg.timer(NOW + 32000)
    assert reg.core.stats()["transactions"] == 0


# --------------------------------------------------------------------------
# IDs (GB/T 28181 Appendix D), redirect (2022 §9.1.2.3)


@pytest.mark.parametrize("device", ["alice", "3402000000132000000", "3402000000132000000a"])
def test_strict_ids_refuse_non_gb_ids(device: str) -> None:
    """GB/T 28181 Appendix D: strict ID checking wants 20 decimal digits (400 otherwise)."""
    ans = fixed().send(request(device=device, auth=creds(device)))
    assert ans is not None and ans.status == 400 and "20 digits" in ans.reason


@pytest.mark.parametrize("device", ["alice", "3402000000132000000a"])
def test_any_ids_accept_other_user_names(device: str) -> None:
    """strict_ids=False: any user part registers (test rigs, non-GB peers)."""
    ans = fixed(strict_ids=False).send(request(device=device, auth=creds(device)))
    assert ans is not None and ans.status == 200


def test_redirect_answers_302_with_target() -> None:
    """GB/T 28181-2022 §9.1.2.3: a redirect server answers REGISTER 302 naming the platform."""
    target = "sip:34020000002000000002@10.1.1.1:5060"
    reg = make(redirect_to=target)
    ans = reg.send(request())
    assert ans is not None and ans.status == 302 and ans.contacts[0].uri == target
    assert [e[9] for e in reg.take(REDIRECTED)] == [target]
    assert reg.core.binding_count() == 0


# --------------------------------------------------------------------------
# Limits


def test_max_bindings_answers_503() -> None:
    """Bounded state: past max_bindings a new device gets 503; known ones still refresh."""
    reg = fixed(max_bindings=2)
    ids = [f"3402000000132000001{i}" for i in range(3)]
    codes = [reg.send(request(device=d, call_id=d, auth=creds(d))).status  # type: ignore[union-attr]
             for d in ids]
    assert codes == [200, 200, 503]
    again = reg.send(request(device=ids[0], call_id=ids[0], cseq=2, auth=creds(ids[0])))
    assert again is not None and again.status == 200


def test_max_contacts_refuses_more() -> None:
    """Bounded state: more than max_contacts Contact addresses per device are refused."""
    reg = fixed(max_contacts=2)
    three = "<sip:a@10.0.0.5:1>, <sip:b@10.0.0.5:2>, <sip:c@10.0.0.5:3>"
    ans = reg.send(request(contact=three, auth=creds()))
    assert ans is not None and ans.status == 403 and "Contact" in ans.reason
    assert reg.core.binding_count() == 0


def test_max_pending_drops_and_counts() -> None:
    """Bounded state: lookups beyond max_pending are dropped and counted."""
    reg = fixed(shared_password=None, ask_for_secrets=True, max_pending=1)
    assert reg.send(request(auth=creds())) is None
    assert reg.send(request(device=DEV2, call_id="2", auth=creds(DEV2))) is None
    stats = reg.core.stats()
    assert stats["pending"] == 1 and stats["dropped_pending_full"] == 1


def test_max_events_drops_oldest_and_counts() -> None:
    """Bounded state: the event queue keeps max_events; the loss is counted."""
    reg = make(max_events=4)
    for _ in range(10):
        reg.core.handle(request("FOO", expires=None), "10.0.0.5", 5061, 0, 0, NOW, WALL_SEED)
    assert len(reg.core.pop_events()) == 4
    assert reg.core.stats()["events_dropped"] == 6


def test_rate_per_source_drops_excess() -> None:
    """Bounded work: more than rate_per_source requests a second from one IP are dropped."""
    reg = make(rate_per_source=3)
    answered = sum(reg.raw(request()) is not None for _ in range(5))
    assert answered == 3 and reg.core.stats()["dropped_rate"] == 2
    assert reg.raw(request(), host="10.0.0.6") is not None
    assert reg.raw(request(), now=NOW + 1000) is not None


# --------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("junk", [b"", b"hello\r\n\r\n", b"\x00\x01\x02",
                                  b"REGISTER sip:x SIP/2.0\r\n\r\n"])
def test_unanswerable_garbage_is_dropped_and_counted(junk: bytes) -> None:
    """Bad input without the headers an answer needs is dropped and counted, never answered."""
    reg = make()
    assert reg.raw(junk) is None
    assert reg.core.stats()["dropped_unparseable"] == 1
    (ev,) = reg.take(REJECTED)
    assert ev[2] == 0


MALFORMED = [
    pytest.param(b"To: <sip:", b"To: <sip:a b", 400, "To", id="to-uri"),
    pytest.param(b"CSeq: 1 REGISTER", b"CSeq: 1 INVITE", 400, "CSeq", id="cseq-method"),
    pytest.param(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 505, "version", id="version"),
    pytest.param(b"Contact: <sip:", b"Contact: <bad", 400, "Contact", id="contact"),
    pytest.param(b"Expires: 3600", b"Expires: soon", 400, "Expires", id="expires"),
    pytest.param(b"Max-Forwards: 70", b"Max-Forwards: many", 400, "Max-Forwards",
                 id="max-forwards"),
    pytest.param(b"Content-Length: 0", b"Content-Length: 99", 400, "Content-Length",
                 id="content-length-beyond-datagram"),
]


@pytest.mark.parametrize("old,new,status,word", MALFORMED)
def test_malformed_request_gets_4xx_saying_what(old: bytes, new: bytes, status: int,
                                                word: str) -> None:
    """RFC 3261 §8.2 / §18.3: a parseable-enough bad request gets 400 (505) saying what is wrong."""
    reg = fixed()
    data = request(auth=creds()).replace(old, new, 1)
    ans = reg.send(data)
    assert ans is not None and ans.status == status and word.lower() in ans.reason.lower()


def test_unknown_method_is_501() -> None:
    """RFC 3261 §8.2.1: an unknown method gets 501 with Allow."""
    ans = make().send(request("FOO", expires=None))
    assert ans is not None and ans.status == 501 and "REGISTER" in ans.headers["Allow"]


def test_known_method_not_served_is_405() -> None:
    """RFC 3261 §8.2.1: a known method the registrar does not serve gets 405 with Allow."""
    ans = make().send(request("INVITE", expires=None))
    assert ans is not None and ans.status == 405 and "REGISTER" in ans.headers["Allow"]


def test_message_of_other_media_type_is_415() -> None:
    """RFC 3261 §8.2.3: a MESSAGE body that is not MANSCDP gets 415 with Accept."""
    ans = make().send(request("MESSAGE", expires=None, body=b"hi", content_type="text/plain"))
    assert ans is not None and ans.status == 415
    assert ans.headers["Accept"].lower() == "application/manscdp+xml"


def test_non_sip_request_uri_is_416() -> None:
    """RFC 3261 §8.2.2.1: a Request-URI scheme other than sip gets 416."""
    ans = make().send(request(uri="tel:+861012345678"))
    assert ans is not None and ans.status == 416


def test_unsupported_require_is_420() -> None:
    """RFC 3261 §8.2.2.3: Require naming an unknown extension gets 420 with Unsupported."""
    ans = make().send(request(extra=[("Require", "gb-magic")]))
    assert ans is not None and ans.status == 420 and ans.headers["Unsupported"] == "gb-magic"


def test_options_is_answered_with_allow() -> None:
    """RFC 3261 §11.2: OPTIONS gets 200 with Allow."""
    ans = make().send(request("OPTIONS", expires=None))
    assert ans is not None and ans.status == 200 and "MESSAGE" in ans.headers["Allow"]


def test_ack_and_stray_responses_get_nothing() -> None:
    """RFC 3261 §17.2.1: ACK and responses are never answered; strays are counted."""
    reg = make()
    assert reg.raw(request("ACK", expires=None)) is None
    resp = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKx\r\n"
            b"From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: x\r\n"
            b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    assert reg.raw(resp) is None
    assert reg.core.stats()["stray_responses"] == 1


def test_every_answer_to_a_mangled_request_is_valid_sip() -> None:
    """Bad input never makes the registrar send a malformed message (byte flips at each offset).
    A 400 to a request that lacked From, To, Call-ID or CSeq (RFC 4475 §3.3.1) lacks them too,
    and nothing else."""
    reg = fixed(max_transactions=64)
    data = request(auth=creds())
    broken = []
    for i in range(len(data)):
        mangled = bytearray(data)
        mangled[i] ^= 0x5A
        answer = reg.raw(bytes(mangled), now=NOW + i)
        if answer is not None:
            try:
                gbsip.parse(answer[0])
            except gbsip.SIPParseError as exc:
                try:
                    msg = gbsip.parse(answer[0], lenient=gbsip.Lenient.MISSING_HEADERS)
                    assert isinstance(msg, gbsip.Response) and msg.status == 400
                except (gbsip.SIPParseError, AssertionError):
                    broken.append((i, exc.reason))
    assert broken == []


def test_binding_count_and_views() -> None:
    """bindings()/binding()/contacts() describe what was accepted."""
    reg = fixed()
    reg.send(request(auth=creds(), extra=[("User-Agent", "IPC/1.0")]))
    (view,) = reg.core.bindings()
    assert view == reg.core.binding(DEV)
    (device, contact, ncontacts, ua, call_id, cseq, src, expires_at, registered_at,
     last_ka, online) = view
    assert (device, contact, ncontacts, ua, call_id, cseq) == (
        DEV, f"sip:{DEV}@10.0.0.5:5061", 1, "IPC/1.0", "call-1", 1)
    assert src[:3] == ("10.0.0.5", 5061, 0)
    assert (expires_at, registered_at, last_ka, online) == (NOW + 3600_000, NOW, 0, True)
    assert reg.core.binding("34020000001320009999") is None
