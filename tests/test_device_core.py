"""The device (UAC) state machine through the binding, with explicit time.

No sockets and no sleeps: ``now`` is an integer of milliseconds handed to
``gbsip._core.Fleet``; replies are built with the gbsip parser.
"""
from __future__ import annotations

import re

import pytest

import gbsip
from gbsip._core import Fleet

from device_helpers import reply

DEVICE = "34020000001320000001"
SERVER = "34020000002000000001"


def fleet(**kw: object) -> Fleet:
    opts: dict[str, object] = dict(server_id=SERVER, server_host="127.0.0.1",
                                   password="12345678", jitter=0.0, seed=7)
    opts.update(kw)
    return Fleet(**opts)


def one(f: Fleet) -> bytes:
    """The one message queued; fails when there are more or none."""
    out = f.pop_datagrams()
    assert len(out) == 1, out
    return out[0][2]


def kinds(f: Fleet) -> list[str]:
    return [e[1] for e in f.pop_events()]


def header(msg: bytes, name: str) -> str:
    m = gbsip.parse(msg)
    value = m.headers.get(name)
    assert value is not None, name
    return str(value)


def register(f: Fleet, now: int = 0, qop: bool = False, expires: int = 3600) -> int:
    """Start device 0 and register it through 401 -> 200; returns the time."""
    f.start(0, now)
    challenge = 'Digest realm="3402000000",nonce="n1",algorithm=MD5'
    if qop:
        challenge += ',qop="auth"'
    f.feed(reply(one(f), 401, [("WWW-Authenticate", challenge)]), now + 5)
    f.feed(reply(one(f), 200, [("Expires", str(expires))]), now + 10)
    return now + 10


def test_seed_second_register_carries_the_seed_authorization(
        seed_messages: dict[str, bytes]) -> None:
    """shared/README §1 and GB/T 28181-2016 §9.1.2.1: given the seed's 401
    and password 12345678, the answer is the seed's second REGISTER: same
    Call-ID and From tag, CSeq 2, response 7f536c8c..."""
    f = Fleet(request_uri="sip:192.168.10.177:5060", domain="192.168.10.177",
              server_host="192.168.10.177", password="12345678",
              user_agent="eXosip/3.6.0", contact_params=";line=6513f93347c330b")
    f.add(DEVICE)
    f.set_local(0, f.local_host("192.168.10.117"), 5061)
    f.set_dialog(0, 939764460, 2577708869)
    f.start(0, 0)
    first = one(f)
    branch = re.search(rb"branch=(z9hG4bK\d+)", first).group(1)
    # the seed's 401, addressed to this transaction's branch
    challenge = seed_messages["seed-2-401"].replace(b"z9hG4bK2509000523", branch)
    assert f.feed(challenge, 10) == 0
    second = one(f)
    expected = seed_messages["seed-3-register"]
    # The seed shows the Via as the platform saw it (rport=5061, received=).
    strip_via = re.compile(rb"Via: [^\r]*\r\n")
    assert strip_via.sub(b"", second) == strip_via.sub(b"", expected)
    assert header(second, "Authorization") == (
        'Digest username="34020000001320000001",realm="3402000000",'
        'nonce="324cab6e557268e0",uri="sip:192.168.10.177:5060",'
        'response="7f536c8ce38593239f9130e37a72276e",algorithm=MD5')
    assert header(second, "Call-ID") == "939764460"
    assert gbsip.parse(second).cseq.number == 2


def test_seed_first_register_has_the_seed_headers(seed_messages: dict[str, bytes]) -> None:
    """The first REGISTER has the seed's headers in the seed's order, with
    the GB 35114 capability hint."""
    f = Fleet(request_uri="sip:192.168.10.177:5060", domain="192.168.10.177",
              server_host="192.168.10.177", password="12345678",
              user_agent="eXosip/3.6.0", contact_params=";line=6513f93347c330b")
    f.add(DEVICE)
    f.set_local(0, f.local_host("192.168.10.117"), 5061)
    f.set_dialog(0, 939764460, 2577708869)
    f.start(0, 0)
    first = one(f)
    names = [line.split(b":")[0] for line in first.split(b"\r\n")[1:] if line]
    seed = seed_messages["seed-1-register"]
    assert names == [line.split(b":")[0] for line in seed.split(b"\r\n")[1:] if line]
    assert b'Authorization: Capability, algorithm="H:MD5"\r\n' in first


