"""The platform side of ``gbsip.Registrar``: queries (GB/T 28181 §9.5),
device control (§9.3) and subscriptions (§9.11) to a registered device,
against a scripted camera of our own (tests/scripted_camera.py) over real
loopback UDP and TCP, on asyncio and uvloop.

The rules under test: the request goes to the device's binding (over TCP
on the connection it registered on); the result waits for the SIP answer
and for every part of the ``<Response>`` (Catalog parts by SumNum, any
order, duplicates ignored); a lost part, a refusal or silence is a result
saying what came and what is missing, never a hang or an exception; misuse
raises an actionable gbsip error.
"""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gbsip import manscdp
from gbsip.errors import ConfigurationError, LocalProtocolError, NotRegisteredError
from gbsip.events import DeviceRegistered, MessageReceived, Notified, QueryCompleted
from gbsip.queries import QueryResult
from gbsip.registrar import Registrar
from scripted_camera import ScriptedCamera, Script
from test_registrar_asyncio import PASSWORD, SERVER_ID, Runner, dev, run  # noqa: F401

TRANSPORTS = ["udp", "tcp"]


def registrar(**kw: Any) -> Registrar:
    kw.setdefault("passwords", PASSWORD)
    return Registrar(SERVER_ID, host="127.0.0.1", port=0, **kw)


async def camera(reg: Registrar, transport: str, script: Script | None = None,
                 n: int = 1) -> ScriptedCamera:
    cam = await ScriptedCamera(dev(n), reg.addresses[transport], transport, script).open()
    await cam.register()
    await reg.wait_for(DeviceRegistered, cam.device_id, timeout=5)
    return cam


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_catalog_in_parts_out_of_order(run: Runner, transport: str) -> None:
    """§9.5.1 + Annex M: a Catalog split over SumNum parts arriving in any
    order is one complete result, items deduplicated, 200 first."""
    async def main() -> None:
        async with registrar() as reg:
            cam = await camera(reg, transport, Script(channels=5, part_size=2, order=[2, 0, 1]))
            result = await reg.query(cam.device_id, "catalog", timeout=5)
            assert result.complete and result.ok
            assert result.status == 200
            assert result.sum_num == 5 and result.parts_received == 3
            assert result.missing == 0 and result.duplicates == 0
            items = [i for i in result.items if isinstance(i, manscdp.CatalogItem)]
            assert sorted(str(i.device_id) for i in items) == [
                f"{cam.device_id[:14]}{k:06d}" for k in range(1, 6)]
            assert items[0].name == "通道5"  # arrival order kept
            assert not result.response_before_answer and not result.timed_out
            # the request: a MESSAGE to the binding with the query body
            (req,) = cam.requests
            assert req.method == "MESSAGE"
            assert req.headers["Content-Type"] == "Application/MANSCDP+xml"
            assert req.via is not None and req.via.transport == transport.upper()
            q = manscdp.parse(req.body)
            assert (q.root, q.cmd_type, q.sn, q.device_id) == (
                manscdp.Root.QUERY, "Catalog", result.sn, cam.device_id)
            assert reg.stats()["requests_answered"] == 1
            await cam.close()
    run(main)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_lost_part_is_a_partial_result(run: Runner, transport: str) -> None:
    """A part that never comes: after the timeout the result says how many
    items SumNum promised and how many are missing."""
    async def main() -> None:
        async with registrar() as reg:
            cam = await camera(reg, transport, Script(channels=5, part_size=2, lose={1}))
            result = await reg.query(cam.device_id, "Catalog", timeout=0.5)
            assert not result.complete and result.timed_out
            assert result.status == 200
            assert (result.sum_num, result.parts_received, result.missing) == (5, 2, 2)
            assert len(result.items) == 3
            await cam.close()
    run(main)


