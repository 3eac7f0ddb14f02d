"""Regression tests for the C crashes of issues 12 and 14, through the binding.

Each test reproduces a report: before its fix the process read or wrote out
of bounds (seen as a segfault, or an ASan report in the sanitizer pass of
``./run-tests``); after it, the core answers, refuses or counts.
"""
from __future__ import annotations

import hashlib
import select
import socket
import sys
from collections.abc import Callable
from typing import Any

import pytest

import gbsip
from gbsip._core import ConcurrentUseError, Fleet, RegistrarCore

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


# --------------------------------------------------------------------------
# Issue 14: answers larger than 16 KB, contacts beyond 2 KB


def long_via_register(branch: str = "lv") -> bytes:
    pad = "v" * 7800
    vias = [f"Via: SIP/2.0/UDP 10.0.0.{5 + k}:5061;branch=z9hG4bK{branch}{k};x={pad}"
            for k in range(3)]
    return wire("REGISTER", [*vias, FROM, TO, CALL_ID, "CSeq: 1 REGISTER", "Max-Forwards: 70",
                             f"Contact: <sip:{DEV}@10.0.0.5:5061>", "Expires: 3600"])


def test_answer_echoing_three_long_vias_is_sent_whole() -> None:
    """RFC 3261 §8.2.6.2: a legal REGISTER with three 7.8 KB Via values gets its 401 with all
    three Vias, though that is over 16 KB; nothing is counted as too large."""
    reg = core()
    data = long_via_register()
    answer = handle(reg, data)
    assert answer is not None and len(answer[0]) > 16384
    msg = gbsip.parse(answer[0])
    assert isinstance(msg, gbsip.Response) and msg.status == 401
    assert [v.branch for v in msg.vias] == ["z9hG4bKlv0", "z9hG4bKlv1", "z9hG4bKlv2"]
    assert reg.stats()["replies_too_large"] == 0


def test_every_long_contact_is_in_the_200() -> None:
    """RFC 3261 §10.3 step 8: the 200 lists every binding, here eight contacts of 700 bytes
    (5.6 KB, past the old 2 KB room) — none left out (max_contact_bytes raised to hold them)."""
    reg = core(fixed_nonce="n", max_contact_bytes=8192)
    contacts = [f"Contact: <sip:{DEV}@10.0.0.{k}:5061;x={'p' * 680}>" for k in range(1, 9)]
    first = handle(reg, wire("REGISTER", [VIA, FROM, TO, CALL_ID, "CSeq: 1 REGISTER",
                                          *contacts, "Expires: 3600"]))
    assert first is not None
    ha1 = hashlib.md5(f"{DEV}:{REALM}:12345678".encode()).hexdigest()
    ha2 = hashlib.md5(f"REGISTER:{RURI}".encode()).hexdigest()
    resp = hashlib.md5(f"{ha1}:n:{ha2}".encode()).hexdigest()
    auth = (f'Authorization: Digest username="{DEV}",realm="{REALM}",nonce="n",uri="{RURI}",'
            f'response="{resp}",algorithm=MD5')
    answer = handle(reg, wire("REGISTER", [VIA + "2", FROM, TO, CALL_ID, "CSeq: 2 REGISTER",
                                           *contacts, "Expires: 3600", auth]))
    assert answer is not None
    msg = gbsip.parse(answer[0])
    assert isinstance(msg, gbsip.Response) and msg.status == 200
    assert len(msg.contacts) == 8
    assert len(reg.contacts(DEV)) == 8


def udp_pair() -> tuple[socket.socket, socket.socket]:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.setblocking(False)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(5)
    return server, client


def test_pump_sends_an_answer_over_16k() -> None:
    """The same request through RegistrarCore.pump_udp over loopback UDP: answered whole."""
    reg = core()
    server, client = udp_pair()
    with server, client:
        client.sendto(long_via_register(), server.getsockname())
        select.select([server], [], [], 5)
        assert reg.pump_udp(server.fileno(), NOW, WALL) == 1
        data, _ = client.recvfrom(65536)
    assert len(data) > 16384 and data.startswith(b"SIP/2.0 401 Unauthorized\r\n")
    assert reg.stats()["replies_too_large"] == 0


# --------------------------------------------------------------------------
# Issue 14: set_socket, then a smaller pool