def test_200_reports_granted_expiry_and_gb_date() -> None:
    """GB/T 28181 §9.10: the 200's Date is reported (ms since 1970 of its
    own fields, local time), with the granted lifetime."""
    f = fleet()
    f.add(DEVICE)
    f.start(0, 0)
    f.feed(reply(one(f), 200, [("Expires", "1800"), ("Date", "2013-06-26T16:08:37.164")]), 20)
    (ev,) = f.pop_events()
    assert ev[1] == "registered" and ev[4] == 1800 and ev[5] == 20
    assert ev[7] == 1372262917164
    assert f.expires_at(0) == 20 + 1800_000
    assert f.state(0) == "registered"


@pytest.mark.parametrize("granting", [
    [("Expires", "0")],
    [("Contact", f"<sip:{DEVICE}@127.0.0.1:5060>;expires=0")],
], ids=["Expires-header", "contact-param"])
def test_200_granting_no_lifetime_is_a_failure_not_a_registration(
        granting: list[tuple[str, str]]) -> None:
    """RFC 3261 §10.2.4: a 200 lists the bindings that remain; ours with
    expires 0 is not among them, so the device is not registered: the
    attempt fails (`not_granted`) and is retried after the interval, not
    refreshed at once."""
    f = fleet(retry_interval=5000)
    f.add(DEVICE)
    f.start(0, 0)
    f.feed(reply(one(f), 200, granting), 10)
    ev = f.pop_events()[-1]
    assert ev[1:4] == ("failed", 200, "not_granted")
    assert f.state(0) == "failed"
    assert f.next_deadline() == 5010


def test_200_without_expires_grants_what_was_asked() -> None:
    """RFC 3261 §10.2.4: a registrar may leave the lifetime out; the device
    then holds what it asked for (3600 s by default)."""
    f = fleet()
    f.add(DEVICE)
    f.start(0, 0)
    f.feed(reply(one(f), 200), 10)
    (ev,) = f.pop_events()
    assert ev[1] == "registered" and ev[4] == 3600
    assert f.state(0) == "registered"


def test_udp_retransmissions_double_to_t2_and_give_up_at_timer_f() -> None:
    """RFC 3261 §17.1.2.2: Timer E = T1, 2T1, 4T1... capped at T2; Timer F =
    64*T1 ends the transaction and the attempt fails (timeout)."""
    f = fleet(t1=50, t2=400)
    f.add(DEVICE)
    f.start(0, 0)
    first = one(f)
    times = []
    while (t := f.next_deadline()) is not None and t < 64 * 50:
        f.handle_timer(t)
        assert one(f) == first
        times.append(t)
    assert times == [50, 150, 350, 750, 1150, 1550, 1950, 2350, 2750, 3150]
    assert f.next_deadline() == 3200
    f.handle_timer(3200)
    ev = f.pop_events()[-1]
    assert ev[1:4] == ("failed", 0, "timeout")
    assert ev[7] == 3200 + 60_000
    assert f.stats()["retransmissions"] == 10


def test_tcp_sends_once() -> None:
    """RFC 3261 §17.1.2.2: no retransmission over a reliable transport."""
    f = fleet(transport="tcp", t1=50)
    f.add(DEVICE)
    f.start(0, 0)
    assert b"SIP/2.0/TCP" in one(f)
    assert f.next_deadline() == 3200
    f.handle_timer(3200)
    assert f.pop_datagrams() == []
    assert f.state(0) == "failed"


