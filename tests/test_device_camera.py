"""gbsip.Device and gbsip.Simulator answer their platform like cameras
(GB/T 28181-2016/2022 §9.3-§9.11), over UDP and TCP, against a scripted
platform of raw sockets (tests/camera_platform.py).

The shapes of every answer are specified byte by byte in the C tests
(csrc/tests/test_camera.c); these check the exchanges as a platform sees
them on the wire: the 200 before the answer, SN echo, split Catalogs with
SumNum, retransmission, subscriptions and their NOTIFYs, the events and
counters the Python API reports.
"""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

import gbsip
from gbsip import manscdp
from gbsip.camera import PRESETS, ChannelConfig, Profile
from gbsip.events import (
    AnswerFailed,
    AnswerSent,
    ControlReceived,
    DeviceEvent,
    QueryReceived,
    Subscribed,
    SubscriptionEnded,
)

from camera_platform import SERVER_ID, Platform
from device_helpers import run  # noqa: F401  (fixture)

DEVICE = "34020000001320000001"
NVR = "34020000001180000001"
TRANSPORTS = ["udp", "tcp"]


def device(platform: Platform, device_id: str = DEVICE, **kw: Any) -> gbsip.Device:
    kw.setdefault("t1", 0.05)
    return gbsip.Device(device_id, password="12345678", server=platform.server,
                        server_id=SERVER_ID, keepalive_interval=60, **kw)


def items(docs: list[manscdp.Document]) -> list[str]:
    return [i.device_id for d in docs for i in d.items]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_catalog_query_200_then_answer(run, transport: str) -> None:  # noqa: F811
    """§9.5.1 / Annex M: a Catalog query MESSAGE is answered 200 OK first,
    then the Catalog goes out as a MESSAGE of its own (Application/MANSCDP+xml)
    echoing the SN, SumNum the channel count; the platform's 200 to it
    completes the answer (AnswerSent)."""

    async def scenario() -> tuple[Platform, gbsip.Device, gbsip.Request]:
        async with Platform(transport) as p:
            async with device(p, channels=4, profile="hikvision-ipc") as dev:
                await p.registered(DEVICE)
                q = p.query(DEVICE, "Catalog", 17430)
                await dev.wait_for(AnswerSent, timeout=5)
        return p, dev, q

    p, dev, q = run(scenario())
    ours = p.responses_to(q)
    assert [r.status for r in ours] == [200]
    answers = p.requests("MESSAGE", "Catalog", 17430)
    assert answers, "no Catalog answer"
    assert p.received.index(ours[0]) < p.received.index(answers[0])  # 200 before the answer
    assert all(m.content_type == "Application/MANSCDP+xml" for m in answers)
    docs = p.answers("Catalog", 17430)
    assert all(d.root is manscdp.Root.RESPONSE and d.device_id == DEVICE for d in docs)
    assert {int(d.text("SumNum") or 0) for d in docs} == {4}
    ids = items(docs)
    assert len(ids) == len(set(ids)) == 4
    assert all(i[:10] == DEVICE[:10] and i[10:13] == "131" for i in ids)  # type code 131
    assert docs[0].items[0].manufacturer == PRESETS["hikvision-ipc"]["manufacturer"]
    events = [e for e in dev.history if isinstance(e, (QueryReceived, AnswerSent))]
    assert events[0] == QueryReceived(device_id=DEVICE, time=events[0].time,
                                      cmd_type="Catalog", sn=17430)
    assert isinstance(events[1], AnswerSent) and events[1].parts == len(docs)
    assert dev.stats()["queries"] == {"Catalog": 1}
    assert dev.stats()["answers_completed"] == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_nvr_catalog_split_with_sumnum(run, transport: str) -> None:  # noqa: F811
    """2022 Annex M: a Catalog that does not fit one MESSAGE (64 channels,
    answer_max_message 1400) goes in parts, each with the same SumNum and a
    DeviceList Num of its own items; together every channel exactly once."""

    async def scenario() -> tuple[Platform, gbsip.Device]:
        async with Platform(transport) as p:
            async with device(p, NVR, channels=64, profile="generic-nvr") as dev:
                await p.registered(NVR)
                p.query(NVR, "Catalog", 5)
                await dev.wait_for(AnswerSent, timeout=10)
        return p, dev

    p, dev = run(scenario())
    docs = p.answers("Catalog", 5)
    assert len(docs) > 1
    for d in docs:
        assert d.text("SumNum") == "64"
        assert d.attr("DeviceList", "Num") == str(len(d.items))
        assert len(bytes(d.data)) <= 1400
    ids = items(docs)
    assert len(ids) == len(set(ids)) == 64
    assert [c.id for c in dev.channels] == sorted(ids)
    assert all(len(m) <= 1400 + 600 for m in p.requests("MESSAGE", "Catalog", 5))


