"""The shared driver (gbsip._drive): one timer rule, one event stream, one
TCP reader, used by every role (issue 11)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

import gbsip
from gbsip._drive import Clock, Driver, EventStream, SIPStream
from gbsip.errors import LocalProtocolError
from gbsip.events import DeviceRegistered, Keepalive, Offline

# --------------------------------------------------------------------------
# Driver: the timer rule, on a loop whose clock the test sets


class _Handle:
    def __init__(self, loop: FakeLoop, when: float, fn: Any) -> None:
        self.loop, self.when, self.fn, self.cancelled = loop, when, fn, False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """Just what Driver and Clock use: time() and call_at()."""

    def __init__(self) -> None:
        self.now = 100.0
        self.handles: list[_Handle] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, fn: Any) -> _Handle:
        h = _Handle(self, when, fn)
        self.handles.append(h)
        return h

    def armed(self) -> list[float]:
        return [h.when for h in self.handles if not h.cancelled]

    def fire(self, h: _Handle, at: float) -> None:
        self.now = at
        h.cancelled = True
        h.fn()


@dataclass
class FakeCore:
    deadline: int | None = None
    fired: list[int] = field(default_factory=list)
    flushes: int = 0

    def next_deadline(self) -> int | None:
        return self.deadline

    def handle_timer(self, now: int) -> None:
        self.fired.append(now)
        if self.deadline is not None and now >= self.deadline:
            self.deadline = None


def driver_for(core: FakeCore, loop: FakeLoop) -> Driver:
    def flush() -> None:
        core.flushes += 1

    return Driver(Clock(loop), deadline=core.next_deadline,  # type: ignore[arg-type]
                  fire=core.handle_timer, flush=flush)


def test_timer_is_armed_at_the_core_deadline_after_input() -> None:
    """settle() flushes the core, then arms one timer at its deadline (ms -> s)."""
    loop, core = FakeLoop(), FakeCore(deadline=100_500)
    d = driver_for(core, loop)
    d.settle()
    assert core.flushes == 1
    assert loop.armed() == [100.5]


def test_timer_gives_the_core_the_armed_deadline_when_the_loop_wakes_early() -> None:
    """The loop may wake a hair before the deadline (or floor loop.time() to
    the millisecond before): the core is told max(now, deadline), so the
    deadline counts as passed and the timer does not fire again at once."""
    loop, core = FakeLoop(), FakeCore(deadline=100_500)
    d = driver_for(core, loop)
    d.settle()
    loop.fire(loop.handles[0], 100.4995)  # 0.5 ms early
    assert core.fired == [100_500]
    assert core.deadline is None and loop.armed() == []


def test_an_armed_timer_due_no_later_than_the_new_deadline_is_kept() -> None:
    """A busy core whose deadline moves later does not create a timer per
    input: the earlier timer fires, finds nothing due, and re-arms."""
    loop, core = FakeLoop(), FakeCore(deadline=100_500)
    d = driver_for(core, loop)
    d.settle()
    core.deadline = 101_000
    d.settle()
    assert loop.armed() == [100.5]
    loop.fire(loop.handles[0], 100.5)
    assert core.fired == [100_500]
    assert loop.armed() == [101.0]


def test_an_earlier_deadline_replaces_the_armed_timer() -> None:
    loop, core = FakeLoop(), FakeCore(deadline=101_000)
    d = driver_for(core, loop)
    d.settle()
    core.deadline = 100_200
    d.settle()
    assert loop.armed() == [100.2]


def test_a_closed_driver_arms_nothing_and_fires_nothing() -> None:
    loop, core = FakeLoop(), FakeCore(deadline=100_500)
    d = driver_for(core, loop)
    d.settle()
    handle = loop.handles[0]
    d.close()
    assert loop.armed() == []
    handle.fn()  # a callback already queued when the driver closed
    assert core.fired == []


def test_clock_maps_core_milliseconds_to_unix_time_keeping_distances() -> None:
    """Clock.unix(): anchored once, so two instants keep their monotonic distance."""
    loop = FakeLoop()
    clock = Clock(loop, wall=lambda: 1_700_000_000.0)  # type: ignore[arg-type]
    assert clock.now_ms() == 100_000
    assert clock.unix(100_000) == 1_700_000_000.0
    assert clock.unix(103_250) - clock.unix(100_000) == pytest.approx(3.25)


# --------------------------------------------------------------------------
# EventStream


def _registered(device_id: str) -> DeviceRegistered:
    return DeviceRegistered("sip:x@127.0.0.1", 3600, None, device_id=device_id)


def test_wait_for_takes_events_up_to_the_first_match() -> None:
    """wait_for() returns the first matching event not yet taken; the ones
    before it are taken too, the ones after stay for events()."""
    async def main() -> list[Any]:
        stream: EventStream[Any] = EventStream()
        first, second = _registered("1"), Offline(device_id="1")
        third = _registered("2")
        for ev in (first, second, third):
            stream.publish(ev)
        got = await stream.wait_for(Offline, timeout=1)
        assert got is second
        stream.close()
        return [ev async for ev in stream]

    assert asyncio.run(main()) == [_registered("2")]


def test_wait_for_filters_by_device_and_accepts_a_tuple_of_kinds() -> None:
    async def main() -> None:
        stream: EventStream[Any] = EventStream()
        stream.publish(_registered("1"))
        stream.publish(Keepalive(7, "OK", device_id="2"))
        ev = await stream.wait_for((DeviceRegistered, Keepalive), "2", timeout=1)
        assert isinstance(ev, Keepalive) and ev.sn == 7

    asyncio.run(main())


def test_wait_for_fails_clearly_when_the_role_closes() -> None:
    async def main() -> None:
        stream: EventStream[Any] = EventStream()
        task = asyncio.ensure_future(stream.wait_for(Offline, timeout=5))
        await asyncio.sleep(0)
        stream.close()
        with pytest.raises(LocalProtocolError, match="Offline"):
            await task

    asyncio.run(main())


def test_wait_for_timeout_says_what_did_not_come() -> None:
    """Issue 15: a wait that times out names the event, the device and the
    time it waited (it used to be a bare TimeoutError)."""
    async def main() -> None:
        stream: EventStream[Any] = EventStream()
        with pytest.raises(asyncio.TimeoutError,
                           match=r"no Offline event of device 7 within 0\.05 s"):
            await stream.wait_for(Offline, "7", timeout=0.05)

    asyncio.run(main())


def test_watch_sees_only_new_events_and_takes_nothing() -> None:
    """The roles' own waits (Device.start, send_keepalive) must not eat the
    events a user iterates."""
    async def main() -> None:
        stream: EventStream[Any] = EventStream()
        stream.publish(Offline(device_id="old"))
        fut = stream.watch(lambda e: isinstance(e, Offline))
        assert not fut.done()
        stream.publish(Offline(device_id="new"))
        assert (await fut).device_id == "new"
        assert len(stream) == 2

    asyncio.run(main())


def test_full_queue_drops_the_oldest_and_counts_it() -> None:
    stream: EventStream[Any] = EventStream(maxlen=2)
    for n in range(5):
        stream.publish(Offline(device_id=str(n)))
    assert stream.dropped == 3
    assert [e.device_id for e in stream._queue] == ["3", "4"]


def test_unproven_minor_events_go_first_and_never_push_out_proven_ones() -> None:
    """Issue 14: events of senders that proved nothing make room first; with
    the queue full of proven and major events, an unproven one drops itself."""
    def minor(ev: Any) -> tuple[int, bool] | None:
        if isinstance(ev, Keepalive):
            return 200, ev.device_id.startswith("junk")
        return None

    stream: EventStream[Any] = EventStream(maxlen=4, minor=minor)
    stream.publish(Offline(device_id="cam"))
    stream.publish(Keepalive(device_id="junk-0", sn=0, status="OK"))
    for n in range(3):
        stream.publish(Keepalive(device_id=f"cam-{n}", sn=n, status="OK"))
    for n in range(1, 20):
        stream.publish(Keepalive(device_id=f"junk-{n}", sn=n, status="OK"))
    assert stream.dropped == 20
    kept = [stream._take().device_id for _ in range(len(stream))]
    assert kept == ["cam", "cam-0", "cam-1", "cam-2"]


def test_a_failing_listener_is_reported_and_the_others_still_run() -> None:
    """A listener's bug goes to the loop's exception handler; the event is
    still queued and the next listener still called."""
    async def main() -> None:
        errors: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _l, ctx: errors.append(ctx))
        stream: EventStream[Any] = EventStream()
        seen: list[Any] = []

        def broken(ev: Any) -> None:
            raise RuntimeError("listener bug")

        stream.add_listener(broken)
        stream.add_listener(seen.append)
        stream.publish(Offline(device_id="1"))
        assert len(seen) == 1 and len(stream) == 1
        assert isinstance(errors[0]["exception"], RuntimeError)

    asyncio.run(main())


# --------------------------------------------------------------------------
# StreamParser and SIPStream: one TCP reader, one garbage policy

REGISTER = (
    b"REGISTER sip:34020000002000000001@3402000000 SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 127.0.0.1:5070;rport;branch=z9hG4bK1\r\n"
    b"From: <sip:34020000001320000001@3402000000>;tag=1\r\n"
    b"To: <sip:34020000001320000001@3402000000>\r\n"
    b"Call-ID: c1\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_next_frame_gives_whole_messages_and_skips_crlf_keepalives() -> None:
    """RFC 3261 §18.3 framing, RFC 5626 §3.5.1 CRLF keep-alives between messages."""
    p = gbsip.StreamParser()
    p.feed(b"\r\n\r\n" + REGISTER + REGISTER[:40])
    assert p.next_frame() == REGISTER
    assert p.next_frame() is None
    p.feed(REGISTER[40:])
    assert p.next_frame() == REGISTER
    assert p.keepalives == 4 and p.buffered == 0


def test_refusal_answers_a_request_whose_content_length_is_garbage() -> None:
    """The policy: the stream cannot go on, but its head names who to answer."""
    p = gbsip.StreamParser()
    p.feed(REGISTER.replace(b"Content-Length: 0", b"Content-Length: many"))
    with pytest.raises(gbsip.SIPParseError) as info:
        p.next_frame()
    answer = p.refusal(info.value)
    assert answer is not None
    resp = gbsip.parse(answer)
    assert isinstance(resp, gbsip.Response)
    assert resp.status == info.value.status == 400
    assert resp.call_id == "c1" and resp.via.branch == "z9hG4bK1"


@pytest.mark.parametrize("garbage", [
    b"SIP/2.0 200 OK\r\nContent-Length: x\r\n\r\n",   # a response: never answered
    b"\x00\x01\x02 not sip at all\r\n\r\n",
], ids=["response", "binary"])
def test_refusal_is_none_when_there_is_no_request_to_answer(garbage: bytes) -> None:
    p = gbsip.StreamParser()
    p.feed(garbage)
    with pytest.raises(gbsip.SIPParseError) as info:
        p.next_frame()
    assert p.refusal(info.value) is None


def test_sip_stream_delivers_frames_and_closes_on_garbage() -> None:
    """SIPStream over a real loopback connection: whole messages arrive in
    one callback per read; garbage is answered (when possible) and closes."""
    async def main() -> None:
        got: list[list[bytes]] = []
        refused: list[gbsip.SIPParseError] = []
        closed = asyncio.Event()
        server = await asyncio.get_running_loop().create_server(
            lambda: SIPStream(lambda s, frames: got.append(frames),
                              on_refused=lambda s, e: refused.append(e),
                              on_closed=lambda s, e: closed.set()),
            "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(REGISTER + REGISTER)
        await writer.drain()
        for _ in range(100):
            if sum(map(len, got)) == 2:
                break
            await asyncio.sleep(0.01)
        assert sum(map(len, got)) == 2
        writer.write(REGISTER.replace(b"Content-Length: 0", b"Content-Length: -1"))
        answer = await asyncio.wait_for(reader.read(65536), 5)
        assert answer.startswith(b"SIP/2.0 400 ")
        assert await asyncio.wait_for(reader.read(), 5) == b""
        await asyncio.wait_for(closed.wait(), 5)
        assert refused and refused[0].status == 400
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(main())