def test_non_numeric_sum_num_is_a_malformed_answer(run: Runner) -> None:
    """§9.5.1 + Annex M: a part whose SumNum is not a number cannot say
    what is missing: the result fails at once (not complete, not a
    timeout) with an error naming the part and its SumNum, instead of
    counting the SumNum as absent."""
    async def main() -> None:
        async with registrar() as reg:
            cam = await camera(reg, "udp", Script(channels=4, part_size=2, sum_num_text="4x"))
            result = await reg.query(cam.device_id, "Catalog", timeout=5)
            assert not result.complete and not result.timed_out
            assert result.status == 200 and result.sum_num is None
            assert result.error is not None
            assert "SumNum '4x'" in result.error and "part 1" in result.error
            assert result.elapsed < 2
            await cam.close()
    run(main)


def test_a_refused_part_ends_the_query_with_the_reason(run: Runner) -> None:
    """GB/T 28181 Annex A: a part of the answer whose body is no MANSCDP
    document is refused by the registrar (400 with the reader's reason);
    the query it answered ends at once, its error saying so, instead of
    waiting out the timeout for a part that will not come."""
    async def main() -> None:
        async with registrar() as reg:
            cam = await camera(reg, "udp", Script(channels=4, part_size=2, broken={1}))
            result = await reg.query(cam.device_id, "Catalog", timeout=5)
            assert not result.complete and not result.timed_out
            assert result.error is not None and "refused 400" in result.error
            assert result.elapsed < 2
            await cam.close()
    run(main)


def test_query_over_a_closed_tcp_connection_fails_at_once(run: Runner) -> None:
    """A device registered over TCP is reached on that connection only
    (the 2022 edition's persistent connection): once it has closed, a
    query is not sent and
    its result says so at once (error names the closed connection), rather
    than waiting out the timeout with no error."""
    async def main() -> None:
        async with registrar() as reg:
            cam = await camera(reg, "tcp")
            await cam.close()
            await asyncio.sleep(0.3)  # the registrar reads the close
            assert cam.device_id in reg.devices  # the binding outlives the connection
            result = await reg.query(cam.device_id, "DeviceInfo", timeout=5)
            assert not result.complete and result.status is None
            assert not result.timed_out
            assert result.error is not None and "TCP connection" in result.error
            assert "closed" in result.error
            assert result.elapsed < 1
            assert reg.stats()["requests_in_flight"] == 0
    run(main)


def test_duplicate_part_is_ignored(run: Runner) -> None:
    """A part sent twice (a new transaction each time) counts once."""
    async def main() -> None:
        async with registrar() as reg:
            cam = await camera(reg, "udp", Script(channels=4, part_size=2, repeat={0},
                                                  order=[0, 1]))
            result = await reg.query(cam.device_id, "Catalog", timeout=5)
            assert result.complete and result.missing == 0 and len(result.items) == 4
            # complete once both parts came; the repeat may come before the last
            assert result.duplicates in (0, 1)
            await cam.close()
    run(main)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_no_answer_is_a_timeout_result(run: Runner, transport: str) -> None:
    """A camera that answers nothing: a result with status None, never a
    hang; over UDP the MESSAGE was retransmitted (Timer E), over TCP not."""
    async def main() -> None:
        async with registrar(request_t1=0.05) as reg:
            cam = await camera(reg, transport, Script(answer=False, respond=False))
            result = await reg.query(cam.device_id, "DeviceInfo", timeout=0.6)
            assert result.timed_out and not result.complete
            assert result.status is None and result.parts_received == 0
            assert result.missing is None
            stats = reg.stats()
            if transport == "udp":
                assert stats["requests_retransmitted"] >= 2
                assert len(cam.requests) >= 3
            else:
                assert stats["requests_retransmitted"] == 0
                assert len(cam.requests) == 1
            assert stats["requests_in_flight"] == 0  # given up, slot freed
            await cam.close()
    run(main)


def test_refusal_is_a_result_not_an_exception(run: Runner) -> None:
    async def main() -> None:
        async with registrar() as reg:
            cam = await camera(reg, "udp", Script(status=403, respond=False))
            result = await reg.query(cam.device_id, "DeviceStatus", timeout=5)
            assert result.status == 403 and not result.complete and not result.timed_out
            await cam.close()
    run(main)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_device_info_fields(run: Runner, transport: str) -> None:
    """§9.5.3 DeviceInfo: one Response part; its fields are readable."""
    async def main() -> None:
        async with registrar() as reg:
            cam = await camera(reg, transport)
            result = await reg.query(cam.device_id, "DeviceInfo", timeout=5)
            assert result.complete and result.missing == 0
            assert result.text("DeviceName") == "大门"
            assert result.as_dict()["fields"]["Manufacturer"] == "gbsip-test"
            await cam.close()
    run(main)