def test_single_answers_echo_sn_and_charset(run) -> None:  # noqa: F811
    """§9.5.2-§9.5.3, A.2.4: DeviceInfo, DeviceStatus, ConfigDownload
    (BasicParam: the device's real expiry and keepalive) and PresetQuery are
    each answered with one Response echoing SN, in the charset the query
    declared."""

    async def scenario() -> Platform:
        async with Platform("udp") as p:
            async with device(p, profile="dahua-ipc", expires=1800) as dev:
                await p.registered(DEVICE)
                p.query(DEVICE, "DeviceInfo", 1)
                p.query(DEVICE, "DeviceStatus", 2, charset="UTF-8")
                p.query(DEVICE, "ConfigDownload", 3, [("ConfigType", "BasicParam")])
                p.query(DEVICE, "PresetQuery", 4)
                for _ in range(4):
                    await dev.wait_for(AnswerSent, timeout=5)
        return p

    p = run(scenario())
    info, = p.answers("DeviceInfo", 1)
    assert info.text("Manufacturer") == PRESETS["dahua-ipc"]["manufacturer"]
    assert info.text("Result") == "OK" and info.charset == "GB2312"
    status, = p.answers("DeviceStatus", 2)
    assert status.charset == "UTF-8" and status.text("Online") == "ONLINE"
    assert status.text("Status") == "OK"
    config, = p.answers("ConfigDownload", 3)
    assert config.text("BasicParam/Expiration") == "1800"
    assert config.text("BasicParam/HeartBeatInterval") == "60"
    preset, = p.answers("PresetQuery", 4)
    assert preset.root is manscdp.Root.RESPONSE


def test_unanswered_answer_is_retransmitted_then_completes(run) -> None:  # noqa: F811
    """RFC 3261 §17.1.2 (Timer E) over UDP: the answer MESSAGE the platform
    leaves unanswered is sent again, same Call-ID, branch and CSeq; the 200
    to the retransmission completes it."""

    async def scenario() -> tuple[Platform, gbsip.Device]:
        async with Platform("udp") as p:
            p.hold = lambda req: req.method == "MESSAGE" and b"<Response>" in req.body
            async with device(p, channels=1) as dev:
                await p.registered(DEVICE)
                p.query(DEVICE, "DeviceInfo", 9)
                await p.wait(lambda _r: len(p.requests("MESSAGE", "DeviceInfo", 9)) >= 3)
                p.answer(p.requests("MESSAGE", "DeviceInfo", 9)[-1])
                await dev.wait_for(AnswerSent, timeout=5)
        return p, dev

    p, dev = run(scenario())
    sent = p.requests("MESSAGE", "DeviceInfo", 9)
    assert len({(m.call_id, m.via.branch if m.via else None, m.cseq) for m in sent}) == 1
    assert bytes(sent[0]) == bytes(sent[1])
    assert dev.stats()["answers_retransmitted"] >= 2
    assert dev.stats()["answers_failed"] == 0


