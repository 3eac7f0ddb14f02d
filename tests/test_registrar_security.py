"""What the registrar promises an operator against hostile peers (issues 12 and 14).

Each test is one reproducer from the audit, through the core sans IO
(``RegistrarCore``) or through a running ``Registrar`` on loopback UDP,
with the clause or audit finding it answers.  docs/registrar.md, section
Security, is the prose of the same promises.
"""
from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

import gbsip
from corpus import cases
from gbsip.events import DeviceRegistered, LockedOut, MessageReceived, RegistrarEvent
from gbsip.registrar import KeepalivePolicy, Lockout, Refresh, Registrar
from test_registrar_asyncio import (  # noqa: F401  (run is a fixture)
    PASSWORD,
    SERVER_ID,
    Runner,
    UdpUac,
    _Collect,
    dev,
    keepalive_request,
    register_request,
    run,
)
from test_registrar_asyncio import authorization as answer_challenge
from test_registrar_core import (
    AUTH_FAILED,
    DEV,
    DEV2,
    KEEPALIVE,
    NOW,
    ONLINE,
    REFRESHED,
    Core,
    authorization,
    challenge_params,
    digest_response,
    keepalive,
    make,
    request,
)

LOCKED_OUT = 13  # registrar.h GB_REG_EV_LOCKED_OUT
CAM = "10.0.0.5"
EVIL = "10.0.0.66"
EVIL_CONTACT = f"<sip:{DEV}@6.6.6.6:5060>"


def sniffed_registration(reg: Core, qop: str | None = None) -> str:
    """The device registers from CAM:5061; returns its Authorization, as sniffed."""
    first = reg.send(request(cseq=1))
    assert first is not None and first.status == 401
    nonce = challenge_params(first)["nonce"]
    auth = authorization(DEV, PASSWORD, nonce, qop=qop)
    ok = reg.send(request(cseq=2, auth=auth))
    assert ok is not None and ok.status == 200
    return auth


def binding_is_the_devices(reg: Core) -> None:
    view = reg.core.binding(DEV)
    assert view is not None
    assert view[1] == f"sip:{DEV}@10.0.0.5:5061" and view[2] == 1
    assert view[6][:2] == (CAM, 5061)


# --------------------------------------------------------------------------
# Replay and hijack of a registration (issue 14)


def test_sniffed_authorization_replayed_from_another_address_is_refused() -> None:
    """Issue 14: a sniffed Authorization, replayed within the nonce's lifetime from another
    address with a new Call-ID and Contact, used to get 200 and move the binding.  The nonce
    is bound to the address it was issued to: 401 with a fresh challenge (not stale=true,
    which would call the answer right), and the binding stays."""
    reg = make()
    auth = sniffed_registration(reg)
    reg.take()
    ans = reg.send(request(call_id="evil", cseq=9, contact=EVIL_CONTACT, auth=auth),
                   now=NOW + 2000, host=EVIL, port=5060)
    assert ans is not None and ans.status == 401
    assert "stale" not in challenge_params(ans)
    binding_is_the_devices(reg)
    (failed,) = reg.take(AUTH_FAILED)
    assert failed[2] == 401 and "address" in failed[8]


def test_replay_from_the_devices_own_address_is_stale() -> None:
    """RFC 2617 §3.2.2: without qop there is no nc; a nonce answers once.  A spoofed replay
    from the device's own address gets 401 stale=true (a device re-sending its last
    credentials on a refresh just answers the new nonce) and moves nothing."""
    reg = make()
    auth = sniffed_registration(reg)
    ans = reg.send(request(call_id="evil", cseq=9, contact=EVIL_CONTACT, auth=auth),
                   now=NOW + 2000)
    assert ans is not None and ans.status == 401
    assert challenge_params(ans)["stale"] == "true"
    binding_is_the_devices(reg)
    assert reg.core.stats()["nonces_reused"] == 1