def test_423_retries_with_min_expires() -> None:
    """RFC 3261 §10.2.8: 423 Interval Too Brief -> again with Min-Expires."""
    f = fleet(expires=30)
    f.add(DEVICE)
    f.start(0, 0)
    f.feed(reply(one(f), 423, [("Min-Expires", "3600")]), 5)
    again = gbsip.parse(one(f))
    assert again.expires == 3600
    assert again.cseq.number == 2


def test_403_fails_with_reason_and_retries_after_interval() -> None:
    """GB/T 28181 §9.1: a refusal is reported; the retry comes after the
    configured interval (jitter 0 here) and starts over."""
    f = fleet(retry_interval=5000)
    f.add(DEVICE)
    f.start(0, 0)
    f.feed(reply(one(f), 403), 10)
    ev = f.pop_events()[-1]
    assert ev[1:4] == ("failed", 403, "rejected") and ev[9] == "Forbidden"
    assert f.state(0) == "failed"
    assert f.next_deadline() == 5010
    f.handle_timer(5010)
    again = one(f)
    assert gbsip.parse(again).cseq.number == 2
    assert b"Capability" in again


def test_stale_nonce_is_answered_without_failure() -> None:
    """RFC 7616 §3.3: stale=true means right password, old nonce: answer
    the new nonce, count no failure."""
    f = fleet()
    f.add(DEVICE)
    t = register(f, qop=True, expires=100)
    f.pop_events()
    f.handle_timer(t + 50_000)  # refresh at half the lifetime
    refresh = one(f)
    assert 'nonce="n1"' in header(refresh, "Authorization")
    assert "nc=00000002" in header(refresh, "Authorization")
    f.feed(reply(refresh, 401, [("WWW-Authenticate",
                                 'Digest realm="3402000000",nonce="n2",qop="auth",stale=true')]),
           t + 50_010)
    answer = header(one(f), "Authorization")
    assert 'nonce="n2"' in answer and "nc=00000001" in answer and "cnonce=" in answer
    assert kinds(f) == ["challenged"]
    assert f.stats()["failures"] == 0


def test_wrong_password_fails_as_auth_rejected() -> None:
    """A second 401 for the nonce just answered: the credentials are wrong."""
    f = fleet()
    f.add(DEVICE)
    f.set_password(0, "not-it")
    f.start(0, 0)
    ch = [("WWW-Authenticate", 'Digest realm="3402000000",nonce="abc"')]
    f.feed(reply(one(f), 401, ch), 5)
    f.feed(reply(one(f), 401, ch), 10)
    ev = f.pop_events()[-1]
    assert ev[1:4] == ("failed", 401, "auth_rejected")


def test_302_redirect_then_refusal_returns_to_redirect_server() -> None:
    """GB/T 28181-2022 §9.1.2.3: follow the 302's Contact; a 403 there sends
    the device back to the redirect server at once."""
    f = fleet()
    f.add(DEVICE)
    f.start(0, 0)
    f.feed(reply(one(f), 302, [("Contact", "<sip:34020000002000000002@127.0.0.2:5070>")]), 5)
    (out,) = f.pop_datagrams()
    assert out[1] == 1
    assert out[2].startswith(b"REGISTER sip:34020000002000000002@127.0.0.2:5070 SIP/2.0")
    assert f.destination(1) == ("127.0.0.2", 5070, "sip:34020000002000000002@127.0.0.2:5070")
    f.feed(reply(out[2], 403), 10)
    (back,) = f.pop_datagrams()
    assert back[1] == 0
    assert kinds(f) == ["redirected", "failed"]