def test_answer_without_200_fails_at_timer_f(run) -> None:  # noqa: F811
    """Timer F (64*T1): an answer never acknowledged is given up and
    reported (AnswerFailed, kind timeout), counted in answers_failed."""

    async def scenario() -> gbsip.Device:
        async with Platform("udp") as p:
            p.hold = lambda req: req.method == "MESSAGE" and b"<Response>" in req.body
            async with device(p, t1=0.01) as dev:
                await p.registered(DEVICE)
                p.query(DEVICE, "DeviceStatus", 12)
                await dev.wait_for(AnswerFailed, timeout=5)
        return dev

    dev = run(scenario())
    failed, = [e for e in dev.history if isinstance(e, AnswerFailed)]
    assert (failed.cmd_type, failed.sn, failed.status, failed.kind) == \
        ("DeviceStatus", 12, 0, "timeout")
    assert dev.stats()["answers_failed"] == 1


def test_close_finishes_answers_in_flight_before_unregistering(run) -> None:  # noqa: F811
    """GB/T 28181 §9.1.2.2: once a camera has unregistered, the platform
    refuses what it sends (403), so an answer still waiting for the
    platform's 200 when the camera closes is finished first; the
    unregistering REGISTER follows it."""

    async def scenario() -> tuple[Platform, gbsip.Device]:
        async with Platform("udp") as p:
            p.hold = lambda req: req.method == "MESSAGE" and b"<Response>" in req.body
            dev = device(p, channels=1)
            await dev.start()
            await p.registered(DEVICE)
            p.query(DEVICE, "DeviceInfo", 21)
            await p.wait(lambda _r: p.requests("MESSAGE", "DeviceInfo", 21))
            closing = asyncio.ensure_future(dev.close())
            await asyncio.sleep(0.3)
            assert not closing.done()
            assert not [m for m in p.received
                        if isinstance(m, gbsip.Request) and m.method == "REGISTER"
                        and m.expires == 0]
            p.answer(p.requests("MESSAGE", "DeviceInfo", 21)[-1])
            await asyncio.wait_for(closing, 5)
        return p, dev

    p, dev = run(scenario())
    order = [("answer" if m.method == "MESSAGE" else "unregister")
             for m in p.received if isinstance(m, gbsip.Request)
             and (m.method == "MESSAGE" and b"<Response>" in m.body
                  or m.method == "REGISTER" and m.expires == 0)]
    assert order[-1] == "unregister" and order.count("unregister") == 1, order
    assert dev.stats()["unregisters_drained"] == 1
    assert any(isinstance(e, AnswerSent) for e in dev.history)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_catalog_subscription_notifies_status_changes(run, transport: str) -> None:  # noqa: F811
    """§9.11.2: SUBSCRIBE Catalog is answered 200 with Expires (and a
    Response Result OK); a channel turned OFF is a NOTIFY in the
    subscription's dialog with that channel's Status and Event OFF;
    Expires 0 ends it (SubscriptionEnded unsubscribed)."""

    async def scenario() -> tuple[Platform, gbsip.Device, gbsip.Request]:
        async with Platform(transport) as p:
            async with device(p, channels=2) as dev:
                await p.registered(DEVICE)
                body = manscdp.build("Query", "Catalog", 21, DEVICE)
                hdrs = [("Event", "Catalog;id=1"), ("Expires", "60"),
                        ("Contact", f"<sip:{SERVER_ID}@127.0.0.1:{p.port}>")]
                sub = p.request(DEVICE, "SUBSCRIBE", body, headers=hdrs, call_id="sub1")
                await dev.wait_for(Subscribed, timeout=5)
                await p.wait(lambda _r: p.responses_to(sub))
                dev.channels[1].status = "OFF"
                assert dev.channels[1].status == "OFF"
                await p.wait(lambda _r: p.requests("NOTIFY"))
                to_tag = p.responses_to(sub)[0].to.tag  # type: ignore[union-attr]
                p.request(DEVICE, "SUBSCRIBE", body, call_id="sub1", cseq=100, to_tag=to_tag,
                          headers=[("Event", "Catalog;id=1"), ("Expires", "0"), hdrs[2]])
                await dev.wait_for(SubscriptionEnded, timeout=5)
        return p, dev, sub

    p, dev, sub = run(scenario())
    ok = p.responses_to(sub)[0]
    assert ok.status == 200 and ok.expires == 60
    notify = p.requests("NOTIFY")[0]
    assert notify.call_id == "sub1"
    assert notify.headers.get("Event") == "Catalog;id=1"
    doc = manscdp.parse(notify.body)
    assert doc.root is manscdp.Root.NOTIFY and doc.cmd_type == "Catalog"
    item, = doc.items
    assert item.device_id == dev.channels[1].id and item.status == "OFF"
    assert doc.text("DeviceList/Item/Event") == "OFF"
    sub_ev = next(e for e in dev.history if isinstance(e, Subscribed))
    assert (sub_ev.event, sub_ev.expires, sub_ev.refresh) == ("Catalog", 60, False)
    ended = next(e for e in dev.history if isinstance(e, SubscriptionEnded))
    assert (ended.event, ended.kind) == ("Catalog", "unsubscribed")
    st = dev.stats()
    assert st["subscriptions"] == 1 and st["notifies_sent"] >= 1 and st["subscriptions_active"] == 0