def test_answers_of_other_queries_stay_message_events(run: Runner) -> None:
    """A Response matching no pending query (wrong SN) is a MessageReceived
    event as before, and the query it was meant for times out."""
    async def main() -> None:
        async with registrar() as reg:
            cam = await camera(reg, "udp", Script(sn_offset=1000))
            result = await reg.query(cam.device_id, "DeviceInfo", timeout=0.4)
            assert result.status == 200 and result.parts_received == 0 and result.timed_out
            ev = await reg.wait_for(MessageReceived, cam.device_id, timeout=2)
            assert "<Response>" in ev.body
            await cam.close()
    run(main)


def test_response_before_200_is_noted(run: Runner) -> None:
    """GB/T 28181 wants the 200 before the Response; a camera that answers
    the other way round still gets its answer collected, and flagged."""
    async def main() -> None:
        async with registrar() as reg:
            cam = await camera(reg, "udp", Script(response_first=True))
            result = await reg.query(cam.device_id, "DeviceInfo", timeout=5)
            assert result.complete and result.response_before_answer
            await cam.close()
    run(main)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_control_commands(run: Runner, transport: str) -> None:
    """§9.3: PTZ is answered by SIP 200 alone; RecordCmd with a Response
    carrying Result."""
    async def main() -> None:
        async with registrar() as reg:
            cam = await camera(reg, transport)
            ptz = await reg.control(cam.device_id, manscdp.PTZ(pan=-32), timeout=5)
            assert ptz.complete and ptz.ok and ptz.status == 200 and ptz.result is None
            body = manscdp.parse(cam.requests[0].body)
            assert body.root is manscdp.Root.CONTROL and body.cmd_type == "DeviceControl"
            assert body.text("PTZCmd") == "A50F0102200000D7"
            rec = await reg.control(cam.device_id, manscdp.RecordCmd(), timeout=5)
            assert rec.complete and rec.result == "OK"
            await cam.close()
    run(main)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_subscribe_notify_refresh_unsubscribe(run: Runner, transport: str) -> None:
    """§9.11: SUBSCRIBE with Event and Expires, 200, NOTIFYs become
    Notified events (answered 200); refresh in the dialog; Expires 0 ends."""
    async def main() -> None:
        async with registrar() as reg:
            cam = await camera(reg, transport)
            res = await reg.subscribe(cam.device_id, "Catalog", expires=600, timeout=5)
            assert res.complete and res.status == 200 and res.expires == 600
            sub = res.subscription
            assert sub is not None and sub.to_tag
            ev = await reg.wait_for(Notified, cam.device_id, timeout=5)
            assert ev.event == "Catalog"
            doc = ev.document
            assert doc is not None and doc.root is manscdp.Root.NOTIFY
            first = cam.requests[0]
            assert first.method == "SUBSCRIBE" and first.headers["Expires"] == "600"
            again = await reg.refresh_subscription(sub, expires=300)
            assert again.complete and again.expires == 300
            refresh = cam.requests[1]
            assert refresh.call_id == first.call_id
            assert refresh.cseq is not None and first.cseq is not None
            assert refresh.cseq.number == first.cseq.number + 1
            assert refresh.to is not None and refresh.to.tag == sub.to_tag
            end = await reg.unsubscribe(sub)
            assert end.complete and cam.requests[-1].headers["Expires"] == "0"
            assert end.subscription is None
            mp = await reg.subscribe(cam.device_id, "MobilePosition", interval=7, timeout=5)
            assert mp.complete
            assert manscdp.parse(cam.requests[-1].body).text("Interval") == "7"
            assert cam.requests[-1].headers["Event"] == "presence"
            await cam.close()
    run(main)