def test_three_unanswered_keepalives_register_again() -> None:
    """GB/T 28181 §9.6.1: keepalive MESSAGEs every interval; after three
    without an answer the platform is offline and the device registers."""
    f = fleet(keepalive_interval=1000, t1=50)
    f.add(DEVICE)
    t = register(f)
    f.pop_events()
    f.handle_timer(t + 1000)
    ka = one(f)
    msg = gbsip.parse(ka)
    assert msg.method == "MESSAGE"
    assert msg.uri == f"sip:{SERVER}@3402000000"
    assert msg.content_type is not None and msg.content_type.lower() == "application/manscdp+xml"
    assert msg.body.startswith(b'<?xml version="1.0" encoding="GB2312"?>')
    assert b"<CmdType>Keepalive</CmdType>" in msg.body and b"<SN>1</SN>" in msg.body
    assert f"<DeviceID>{DEVICE}</DeviceID>".encode() in msg.body
    f.feed(reply(ka, 200), t + 1001)
    now = t + 1002
    while f.state(0) == "registered" and now < t + 10_000:
        now = f.next_deadline()
        f.handle_timer(now)
    events = kinds(f)
    assert events.count("keepalive_missed") == 3
    assert "keepalive_timeout" in events
    assert f.state(0) == "registering"
    assert f.pop_datagrams()[-1][2].startswith(b"REGISTER ")


def test_unregister_is_challenged_and_confirmed() -> None:
    """GB/T 28181 §9.1.2.2: unregistration is a REGISTER with Expires: 0,
    challenged like any other."""
    f = fleet()
    f.add(DEVICE)
    t = register(f)
    f.pop_events()
    assert f.stop(0, t + 1)
    bye = one(f)
    assert gbsip.parse(bye).expires == 0
    f.feed(reply(bye, 401, [("WWW-Authenticate", 'Digest realm="3402000000",nonce="z"')]), t + 2)
    again = one(f)
    assert gbsip.parse(again).expires == 0 and 'nonce="z"' in header(again, "Authorization")
    f.feed(reply(again, 200), t + 3)
    assert kinds(f) == ["challenged", "unregistered"]
    assert f.state(0) == "unregistered"
    assert f.next_deadline() is None


def test_stray_and_duplicate_responses_are_counted_not_acted_on() -> None:
    """RFC 3261 §17.1.3: a response that matches no transaction is dropped;
    a retransmitted final response is absorbed."""
    f = fleet()
    f.add(DEVICE)
    f.start(0, 0)
    req = one(f)
    ok = reply(req, 200)
    assert f.feed(ok.replace(b"z9hG4bK", b"z9hG4bK9"), 1) == -1
    assert f.feed(ok, 2) == 0
    assert f.feed(ok, 3) == 0
    s = f.stats()
    assert (s["strays"], s["duplicates"], s["registrations"]) == (1, 1, 1)


def test_drop_responses_fault_loses_the_next_response() -> None:
    """Fault injection: the dropped 200 is as if lost; the retransmission's
    answer registers."""
    f = fleet(t1=50)
    f.add(DEVICE)
    f.drop_responses(0, 1)
    f.start(0, 0)
    req = one(f)
    f.feed(reply(req, 200), 5)
    assert f.state(0) == "registering"
    f.handle_timer(50)
    f.feed(reply(one(f), 200), 55)
    assert f.state(0) == "registered"
    assert f.stats()["dropped"] == 1


def test_fleet_state_stays_under_one_kib_per_device() -> None:
    """Issue 6's budget: per-device state in C, at most 1 KiB each."""
    f = fleet(capacity=10_000, keepalive_interval=0)
    for i in range(10_000):
        f.add(f"340200000013{i:08d}")
    for i in range(10_000):
        f.start(i, i // 10)
    sent = f.pop_datagrams()
    assert len(sent) == 10_000
    for index, _dest, data in sent:
        assert f.feed(reply(data, 200), 2000) == index
    assert f.stats()["by_state"]["registered"] == 10_000
    mem = f.memory()
    assert mem["bytes_per_device"] <= 1024
    assert mem["state_bytes"] / 10_000 <= 1024


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError):
        Fleet(server_id=SERVER, t1=0)
    with pytest.raises(ValueError):
        Fleet(server_id=SERVER, transport="sctp")
    with pytest.raises(ValueError):
        Fleet(server_id=SERVER, user_agent="a\r\nInjected: yes")