def test_controls_are_acknowledged_and_reported(run) -> None:  # noqa: F811
    """§9.3: PTZCmd is answered by the 200 alone; RecordCmd gets a Response
    with Result too; both become ControlReceived events; the channel
    records after RecordCmd Record."""

    async def scenario() -> tuple[Platform, gbsip.Device, list[gbsip.Request]]:
        async with Platform("udp") as p:
            async with device(p, channels=1) as dev:
                await p.registered(DEVICE)
                ch = dev.channels[0].id
                sent = [p.query(DEVICE, "DeviceControl", 30, [("PTZCmd", "A50F01080080003D")],
                                root="Control", target=ch),
                        p.query(DEVICE, "DeviceControl", 31, [("RecordCmd", "Record")],
                                root="Control", target=ch)]
                await dev.wait_for(AnswerSent, timeout=5)
                assert dev.channels[0].recording
        return p, dev, sent

    p, dev, sent = run(scenario())
    assert [r.status for q in sent for r in p.responses_to(q)] == [200, 200]
    assert p.answers("DeviceControl", 30) == []
    rec, = p.answers("DeviceControl", 31)
    assert rec.text("Result") == "OK"
    controls = [e for e in dev.history if isinstance(e, ControlReceived)]
    assert [(c.command, c.value, c.sn) for c in controls] == \
        [("PTZCmd", "A50F01080080003D", 30), ("RecordCmd", "Record", 31)]
    assert controls[0].channel == dev.channels[0].id
    assert dev.stats()["controls"] == {"PTZCmd": 1, "RecordCmd": 1}


def test_query_hook_answers_its_own_way(run) -> None:  # noqa: F811
    """Device(on_query=): fields for the answer, a status to refuse, or
    None for the usual answer."""
    seen: list[str] = []

    def on_query(doc: manscdp.Document) -> Any:
        seen.append(doc.cmd_type)
        if doc.cmd_type == "DeviceInfo":
            return [("Result", "OK"), ("DeviceName", "门口"), ("Manufacturer", "Acme")]
        if doc.cmd_type == "DeviceStatus":
            return 503
        return None

    async def scenario() -> tuple[Platform, list[gbsip.Request]]:
        async with Platform("udp") as p:
            async with device(p, channels=1, on_query=on_query) as dev:
                await p.registered(DEVICE)
                qs = [p.query(DEVICE, "DeviceInfo", 1), p.query(DEVICE, "DeviceStatus", 2),
                      p.query(DEVICE, "Catalog", 3)]
                await dev.wait_for(AnswerSent, timeout=5)
                await dev.wait_for(AnswerSent, timeout=5)
        return p, qs

    p, qs = run(scenario())
    assert seen == ["DeviceInfo", "DeviceStatus", "Catalog"]
    assert [p.responses_to(q)[0].status for q in qs] == [200, 503, 200]
    info, = p.answers("DeviceInfo", 1)
    assert (info.text("DeviceName"), info.text("Manufacturer")) == ("门口", "Acme")
    assert p.answers("DeviceStatus", 2) == []
    assert len(items(p.answers("Catalog", 3))) == 1