def test_qop_downgrade_is_refused() -> None:
    """Issue 14 / RFC 7616 §3.4: with qop="auth" offered, an answer without qop (the form a
    sniffer can replay) is refused: 401, no binding."""
    reg = make(qop_auth=True)
    first = reg.send(request(cseq=1))
    assert first is not None and challenge_params(first)["qop"] == "auth"
    nonce = challenge_params(first)["nonce"]
    ans = reg.send(request(cseq=2, auth=authorization(DEV, PASSWORD, nonce)))
    assert ans is not None and ans.status == 401
    assert reg.core.binding(DEV) is None
    assert "qop" in reg.take(AUTH_FAILED)[0][8]


def test_downgrade_allowed_by_policy_is_still_single_use_and_bound() -> None:
    """require_qop=False accepts the RFC 2069 answer once; its replay, from another address
    or the same one, is refused and moves nothing."""
    reg = make(qop_auth=True, require_qop=False)
    auth = sniffed_registration(reg, qop=None)
    for host, port in ((EVIL, 5060), (CAM, 5061)):
        ans = reg.send(request(call_id="evil", cseq=9, contact=EVIL_CONTACT, auth=auth),
                       host=host, port=port)
        assert ans is not None and ans.status == 401
    binding_is_the_devices(reg)


# --------------------------------------------------------------------------
# Keepalive hijack and the trusted refresh (issues 14 and 12)


def test_foreign_keepalive_neither_moves_nor_revives_the_binding() -> None:
    """Issue 14: a keepalive for device A from an address other than A's binding used to be
    answered 200, move binding.source and bring an offline A back online.  Now: 403, the
    binding stays where it was and offline."""
    reg = make(keepalive_interval_ms=1000, keepalive_timeout_count=3)
    reg.register()
    reg.timer(NOW + 3000)
    assert reg.core.binding(DEV)[10] is False
    reg.take()
    for host, port in ((EVIL, 5060), (CAM, 40000)):
        ans = reg.send(keepalive(), now=NOW + 4000, host=host, port=port)
        assert ans is not None and ans.status == 403
    view = reg.core.binding(DEV)
    assert view[6][:2] == (CAM, 5061) and view[10] is False and view[9] == 0
    assert reg.take(ONLINE) == [] and reg.take(KEEPALIVE) == []
    assert reg.core.stats()["keepalives_refused"] == 2


def test_foreign_keepalive_challenged_by_policy() -> None:
    """KeepalivePolicy.CHALLENGE: a foreign keepalive gets 401; the device's valid
    credentials on the MESSAGE move the binding to its new address (a NAT rebinding)."""
    reg = make(keepalive_policy=KeepalivePolicy.CHALLENGE.value)
    reg.register()
    ans = reg.send(keepalive(), port=40000)
    assert ans is not None and ans.status == 401
    nonce = challenge_params(ans)["nonce"]
    resp = digest_response(DEV, PASSWORD, nonce, method="MESSAGE")
    auth = (f'Digest username="{DEV}",realm="3402000000",nonce="{nonce}",'
            f'uri="sip:{SERVER_ID}@3402000000",response="{resp}",algorithm=MD5')
    data = keepalive(sn=2, cseq=2).replace(b"Content-Type:", f"Authorization: {auth}\r\n"
                                           "Content-Type:".encode(), 1)
    ans = reg.send(data, port=40000)
    assert ans is not None and ans.status == 200
    assert reg.core.binding(DEV)[6][:2] == (CAM, 40000)


def test_message_body_from_an_unregistered_source_is_not_queued() -> None:
    """Issue 14: unauthenticated non-keepalive MESSAGEs used to become events holding their
    bodies (61 KB each); now only a registered device's own address gets them queued."""
    reg = make()
    body = (b"<Notify><CmdType>Alarm</CmdType><SN>1</SN><DeviceID>1</DeviceID>" + b"x" * 60000
            + b"</Notify>")

    def msg() -> bytes:  # a new transaction each time
        return request("MESSAGE", expires=None, body=body, content_type="Application/MANSCDP+xml")

    ans = reg.send(msg())
    assert ans is not None and ans.status == 403  # not registered
    reg.register()
    ans = reg.send(msg(), host=EVIL)
    assert ans is not None and ans.status == 403  # registered, but not from there
    assert all(e[0] != 10 and len(e[9] or "") < 100 for e in reg.take())
    ans = reg.send(msg())
    assert ans is not None and ans.status == 200
    assert [len(e[9]) for e in reg.take(10)] == [len(body)]