def test_misuse_raises_actionable_errors(run: Runner) -> None:
    async def main() -> None:
        reg = registrar()
        with pytest.raises(LocalProtocolError, match="not running"):
            await reg.query(dev(1), "Catalog")
        async with reg:
            with pytest.raises(NotRegisteredError, match="not registered.*DeviceRegistered"):
                await reg.query(dev(9), "Catalog")
            with pytest.raises(ConfigurationError, match="unknown query"):
                await reg.query(dev(9), "Weather")
            with pytest.raises(ConfigurationError, match="start_time and end_time"):
                await reg.query(dev(9), "RecordInfo")
            with pytest.raises(ConfigurationError, match="cannot subscribe"):
                await reg.subscribe(dev(9), "Weather")
    run(main)


def test_pool_bound_turns_requests_away_as_results(run: Runner) -> None:
    """max_requests bounds the client transactions; one more is a result
    with an error, counted in requests_turned_away."""
    async def main() -> None:
        async with registrar(max_requests=1) as reg:
            cam = await camera(reg, "udp", Script(answer=False, respond=False))
            first = asyncio.ensure_future(reg.query(cam.device_id, "DeviceInfo", timeout=0.5))
            await asyncio.sleep(0.05)
            second = await reg.query(cam.device_id, "DeviceInfo", timeout=0.5)
            assert second.error is not None and "max_requests=1" in second.error
            assert reg.stats()["requests_turned_away"] == 1
            assert (await first).timed_out
            await cam.close()
    run(main)


def test_finished_requests_give_their_slots_up_to_new_ones(run: Runner) -> None:
    """A finished UDP query keeps its slot for Timer K only to absorb
    repeated answers: with every slot taken, the oldest such slot serves
    the next query (requests_completed_reused) instead of turning it
    away, so max_requests bounds what is waiting, not the query rate."""
    async def main() -> None:
        async with registrar(max_requests=1) as reg:
            cam = await camera(reg, "udp", Script(channels=2))
            for _ in range(3):
                result = await reg.query(cam.device_id, "Catalog", timeout=5)
                assert result.complete and len(result.items) == 2, result
            stats = reg.stats()
            assert stats["requests_turned_away"] == 0
            assert stats["requests_completed_reused"] == 2
            await cam.close()
    run(main)


def test_query_on_register_policy(run: Runner) -> None:
    """As WVP does: DeviceInfo then Catalog after a first registration;
    each finished query is a QueryCompleted event."""
    async def main() -> None:
        async with registrar(query_on_register=("DeviceInfo", "Catalog")) as reg:
            cam = await camera(reg, "udp", Script(channels=3))
            a = await reg.wait_for(QueryCompleted, cam.device_id, timeout=5)
            b = await reg.wait_for(QueryCompleted, cam.device_id, timeout=5)
            assert [a.result.cmd_type, b.result.cmd_type] == ["DeviceInfo", "Catalog"]
            assert isinstance(b.result, QueryResult) and len(b.result.items) == 3
            await cam.close()
    run(main)