def test_alarm_and_unknown_device(run) -> None:  # noqa: F811
    """§9.4: raise_alarm sends a Notify/Alarm MESSAGE to the platform; a
    query for an ID that is neither the device nor one of its channels is
    answered 404, without an answer MESSAGE."""

    async def scenario() -> tuple[Platform, gbsip.Request]:
        async with Platform("udp") as p:
            async with device(p, channels=2) as dev:
                await p.registered(DEVICE)
                assert dev.raise_alarm(1, description="移动侦测") >= 1
                p.addr["34020000001320009999"] = p.addr[DEVICE]
                q = p.query("34020000001320009999", "Catalog", 40)
                await p.wait(lambda _r: p.requests("MESSAGE", "Alarm") and p.responses_to(q))
        return p, q

    p, q = run(scenario())
    alarm = manscdp.parse(p.requests("MESSAGE", "Alarm")[0].body)
    assert alarm.root is manscdp.Root.NOTIFY
    assert alarm.text("AlarmDescription") == "移动侦测"
    assert [r.status for r in p.responses_to(q)] == [404]


def test_profile_and_channel_names() -> None:
    """A Profile is a preset with fields replaced; channel names come from
    its template or are set one by one (Chinese allowed: GB18030 on the
    wire for GB2312 queries)."""
    p = Profile("hikvision-nvr", device_name="机房", channel_name="通道{nn}")
    assert p.resolved()["device_name"] == "机房"
    assert p.resolved()["manufacturer"] == PRESETS["hikvision-nvr"]["manufacturer"]
    dev = gbsip.Device(NVR, password="x", profile=p, channels=["大门", "后门", "车库"])
    assert [c.name for c in dev.channels] == ["大门", "后门", "车库"]
    dev2 = gbsip.Device(NVR, password="x", profile=p, channels=12)
    assert dev2.channels[10].name == "通道11"
    assert len({c.id for c in dev2.channels}) == 12
    with pytest.raises(gbsip.ConfigurationError):
        gbsip.Device(NVR, password="x", profile="no-such-vendor")
    with pytest.raises(gbsip.ConfigurationError):
        dev.channels[0].status = "MAYBE"


def test_lone_devices_with_neighbouring_ids_have_distinct_channel_ids() -> None:
    """Annex D: each gbsip.Device derives its channel IDs from its own ID,
    so devices made one by one with neighbouring IDs share none; a
    one-channel IPC keeps the device's own serial (…1320000001 has
    …1310000001)."""
    ids = [f"3402000000132000000{k}" for k in range(1, 5)]
    devices = [gbsip.Device(i, password="x", channels=4) for i in ids]
    channel_ids = [c.id for d in devices for c in d.channels]
    assert len(channel_ids) == len(set(channel_ids)) == 16
    ipc = gbsip.Device("34020000001320000001", password="x", channels=1)
    assert [c.id for c in ipc.channels] == ["34020000001310000001"]


@pytest.mark.parametrize("config, why", [
    (ChannelConfig(civil_code="11a0"), "CivilCode"),
    (ChannelConfig(ptz_type=7), "PTZType"),
    (ChannelConfig(longitude=200.0, latitude=0.0), "Longitude"),
    (ChannelConfig(longitude=116.0), "longitude and latitude"),
    (ChannelConfig(parent_id="3402<x>"), "ParentID"),
    (ChannelConfig(status="MAYBE"), "status"),
])
def test_invalid_channel_config_is_a_configuration_error(config: ChannelConfig,
                                                         why: str) -> None:
    """A Catalog field the standard cannot carry (A.2.6.4) is refused when
    the device is made, naming the channel and the field."""
    with pytest.raises(gbsip.ConfigurationError, match=f"channel 0: .*{why}"):
        gbsip.Device(NVR, password="x", channels=[config])