def test_trusted_refresh_allows_exactly_a_renewal_from_the_binding_source() -> None:
    """Issue 12: Refresh.TRUST_CALL_ID lets a registered device's REGISTER through without
    credentials only on its Call-ID with a higher CSeq, from the binding's source (address,
    port, transport, TCP connection), renewing contacts it already has.  A new contact, a
    removal, Contact: * or another source get a fresh challenge."""
    reg = make(refresh_policy=Refresh.TRUST_CALL_ID.value)
    reg.register()
    ans = reg.send(request(cseq=3))
    assert ans is not None and ans.status == 200 and reg.take(REFRESHED)
    for cseq, contact, expires, port in ((4, EVIL_CONTACT, 3600, 5061),
                                         (5, None, 0, 5061),
                                         (6, "*", 0, 5061),
                                         (7, None, 3600, 5062)):
        ans = reg.send(request(cseq=cseq, contact=contact, expires=expires), port=port)
        assert ans is not None and ans.status == 401, (cseq, ans)
    binding_is_the_devices(reg)
    # a refused foreign keepalive cannot make the attacker's address "trusted"
    reg.send(keepalive(), host=EVIL, port=5060)
    ans = reg.send(request(cseq=8), host=EVIL, port=5060)
    assert ans is not None and ans.status == 401


# --------------------------------------------------------------------------
# Password guessing (issue 12)


def wrong(reg: Core, device: str, host: str, port: int = 5060, cseq: int = 1) -> int:
    first = reg.send(request(device=device, call_id=f"g{cseq}", cseq=cseq), host=host, port=port)
    assert first is not None
    if first.status != 401:
        return first.status
    nonce = challenge_params(first)["nonce"]
    ans = reg.send(request(device=device, call_id=f"g{cseq}", cseq=cseq + 1,
                           auth=authorization(device, "guess", nonce)), host=host, port=port)
    assert ans is not None
    return ans.status


def test_lockout_after_failures_per_device_and_address() -> None:
    """Issue 12 (Monibuca-style "3 bad passwords"): N wrong answers for one device from one
    address lock that pair out (403 without checking, counted, a LOCKED_OUT event); the real
    device elsewhere still registers."""
    reg = make(lockout_failures=3, lockout_window_ms=60000, lockout_ms=300000)
    assert [wrong(reg, DEV, EVIL, cseq=10 * i) for i in range(3)] == [403, 403, 403]
    (ev,) = reg.take(LOCKED_OUT)
    assert ev[1] == DEV and ev[3] == 300 and ev[4] == 3 and ev[7][0] == EVIL
    ans = reg.send(request(call_id="x", cseq=100), host=EVIL, port=5060)
    assert ans is not None and ans.status == 403 and "locked out" in ans.reason
    assert reg.register().status == 200  # from CAM
    assert reg.core.stats()["locked_out"] == 1


def test_lockout_never_stops_a_device_answering_right_from_its_binding() -> None:
    """Issue 12: someone else's failures for a device (even from its own host) must not
    lock the working device out: its valid answers from its binding's source go through."""
    reg = make(lockout_failures=3, lockout_source_failures=3)
    reg.register()
    for i in range(5):
        wrong(reg, DEV, CAM, port=6000, cseq=10 * i)
    assert reg.core.stats()["lockouts"] == 2  # (DEV, CAM) and CAM
    for i in range(3):
        assert reg.register(cseq=100 + 10 * i).status == 200
    ans = reg.send(request(call_id="y", cseq=500), port=6000)
    assert ans is not None and ans.status == 403


def test_registrar_lockout_event(run: Runner) -> None:
    """The asyncio Registrar reports a lockout as LockedOut (scope, failures, duration)."""
    async def main() -> None:
        async with Registrar(SERVER_ID, port=0, transports=("udp",), passwords=PASSWORD,
                             lockout=Lockout(failures=2, duration=60)) as reg:
            uac = await UdpUac.open(reg.address)
            for cseq in (1, 11):
                assert (await uac.register(dev(7), password="guess", cseq=cseq)).status == 403
            ev = await reg.wait_for(LockedOut, timeout=5)
            assert ev == LockedOut("device", 2, 60.0, device_id=dev(7), source=uac.local)
            assert (await uac.register(dev(7), cseq=21)).status == 403
            uac.close()
    run(main)