def test_moved_device_sends_from_the_smaller_pool() -> None:
    """Fleet.set_socket(i, 2) on a pool of three, then udp_attach() with one socket and
    service(): the device sends from the one socket (before the fix: past the pool's end)."""
    target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target.bind(("127.0.0.1", 0))
    target.settimeout(5)
    pool = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    for s in pool:
        s.bind(("127.0.0.1", 0))
    fleet = Fleet(server_id=SERVER_ID, server_host="127.0.0.1",
                  server_port=target.getsockname()[1], seed=1)
    fleet.add_serial("3402000000132", 0, 2, 7)
    with target, pool[0], pool[1], pool[2]:
        fleet.udp_attach([s.fileno() for s in pool])
        fleet.set_socket(1, 2)
        with pytest.raises(IndexError):
            fleet.set_socket(1, 3)
        fleet.udp_attach([pool[0].fileno()])
        assert fleet.start(1, 0)
        fleet.service()
        data, source = target.recvfrom(65536)
        assert data.startswith(b"REGISTER ") and source == pool[0].getsockname()
    assert fleet.sim_stats()["io"]["tx_datagrams"] == 1


# --------------------------------------------------------------------------
# Issue 14: one core, two threads


BUSY = "is in use by another thread: call it from one thread (the event loop's)"


def start_os_thread(fn: Callable[[], object]) -> None:
    """Run fn on a new OS thread, even when gevent has patched threading (importing
    locust does, for the rest of the session): a greenlet would never run beside us."""
    try:
        from gevent import monkey  # type: ignore[import-untyped]
        start = monkey.get_original("_thread", "start_new_thread")
    except ImportError:
        import _thread
        start = _thread.start_new_thread
    start(fn, ())


def race(pump: Callable[[], object], other: Callable[[], object],
         prepare: Callable[[], object] = lambda: None) -> list[BaseException]:
    """Run pump on a thread and other on this one until other is refused.

    The pump's thread spins in Python first, with a short switch interval: by the time
    it enters the C call and releases the GIL, this thread is waiting for the GIL with a
    drop request, so CPython hands the GIL over to it inside the C call (FORCE_SWITCHING)
    however the machine schedules the threads."""
    errors: list[BaseException] = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    try:
        for _ in range(200):  # a loaded machine (a parallel run) may need many
            prepare()
            done: list[bool] = []

            def run(done: list[bool] = done) -> None:
                try:
                    for _ in range(20000):
                        pass
                    pump()
                finally:
                    done.append(True)

            start_os_thread(run)
            while not done:
                try:
                    other()
                except gbsip.GBSIPError as exc:
                    errors.append(exc)
            if errors:
                break
    finally:
        sys.setswitchinterval(interval)
    return errors


def test_registrar_core_refuses_a_second_thread_while_pumping() -> None:
    """RegistrarCore.pump_udp runs the core without the GIL; handle() from another thread
    meanwhile raises ConcurrentUseError (a GBSIPError and RuntimeError) instead of racing it
    (a double free in the nonce HMAC context before the fix)."""
    reg = core()
    server, client = udp_pair()
    with server, client:
        def flood() -> None:
            for i in range(1000):
                client.sendto(wire("REGISTER", [f"{VIA}{i}", FROM, TO, CALL_ID,
                                                "CSeq: 1 REGISTER"]), server.getsockname())
            select.select([server], [], [], 5)

        errors = race(lambda: reg.pump_udp(server.fileno(), NOW, WALL),
                      lambda: handle(reg, wire("REGISTER", [VIA, FROM, TO, CALL_ID,
                                                            "CSeq: 1 REGISTER"])),
                      flood)
    assert errors, "the pump never overlapped the other thread's calls"
    exc = errors[0]
    assert isinstance(exc, ConcurrentUseError) and isinstance(exc, RuntimeError)
    assert str(exc) == f"RegistrarCore {BUSY}"
    assert reg.stats()["received"] > 0  # the core is intact and usable


def test_fleet_refuses_a_second_thread_while_pumping() -> None:
    """Fleet.tick (timers and sendmmsg without the GIL) likewise: another thread's calls
    are refused while it runs."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    fleet = Fleet(server_id=SERVER_ID, server_host="127.0.0.1",
                  server_port=sink.getsockname()[1], seed=2)
    first = fleet.add_serial("3402000000132", 0, 20000, 7)
    now = [0]
    with sink, sock:
        fleet.udp_attach([sock.fileno()])
        fleet.start_range(first, 20000, 0)
        fleet.service()

        def pump() -> None:
            now[0] += 600  # every device's Timer E: 20,000 retransmissions to send
            fleet.tick(now[0])

        errors = race(pump, lambda: fleet.next_deadline())
    assert errors and str(errors[0]) == f"Fleet {BUSY}"
    assert isinstance(errors[0], ConcurrentUseError)
