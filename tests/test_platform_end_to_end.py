"""End to end, as a user writes it: ``gbsip.Registrar`` asks the cameras of
a ``gbsip.Simulator`` (some of them NVRs) for their Catalog and DeviceInfo
over UDP and over TCP, and subscribes to a ``gbsip.Device``'s Catalog,
whose channel then goes OFF: a ``Notified`` event for that subscription.

Real loopback sockets, both loops (asyncio, uvloop); nothing scripted.
"""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

import gbsip
from gbsip import manscdp
from gbsip.events import DeviceRegistered, Notified
from test_registrar_asyncio import PASSWORD, SERVER_ID, Runner, dev, run  # noqa: F401

TRANSPORTS = ["udp", "tcp"]
DEVICES = 50
CHANNELS = 4
NVR_CHANNELS = 16


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_registrar_queries_a_simulated_fleet(run: Runner, transport: str) -> None:
    """§9.5.1/§9.5.2: every device of the fleet answers Catalog (NVRs in
    parts, SumNum) and DeviceInfo; every result is complete with the
    device's own channel count, and no channel ID repeats in the fleet."""
    async def main() -> None:
        async with gbsip.Registrar(SERVER_ID, host="127.0.0.1", port=0,
                                   passwords=PASSWORD) as reg:
            host, port = reg.addresses[transport][:2]
            sim = gbsip.Simulator(DEVICES, server=f"{transport}://{host}:{port}",
                                  password=PASSWORD, rate=None, duration=60.0,
                                  keepalive_interval=None, channels=CHANNELS,
                                  nvr_fraction=0.1, nvr_channels=NVR_CHANNELS, t1=0.1)
            async with sim:
                task = asyncio.ensure_future(sim.run())
                ids = [sim.device_id(i) for i in range(DEVICES)]
                for d in ids:
                    if d not in reg.devices:
                        await reg.wait_for(DeviceRegistered, d, timeout=20)
                expected = {d: len(sim.channels(d)) for d in ids}
                assert sorted(set(expected.values())) == [CHANNELS, NVR_CHANNELS]
                assert sum(c == NVR_CHANNELS for c in expected.values()) == DEVICES // 10

                catalogs = await asyncio.gather(
                    *(reg.query(d, "Catalog", timeout=10) for d in ids))
                infos = await asyncio.gather(
                    *(reg.query(d, "DeviceInfo", timeout=10) for d in ids))
                sim.stop()
                await task

        channel_ids: list[str] = []
        for d, result in zip(ids, catalogs):
            assert result.complete, result
            assert result.status == 200 and not result.timed_out
            assert result.sum_num == expected[d] and result.missing == 0
            got = [i for i in result.items if isinstance(i, manscdp.CatalogItem)]
            assert len(got) == expected[d]
            channel_ids += [str(i.device_id) for i in got]
            if expected[d] == NVR_CHANNELS:
                assert result.parts_received >= 2  # an NVR's list comes in parts
        assert len(channel_ids) == len(set(channel_ids))
        for d, info in zip(ids, infos):
            assert info.complete and info.status == 200, info
            assert info.text("Result") == "OK"
            assert info.text("DeviceID") == d
            channel = info.text("Channel")
            assert channel is None or int(channel) == expected[d]
    run(main)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_catalog_subscription_notifies_a_channel_change(run: Runner, transport: str) -> None:
    """§9.11.2: a Catalog subscription to a gbsip.Device; a channel going
    OFF is a NOTIFY, answered 200, seen as a ``Notified`` event tied to
    the subscription (its Call-ID); unsubscribing ends it."""
    async def main() -> None:
        async with gbsip.Registrar(SERVER_ID, host="127.0.0.1", port=0,
                                   passwords=PASSWORD) as reg:
            host, port = reg.addresses[transport][:2]
            device_id = dev(7)
            async with gbsip.Device(device_id, password=PASSWORD,
                                    server=f"{transport}://{host}:{port}",
                                    server_id=SERVER_ID, keepalive_interval=60,
                                    channels=3, t1=0.1) as cam:
                if device_id not in reg.devices:
                    await reg.wait_for(DeviceRegistered, device_id, timeout=10)
                sub = await reg.subscribe(device_id, "Catalog", expires=60, timeout=5)
                assert sub.ok and sub.status == 200 and sub.expires > 0
                assert sub.subscription is not None
                channel = cam.channels[1]
                channel.status = "OFF"
                note = await reg.wait_for(Notified, device_id, timeout=5)
                assert note.event.lower().startswith("catalog")
                assert note.call_id == sub.subscription.call_id
                doc = note.document
                assert doc is not None and doc.cmd_type == "Catalog"
                changed = [i for i in doc.items if isinstance(i, manscdp.CatalogItem)]
                assert [str(i.device_id) for i in changed] == [channel.id]
                assert "OFF" in doc.data.decode("utf-8", "replace")
                end = await reg.unsubscribe(sub.subscription, timeout=5)
                assert end.status == 200
    run(main)


async def device_catalog(device_id: str, **device_kw: Any) -> list[manscdp.CatalogItem]:
    """A gbsip.Device made with device_kw registers with a Registrar, which
    queries its Catalog over UDP: the items of the (complete) answer."""
    async with gbsip.Registrar(SERVER_ID, host="127.0.0.1", port=0,
                               passwords=PASSWORD) as reg:
        host, port = reg.addresses["udp"][:2]
        async with gbsip.Device(device_id, password=PASSWORD, server=f"udp://{host}:{port}",
                                server_id=SERVER_ID, keepalive_interval=None, t1=0.1,
                                **device_kw):
            if device_id not in reg.devices:
                await reg.wait_for(DeviceRegistered, device_id, timeout=10)
            result = await reg.query(device_id, "Catalog", timeout=5)
    assert result.complete, result
    return [i for i in result.items if isinstance(i, manscdp.CatalogItem)]