def test_registrar_without_lockout(run: Runner) -> None:
    """lockout=None turns it off."""
    async def main() -> None:
        async with Registrar(SERVER_ID, port=0, transports=("udp",), passwords=PASSWORD,
                             lockout=None) as reg:
            uac = await UdpUac.open(reg.address)
            for cseq in range(1, 80, 10):
                assert (await uac.register(dev(8), password="guess", cseq=cseq)).status == 403
            assert (await uac.register(dev(8), cseq=101)).status == 200
            assert reg.stats()["lockouts"] == 0
            uac.close()
    run(main)


# --------------------------------------------------------------------------
# Over the wire: another source address on loopback (127.0.0.2)


async def uac_at(host: str, server: tuple[str, int]) -> UdpUac:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        _Collect, local_addr=(host, 0), family=socket.AF_INET)
    return UdpUac(transport, proto, server)  # type: ignore[arg-type]


def test_replay_and_foreign_keepalive_over_udp(run: Runner) -> None:
    """Issue 14 end to end through the C pump: the device registers from 127.0.0.1; from
    127.0.0.2 its sniffed Authorization with a new Call-ID and Contact gets 401, and a
    keepalive gets 403; the binding stays the device's."""
    async def main() -> None:
        async with Registrar(SERVER_ID, port=0, transports=("udp",), passwords=PASSWORD) as reg:
            cam = await UdpUac.open(reg.address)
            first = await cam.ask(register_request(dev(1), cam.local))
            auth = answer_challenge(dev(1), PASSWORD, first.headers["WWW-Authenticate"])
            ok = await cam.ask(register_request(dev(1), cam.local, cseq=2, auth=auth))
            assert ok.status == 200
            evil = await uac_at("127.0.0.2", reg.address)
            ans = await evil.ask(register_request(dev(1), evil.local, call_id="evil", cseq=9,
                                                  auth=auth))
            assert ans.status == 401
            assert (await evil.ask(keepalive_request(dev(1), evil.local, 1))).status == 403
            binding = reg.binding(dev(1))
            assert binding is not None and binding.source == cam.local
            assert binding.contact == f"sip:{dev(1)}@{cam.local[0]}:{cam.local[1]}"
            cam.close()
            evil.close()
    run(main)


async def queued(reg: Registrar, kinds: tuple[type[RegistrarEvent], ...]) -> list[RegistrarEvent]:
    """The queued events of those kinds, in order (until none comes for 0.2 s)."""
    events: list[RegistrarEvent] = []
    while True:
        try:
            events.append(await reg.wait_for(kinds, timeout=0.2))
        except asyncio.TimeoutError:
            return events


def test_python_event_queue_bounded_by_bytes(run: Runner) -> None:
    """Issue 14: queued events are bounded by bytes as well as count; message bodies (the
    oldest first) go, the registration event stays, drops are counted."""
    async def main() -> None:
        async with Registrar(SERVER_ID, port=0, transports=("udp",), passwords=PASSWORD,
                             max_event_bytes=100_000) as reg:
            uac = await UdpUac.open(reg.address)
            assert (await uac.register(dev(9))).status == 200
            body = (b"<Notify><CmdType>Alarm</CmdType><SN>1</SN><DeviceID>1</DeviceID>"
                    + b"x" * 20000 + b"</Notify>")
            for sn in range(20):
                alarm = keepalive_request(dev(9), uac.local, sn)
                alarm = alarm[:alarm.index(b"\r\n\r\n")].replace(
                    b"Content-Length: ", b"X-Old-Length: ") + \
                    f"\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
                assert (await uac.ask(alarm)).status == 200
            assert reg.events_dropped >= 15
            events = await queued(reg, (DeviceRegistered, MessageReceived))
            assert isinstance(events[0], DeviceRegistered)
            assert 1 <= sum(isinstance(e, MessageReceived) for e in events) <= 5
            uac.close()
    run(main)