def test_channel_configure_changes_one_channel() -> None:
    """Channel.configure gives one channel its own Catalog fields; None
    fields stay derived, and configuring again replaces them."""
    dev = gbsip.Device(NVR, password="x", channels=2)
    dev.channels[1].configure(ChannelConfig(civil_code="110105", ptz_type=1))
    assert dev.channels[1].config.civil_code == "110105"
    assert dev.channels[1].config.ptz_type == 1
    assert dev.channels[0].config.civil_code is None
    dev.channels[1].configure(ChannelConfig(parental=True))
    assert (dev.channels[1].config.parental, dev.channels[1].config.civil_code) == (True, None)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_simulator_devices_answer_catalog(run, transport: str) -> None:  # noqa: F811
    """Every simulated device answers a Catalog query with its own
    channels (NVRs: nvr_channels), channel IDs unique across the fleet;
    on_events gets the camera events; the report counts them."""
    got: list[DeviceEvent] = []

    async def scenario() -> tuple[Platform, dict[str, Any], list[str]]:
        async with Platform(transport) as p:
            sim = gbsip.Simulator(6, server=p.server, rate=None, duration=2.0,
                                  keepalive_interval=None, channels=2, nvr_fraction=1 / 3,
                                  nvr_channels=8, on_events=got.extend, t1=0.05)
            async with sim:
                task = asyncio.ensure_future(sim.run())
                ids = [sim.device_id(i) for i in range(6)]
                await p.registered(*ids)
                for k, d in enumerate(ids):
                    p.query(d, "Catalog", 100 + k)
                await p.wait(lambda _r: sum(len(items(p.answers("Catalog", 100 + k)))
                                            for k in range(6)) == 2 * 4 + 8 * 2)
                report = await task
        return p, report, ids

    p, report, ids = run(scenario())
    counts = [len(items(p.answers("Catalog", 100 + k))) for k in range(6)]
    assert sorted(counts) == [2, 2, 2, 2, 8, 8]
    all_ids = [i for k in range(6) for i in items(p.answers("Catalog", 100 + k))]
    assert len(all_ids) == len(set(all_ids))
    cam = report["camera"]
    assert cam["queries"] == {"Catalog": 6} and cam["nvrs"] == 2
    assert cam["answers_failed"] == 0
    assert sum(isinstance(e, QueryReceived) for e in got) == 6
    assert {e.device_id for e in got if isinstance(e, AnswerSent)} <= set(ids)


def test_mobile_position_notified_at_interval_until_expiry(run) -> None:  # noqa: F811
    """§9.11.1: SUBSCRIBE MobilePosition (Event: presence) with Interval 1
    gets a NOTIFY about every second, each with a position, until the
    subscription expires (Subscription-State terminated;reason=timeout)."""

    async def scenario() -> tuple[Platform, gbsip.Device]:
        async with Platform("udp") as p:
            async with device(p) as dev:
                await p.registered(DEVICE)
                body = manscdp.build("Query", "MobilePosition", 70, DEVICE, [("Interval", 1)])
                p.request(DEVICE, "SUBSCRIBE", body, call_id="mp1",
                          headers=[("Event", "presence"), ("Expires", "3"),
                                   ("Contact", f"<sip:{SERVER_ID}@127.0.0.1:{p.port}>")])
                await dev.wait_for(SubscriptionEnded, timeout=6)
                await p.wait(lambda _r: any(
                    "terminated" in (m.headers.get("Subscription-State") or "")
                    for m in p.requests("NOTIFY")))
        return p, dev

    p, dev = run(scenario())
    notifies = p.requests("NOTIFY")
    positions = [manscdp.parse(m.body) for m in notifies if m.body]
    assert len(positions) >= 2
    assert all(d.cmd_type == "MobilePosition" and d.text("Longitude") for d in positions)
    assert notifies[-1].headers.get("Subscription-State") == "terminated;reason=timeout"
    sub = next(e for e in dev.history if isinstance(e, Subscribed))
    assert (sub.event, sub.expires, sub.interval) == ("MobilePosition", 3, 1.0)
    ended = next(e for e in dev.history if isinstance(e, SubscriptionEnded))
    assert ended.kind == "expired"