def test_close_ends_waiting_queries_at_once(run: Runner) -> None:
    """Closing the registrar does not leave a query waiting for its timeout."""
    async def main() -> None:
        reg = registrar()
        await reg.start()
        cam = await camera(reg, "udp", Script(answer=False, respond=False))
        waiting = asyncio.ensure_future(reg.query(cam.device_id, "Catalog", timeout=30))
        await asyncio.sleep(0.1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await reg.close()
        result = await asyncio.wait_for(waiting, 5)
        assert loop.time() - started < 2
        assert not result.complete and result.status is None
        await cam.close()
    run(main)


def test_record_info_time_range_and_parts(run: Runner) -> None:
    """§9.7 RecordInfo: the query carries StartTime, EndTime, Secrecy and
    Type; the record list comes in SumNum parts (here last part first)."""
    async def main() -> None:
        async with registrar() as reg:
            cam = await camera(reg, "udp", Script(channels=3, part_size=2))
            result = await reg.query(cam.device_id, "RecordInfo", timeout=5,
                                     start_time="2026-12-03T00:00:00",
                                     end_time="2026-12-03T23:59:59")
            assert result.complete and result.sum_num == 3 and result.parts_received == 2
            assert sorted(str(getattr(i, "start_time")) for i in result.items) == [
                f"2026-12-03T0{k}:00:00" for k in range(3)]
            q = manscdp.parse(cam.requests[0].body)
            assert (q.text("StartTime"), q.text("EndTime"), q.text("Type")) == (
                "2026-12-03T00:00:00", "2026-12-03T23:59:59", "all")
            cfg = await reg.query(cam.device_id, "ConfigDownload", timeout=5)
            assert manscdp.parse(cam.requests[1].body).text("ConfigType") == "BasicParam"
            assert cfg.complete
            await cam.close()
    run(main)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_subscription_refreshed_before_expiry(run: Runner, transport: str) -> None:
    """§9.11 + RFC 6665 §4.1.2.2: subscribe(refresh=True) re-SUBSCRIBEs in
    the dialog at 2/3 of the granted Expires, until unsubscribed; its
    NOTIFYs carry the subscription (Call-ID); a refusal ends the keeping."""
    async def main() -> None:
        async with registrar() as reg:
            cam = await camera(reg, transport)
            loop = asyncio.get_running_loop()
            started = loop.time()
            res = await reg.subscribe(cam.device_id, "Catalog", expires=2, timeout=5,
                                      refresh=True)
            sub = res.subscription
            assert res.ok and sub is not None and reg.subscriptions == {sub.call_id: sub}
            note = await reg.wait_for(Notified, cam.device_id, timeout=5)
            assert note.call_id == sub.call_id and note.subscription is sub
            while sub.refreshes < 2:
                await asyncio.sleep(0.05)
                assert loop.time() - started < 6.5
            subs = [r for r in cam.requests if r.method == "SUBSCRIBE"]
            assert len(subs) == 3
            first = subs[0]
            assert first.headers["Contact"].startswith(f"<sip:{SERVER_ID}@")
            for k, r in enumerate(subs[1:], 1):
                assert r.call_id == first.call_id and r.headers["Expires"] == "2"
                assert r.cseq is not None and first.cseq is not None
                assert r.cseq.number == first.cseq.number + k
                assert r.to is not None and r.to.tag == sub.to_tag
            # about 1.33 s (2/3 of 2 s) apart: the second refresh after ~2.67 s
            # (at half the Expires it would come after 2 s)
            assert 2.35 < loop.time() - started < 6.5
            end = await reg.unsubscribe(sub, timeout=5)
            assert end.ok and reg.subscriptions == {}
            n = len(cam.requests)
            await asyncio.sleep(2)  # 1.5 refresh intervals
            assert len(cam.requests) == n  # no refresh after the end
            # a refusal of a refresh ends the keeping
            again = await reg.subscribe(cam.device_id, "Catalog", expires=1, timeout=5,
                                        refresh=True)
            assert again.subscription is not None
            cam.script.status = 481
            refused = loop.time()
            while reg.subscriptions:  # the refresh is due after 0.67 s
                await asyncio.sleep(0.05)
                assert loop.time() - refused < 5
            n = len(cam.requests)
            await asyncio.sleep(1.2)
            assert len(cam.requests) == n
            await cam.close()
    run(main)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_subscription_not_refreshed_leaves_subscriptions_when_it_expires(
        run: Runner, transport: str) -> None:
    """RFC 6665 §4.1.2.2: a subscription lives for the Expires granted
    unless refreshed; one subscribed without ``refresh`` leaves
    ``reg.subscriptions`` when that time is up, and sends nothing more."""
    async def main() -> None:
        async with registrar() as reg:
            cam = await camera(reg, transport)
            res = await reg.subscribe(cam.device_id, "Catalog", expires=1, timeout=5)
            sub = res.subscription
            assert res.ok and sub is not None and sub.call_id in reg.subscriptions
            await asyncio.sleep(0.5)
            assert sub.call_id in reg.subscriptions
            await asyncio.sleep(0.8)
            assert reg.subscriptions == {}
            assert [r.method for r in cam.requests].count("SUBSCRIBE") == 1
            await cam.close()
    run(main)


def test_refreshed_subscription_outlives_its_first_expires(run: Runner) -> None:
    """RFC 6665 §4.1.2.2: a refresh granted in time moves the expiry on, so
    a subscription kept alive stays in ``reg.subscriptions``."""
    async def main() -> None:
        async with registrar() as reg:
            cam = await camera(reg, "udp")
            res = await reg.subscribe(cam.device_id, "Catalog", expires=1, timeout=5)
            sub = res.subscription
            assert sub is not None
            await asyncio.sleep(0.6)
            assert (await reg.refresh_subscription(sub, timeout=5)).ok
            await asyncio.sleep(0.6)  # 1.2 s after the SUBSCRIBE, 0.6 s after the refresh
            assert sub.call_id in reg.subscriptions
            await asyncio.sleep(0.6)
            assert reg.subscriptions == {}
            await cam.close()
    run(main)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_notify_terminated_ends_the_subscription(run: Runner, transport: str) -> None:
    """RFC 6665 §4.1.3: a NOTIFY with ``Subscription-State: terminated``
    ends the subscription: its ``Notified`` event says so (state, reason)
    and it leaves ``reg.subscriptions``."""
    async def main() -> None:
        async with registrar() as reg:
            cam = await camera(reg, transport,
                               Script(notify_state="terminated;reason=noresource"))
            res = await reg.subscribe(cam.device_id, "Catalog", expires=600, timeout=5)
            assert res.ok and res.subscription is not None
            note = await reg.wait_for(Notified, cam.device_id, timeout=5)
            assert (note.state, note.state_reason) == ("terminated", "noresource")
            assert note.subscription is res.subscription
            assert reg.subscriptions == {}
            await cam.close()
    run(main)


def test_notified_reads_the_subscription_state_the_core_reports() -> None:
    """RFC 6665 §8.2.3: the Subscription-State of a NOTIFY, where the core
    reports it after the Event and Call-ID, is the event's ``state``
    (lower case), ``state_reason`` and ``state_expires``; without it all
    three are None."""
    from gbsip.registrar import _notified
    common: dict[str, Any] = {"source": None, "transport": "udp", "time": 0.0}
    active = _notified(dev(1), common, "<Notify/>", "Catalog\ncid@h\nActive;expires=599")
    assert (active.event, active.call_id, active.state, active.state_expires) == (
        "Catalog", "cid@h", "active", 599)
    ended = _notified(dev(1), common, "", "Catalog\ncid@h\nterminated;reason=timeout")
    assert (ended.state, ended.state_reason, ended.state_expires) == (
        "terminated", "timeout", None)
    plain = _notified(dev(1), common, "", "Catalog\ncid@h")
    assert (plain.call_id, plain.state, plain.state_reason, plain.state_expires) == (
        "cid@h", None, None, None)


def test_subscription_to_gbsip_device_refreshed(run: Runner) -> None:
    """The same against gbsip's own camera: it grants the refreshes (200
    with Expires) and keeps notifying in the one dialog."""
    async def main() -> None:
        async with registrar() as reg:
            import gbsip
            host, port = reg.addresses["udp"][:2]
            async with gbsip.Device(dev(9), password=PASSWORD, server=f"udp://{host}:{port}",
                                    server_id=SERVER_ID, keepalive_interval=60, channels=2,
                                    t1=0.1) as cam:
                if dev(9) not in reg.devices:
                    await reg.wait_for(DeviceRegistered, dev(9), timeout=5)
                res = await reg.subscribe(dev(9), "Catalog", expires=3, timeout=5,
                                          refresh=True)
                sub = res.subscription
                assert res.ok and sub is not None
                loop = asyncio.get_running_loop()
                started = loop.time()
                while sub.refreshes < 1:
                    await asyncio.sleep(0.05)
                    assert loop.time() - started < 6
                cam.channels[0].status = "OFF"
                note = await reg.wait_for(Notified, dev(9), timeout=5)
                assert note.subscription is sub and note.call_id == sub.call_id
                assert sub.call_id in reg.subscriptions
                await reg.unsubscribe(sub, timeout=5)
                assert reg.subscriptions == {}
    run(main)