def test_refusals_of_strangers_never_push_out_a_devices_messages(run: Runner) -> None:
    """Issue 14: with the event queue full, refusals of requests whose sender
    proved nothing are dropped before a registered device's MESSAGE bodies."""
    async def main() -> None:
        async with Registrar(SERVER_ID, port=0, transports=("udp",), passwords=PASSWORD,
                             max_events=8) as reg:
            cam = await UdpUac.open(reg.address)
            assert (await cam.register(dev(9))).status == 200
            for sn in range(5):
                alarm = keepalive_request(dev(9), cam.local, sn).replace(
                    b"Keepalive", b"Broadcast")
                assert (await cam.ask(alarm)).status == 200
            stranger = await uac_at("127.0.0.2", reg.address)
            for sn in range(40):
                assert (await stranger.ask(keepalive_request(dev(1), stranger.local, sn))).status \
                    == 403
            events = await queued(reg, (DeviceRegistered, MessageReceived))
            assert isinstance(events[0], DeviceRegistered)
            assert sum(isinstance(e, MessageReceived) for e in events) == 5
            assert reg.events_dropped >= 30
            cam.close()
            stranger.close()
    run(main)


# --------------------------------------------------------------------------
# What peers are told (issue 14)


REQUEST_ERRORS = [c for c in cases("error") if not c.data.startswith(b"SIP/")]
RESPONSE_ERRORS = [c for c in cases("error") if c.data.startswith(b"SIP/")]


@pytest.mark.parametrize("case", REQUEST_ERRORS, ids=lambda c: c.name)
def test_malformed_request_with_a_via_is_answered_with_the_reason(case: Any) -> None:
    """Issue 14 / RFC 4475 §3.1.2, §3.3.1, §3.3.8: every malformed request of the corpus
    whose Via can be read is answered (400, or 505/513 as the error says) with a reason
    phrase naming the problem; seven of them used to be dropped silently.  Bare-LF line
    ends are the exception: an answer would echo them, so without Lenient.LF_ONLY the
    request is dropped, counted by its parse error."""
    reg = make(strict_ids=False, lenient=int(case.parse_kwargs().get("lenient", 0)))
    answer = reg.raw(case.data, host="192.0.2.5", port=5060)
    if case.meta.get("error") == "LINE_ENDING":
        assert answer is None and reg.core.drops()["unparseable:LINE_ENDING"] == 1
        return
    assert answer is not None, case.name
    msg = gbsip.parse(answer[0], lenient=gbsip.Lenient.MISSING_HEADERS)
    assert isinstance(msg, gbsip.Response)
    assert msg.status == int(case.meta["error-status"]), (case.name, msg)
    assert msg.reason and msg.reason != gbsip.status_phrase(msg.status)


# Over a stream these wait for more bytes, or are never answered (bare LFs).
_STREAM_WAITS = {"CONTENT_LENGTH_MISMATCH", "LINE_ENDING"}