def test_split_catalog_arrives_whole_with_serial_parts(run: Runner) -> None:
    """GB/T 28181-2022 Annex M: under the default (answer_window 1: each part
    after the platform's 200 to the previous one; the C test
    test_parts_window_and_gap checks the pacing) a 12-part Catalog reaches
    the platform whole, every item once."""
    got: list[list[manscdp.CatalogItem]] = []

    async def main() -> None:
        got.append(await device_catalog(dev(6), channels=12))
    run(main)
    assert len(got[0]) == 12
    assert len({item.device_id for item in got[0]}) == 12


def test_empty_catalog_is_sumnum_zero_without_a_list(run: Runner) -> None:
    """GB/T 28181-2022 Annex M: with nothing to list the answer is
    ``SumNum`` 0 and no ``DeviceList``; the query is complete with no items."""
    docs: list[manscdp.Document] = []

    async def main() -> None:
        async with gbsip.Registrar(SERVER_ID, host="127.0.0.1", port=0,
                                   passwords=PASSWORD) as reg:
            host, port = reg.addresses["udp"][:2]
            async with gbsip.Device(dev(5), password=PASSWORD, server=f"udp://{host}:{port}",
                                    server_id=SERVER_ID, keepalive_interval=None, channels=0):
                if dev(5) not in reg.devices:
                    await reg.wait_for(DeviceRegistered, dev(5), timeout=10)
                result = await reg.query(dev(5), "Catalog", timeout=5)
                assert result.complete and result.sum_num == 0 and result.items == ()
                docs.extend(result.documents)
    run(main)
    (doc,) = docs
    assert doc.text("SumNum") == "0"
    assert b"DeviceList" not in doc.data


def test_device_catalog_carries_configured_channel_fields(run: Runner) -> None:
    """A.2.6.4: a gbsip.Device given ChannelConfig per channel answers the
    platform's Catalog query with that Name, Status, Parental, ParentID,
    CivilCode, Longitude/Latitude and PTZType; a channel given only a name
    keeps the values derived from the device ID."""
    from gbsip.camera import ChannelConfig

    gate = ChannelConfig("北门", status="OFF", parental=True,
                         parent_id="34020000002160000001", civil_code="11010501",
                         longitude=116.397128, latitude=39.916527, ptz_type=2)
    device_id = dev(8)
    got: list[list[manscdp.CatalogItem]] = []

    async def main() -> None:
        got.append(await device_catalog(device_id, channels=[gate, "Lobby"]))
    run(main)
    first, second = got[0]
    assert (first.name, first.status, first.parental, first.parent_id, first.civil_code,
            first.longitude, first.latitude, first.ptz_type) == (
        "北门", "OFF", "1", "34020000002160000001", "11010501",
        "116.397128", "39.916527", "2")
    assert (second.name, second.status, second.parental, second.parent_id) == (
        "Lobby", "ON", "0", device_id)
    assert second.civil_code == device_id[:6]


def test_profile_channel_fields_apply_to_every_channel(run: Runner) -> None:
    """A.2.6.4: a Profile's ``channel_fields`` (here CivilCode and ParentID)
    are in every channel's Catalog item; a channel's own ChannelConfig
    wins over them, field by field."""
    from gbsip.camera import ChannelConfig, Profile

    profile = Profile("generic", channel_fields=ChannelConfig(
        civil_code="110105", parent_id="34020000002160000009"))
    got: list[list[manscdp.CatalogItem]] = []

    async def main() -> None:
        got.append(await device_catalog(
            dev(9), profile=profile, channels=["Gate", ChannelConfig("Yard", civil_code="4403")]))
    run(main)
    assert [(i.name, i.civil_code, i.parent_id) for i in got[0]] == [
        ("Gate", "110105", "34020000002160000009"),
        ("Yard", "4403", "34020000002160000009")]


def test_simulator_catalog_carries_configured_channel_fields(run: Runner) -> None:
    """A.2.6.4: a Simulator whose ``channels`` callable returns ChannelConfig
    for one device answers with its fields; the other devices keep derived
    values (and cost no override memory)."""
    from gbsip.camera import ChannelConfig

    def channels(i: int) -> int | list[ChannelConfig]:
        if i == 1:
            return [ChannelConfig(civil_code="44030501", ptz_type=3),
                    ChannelConfig(longitude=113.9, latitude=22.5)]
        return 2

    async def main() -> None:
        async with gbsip.Registrar(SERVER_ID, host="127.0.0.1", port=0,
                                   passwords=PASSWORD) as reg:
            host, port = reg.addresses["udp"][:2]
            sim = gbsip.Simulator(3, server=f"udp://{host}:{port}", password=PASSWORD,
                                  rate=None, duration=60.0, keepalive_interval=None,
                                  channels=channels, t1=0.1)
            async with sim:
                task = asyncio.ensure_future(sim.run())
                ids = [sim.device_id(i) for i in range(3)]
                for d in ids:
                    if d not in reg.devices:
                        await reg.wait_for(DeviceRegistered, d, timeout=20)
                results = [await reg.query(d, "Catalog", timeout=5) for d in ids[:2]]
                sim.stop()
                await task
        plain = [i for i in results[0].items if isinstance(i, manscdp.CatalogItem)]
        own = [i for i in results[1].items if isinstance(i, manscdp.CatalogItem)]
        assert [i.civil_code for i in plain] == [ids[0][:6]] * 2
        assert [(i.civil_code, i.ptz_type) for i in own] == [("44030501", "3"),
                                                             (ids[1][:6], "1")]
        assert (own[1].longitude, own[1].latitude) == ("113.900000", "22.500000")
    run(main)