def test_simulator_channel_status_notifies_subscriber(run) -> None:  # noqa: F811
    """A simulated device's Catalog subscriber hears of a channel turned
    OFF through sim.set_channel_status (§9.11.2), as with gbsip.Device."""

    async def scenario() -> tuple[Platform, str, str]:
        async with Platform("udp") as p:
            sim = gbsip.Simulator(3, server=p.server, rate=None, duration=1.5,
                                  keepalive_interval=None, channels=2, t1=0.05)
            async with sim:
                task = asyncio.ensure_future(sim.run())
                dev_id = sim.device_id(1)
                await p.registered(dev_id)
                body = manscdp.build("Query", "Catalog", 8, dev_id)
                sub = p.request(dev_id, "SUBSCRIBE", body, call_id="simsub", headers=[
                    ("Event", "Catalog"), ("Expires", "60"),
                    ("Contact", f"<sip:{SERVER_ID}@127.0.0.1:{p.port}>")])
                await p.wait(lambda _r: p.responses_to(sub))
                channel = sim.channels(dev_id)[1].id
                sim.set_channel_status(dev_id, 1, False)
                await p.wait(lambda _r: p.requests("NOTIFY"))
                await task
        return p, dev_id, channel

    p, dev_id, channel = run(scenario())
    notify = p.requests("NOTIFY")[0]
    assert notify.call_id == "simsub"
    item, = manscdp.parse(notify.body).items
    assert (item.device_id, item.status) == (channel, "OFF")  # type: ignore[union-attr]


def test_simulate_cli_devices_answer_as_the_profile_says(run) -> None:  # noqa: F811
    """`gbsip simulate --profile hikvision-nvr --channels 3`: each device
    answers DeviceInfo as that preset (§9.5.2) and Catalog with 3 channels
    (§9.5.1); the summary counts what the platform asked."""
    import os
    import subprocess
    import sys

    proc: subprocess.Popen[bytes] | None = None

    async def scenario() -> Platform:
        nonlocal proc
        async with Platform("udp") as p:
            env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
            # a plain child, waited for outside the loop (no asyncio child watcher)
            proc = subprocess.Popen(
                [sys.executable, "-P", "-m", "gbsip", "simulate", "--server", p.server,
                 "--devices", "2", "--duration", "4", "--keepalive", "0",
                 "--profile", "hikvision-nvr", "--channels", "3"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
            first = "34020000001320000001"
            await p.registered(first, timeout=15)
            p.query(first, "DeviceInfo", 7)
            p.query(first, "Catalog", 8)
            await p.wait(lambda _r: p.answers("DeviceInfo", 7)
                         and len(items(p.answers("Catalog", 8))) == 3, timeout=10)
            # the platform stays up until the devices have unregistered
            deadline = asyncio.get_running_loop().time() + 30
            while proc.poll() is None and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.1)
        return p

    try:
        p = run(scenario())
        assert proc is not None
        out_bytes, _ = proc.communicate(timeout=30)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
    out, rc = out_bytes.decode(), proc.returncode
    assert rc == 0, out
    info = p.answers("DeviceInfo", 7)[0]
    assert info.text("Manufacturer") == PRESETS["hikvision-nvr"]["manufacturer"]
    assert info.text("Model") == PRESETS["hikvision-nvr"]["model"]
    assert "platform asked" in out and "Catalog 1" in out and "DeviceInfo 1" in out