def test_malformed_request_over_tcp_is_answered_as_over_udp(run: Runner) -> None:
    """Issue 14 / RFC 4475 §3.1.2, §3.3.1, §3.3.8: a malformed request over TCP gets the
    answer the same bytes get in a datagram (the strict parse's status and reason, read past
    a malformed request line or header), then its connection closes; one that nothing can
    answer is counted in drops() as ``tcp_unanswerable``."""
    async def exchange(server: tuple[str, int], data: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(*server)
        writer.write(data)
        got = await asyncio.wait_for(reader.read(), 5)  # until the registrar closes
        writer.close()
        return got

    async def main() -> None:
        async with Registrar(SERVER_ID, port=0, transports=("tcp",), passwords=PASSWORD,
                             strict_ids=False) as reg:
            udp = make(strict_ids=False)
            for case in REQUEST_ERRORS:
                if case.meta.get("error") in _STREAM_WAITS:
                    continue
                data = case.data.replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP")
                want = udp.raw(data, host="127.0.0.1", port=5060)
                assert want is not None, case.name
                got = await exchange(reg.address, data)
                assert got.split(b"\r\n")[0] == want[0].split(b"\r\n")[0], case.name
            assert await exchange(reg.address, b"hello there\r\n\r\n") == b""
            assert reg.drops()["tcp_unanswerable"] == 1
    run(main)


@pytest.mark.parametrize("case", RESPONSE_ERRORS, ids=lambda c: c.name)
def test_malformed_response_is_dropped_and_counted(case: Any) -> None:
    """RFC 3261 §18.1.2: a response is never answered; the drop is counted by reason."""
    reg = make()
    assert reg.raw(case.data) is None
    assert reg.core.drops()["response"] == 1


def test_drops_are_counted_by_reason() -> None:
    """Issue 14: every request left unanswered is counted by reason (and parse error)."""
    reg = make(rate_per_source=1)
    reg.raw(b"")
    reg.raw(b"hello\r\n\r\n", host="10.0.0.7")
    reg.raw(request(), host="10.0.0.8")
    reg.raw(request(), host="10.0.0.8")
    drops = reg.core.drops()
    assert drops["rate"] == 1 and drops["unparseable"] == 2
    assert drops["unparseable:EMPTY"] == 1
    assert set(drops) >= {"no_via", "response", "pending_full", "in_progress",
                          "reply_too_large", "ack", "truncated"}


def test_registrar_drops(run: Runner) -> None:
    """Registrar.drops() reports the core's counts and the pump's (truncated datagrams)."""
    async def main() -> None:
        async with Registrar(SERVER_ID, port=0, transports=("udp",), passwords=PASSWORD) as reg:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(b"garbage\r\n\r\n", reg.address)
                s.sendto(b"SIP/2.0 200 OK\r\n\r\n", reg.address)
            for _ in range(100):
                if sum(reg.drops().values()) >= 2:
                    break
                await asyncio.sleep(0.02)
            drops = reg.drops()
            assert drops["unparseable"] >= 1 and drops["response"] >= 1
    run(main)


# --------------------------------------------------------------------------
# Bytes kept per binding (issue 14)


def test_oversized_binding_fields_are_capped() -> None:
    """Issue 14: 8 contacts, a 7 KB User-Agent and a 3 KB Call-ID made one binding cost
    ~16 KiB.  A Call-ID over 256 bytes and contacts over max_contact_bytes are refused (403);
    the User-Agent is kept cut to 128 bytes."""
    reg = make(fixed_nonce="n")
    auth = authorization(DEV, PASSWORD, "n")
    ans = reg.send(request(call_id="c" * 3000, auth=auth))
    assert ans is not None and ans.status == 403 and "Call-ID" in ans.reason
    contacts = ", ".join(f"<sip:{DEV}@10.0.0.{k}:5061;x={'p' * 700}>" for k in range(8))
    ans = reg.send(request(cseq=2, contact=contacts, auth=auth))
    assert ans is not None and ans.status == 403 and "Contact" in ans.reason
    ans = reg.send(request(cseq=3, auth=auth, extra=[("User-Agent", "u" * 7000)]))
    assert ans is not None and ans.status == 200
    assert len(reg.core.binding(DEV)[3]) == 128
    assert reg.core.stats()["binding_bytes"] < 2048


def test_other_device_credentials_answer_alike() -> None:
    """Credentials naming another device get the same 403 whether right or wrong: no oracle
    for a guesser rotating the To user."""
    reg = make(fixed_nonce="n")
    right = reg.send(request(auth=authorization(DEV2, PASSWORD, "n")))
    wrong_ = reg.send(request(auth=authorization(DEV2, "guess", "n")))
    assert right is not None and wrong_ is not None
    assert (right.status, right.reason) == (wrong_.status, wrong_.reason) == (
        403, "Forbidden (credentials name another device)")


def test_garbage_flood_costs_a_bounded_number_of_events() -> None:
    """Issue 12: a flood of garbage is counted in full but becomes at most peer_event_rate
    Rejected events a second, so the application's work per datagram stays small."""
    reg = make(peer_event_rate=10)
    for i in range(100):
        reg.raw(b"junk\r\n\r\n", now=NOW + i, host="10.9.9.9")
    assert len(reg.take()) == 10
    stats = reg.core.stats()
    assert stats["events_suppressed"] == 90 and reg.core.drops()["unparseable"] == 100
    for i in range(100):  # the next second: ten more
        reg.raw(b"junk\r\n\r\n", now=NOW + 1000 + i, host="10.9.9.9")
    assert len(reg.take()) == 10
