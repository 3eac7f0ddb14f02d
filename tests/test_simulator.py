"""gbsip.Simulator: many devices from one process, every one accounted for.

Against the gbsip Registrar (in the same loop), a Kamailio registrar and a
sipp UAS (independent peers started on loopback by the pid we own), on
asyncio and uvloop.  Runs are a few seconds long with short keepalive
intervals; load is bounded in devices and time.
"""
from __future__ import annotations

import asyncio
import math
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from gbsip.registrar import Registrar
from gbsip.simulator import Faults, Simulator, SimulatorError

from device_helpers import free_port, run  # noqa: F401  (fixture)

# Thousands of devices against a registrar in the same process, counted
# over a run of a few seconds: the sanitizer pass runs these alone.
pytestmark = pytest.mark.timing

SERVER_ID = "34020000002000000001"
PASSWORD = "12345678"


def _accounted(report: dict[str, Any]) -> int:
    """Devices registered at the end plus those with a failure reason."""
    res = report["result"]
    return int(res["registered"] + sum(res["not_registered"].values()))


def test_every_device_accounted_for_with_churn_and_faults(run) -> None:  # noqa: F811
    """GB/T 28181 §9.1/§9.6.1 at fleet scale: 3000 devices register with
    Digest, keep alive, churn (10 % go offline and come back) and carry
    injected faults; at the end every device is registered or failed with
    its reason (the wrong-password ones: 403), then all unregister."""

    async def scenario() -> tuple[dict[str, Any], dict[str, int], int]:
        async with Registrar(SERVER_ID, port=0, transports=("udp",), passwords=PASSWORD,
                             keepalive_events=False) as reg:
            host, port = reg.address
            faults = Faults(drop_responses=0.02, wrong_password=0.01,
                            skip_keepalives=0.01, change_source_port=0.01)
            async with Simulator(3000, server=f"udp://{host}:{port}", rate=6000, duration=3,
                                 keepalive_interval=0.5, churn=0.1, churn_offline=0.5,
                                 faults=faults, seed=7) as sim:
                report = await sim.run()
            return report, reg.stats(), len(reg)

    report, reg_stats, bindings_left = run(scenario())
    assert _accounted(report) == 3000
    assert report["result"]["not_registered"] == {"rejected 403": 30}
    assert report["result"]["registered"] == 2970
    assert report["faults"] == {"drop_responses": 60, "wrong_password": 30,
                                "skip_keepalives": 30, "change_source_port": 30}
    assert report["messages"]["dropped_by_fault"] == 120
    assert report["messages"]["retransmitted"] >= 120  # each drop cost a Timer E retransmission
    churn = report["churn"]
    assert churn["offline"] + churn["skipped_not_online"] == 300
    assert churn["returned"] == churn["offline"]
    assert churn["skipped_not_online"] <= 60 + 30  # only faulty devices can be offline then
    assert report["totals"]["keepalives_answered"] > 3000
    # Each faulty device skips its next 3 keepalives; one that registered
    # late in the run has had fewer than 3 due by the end.
    assert 0 < report["totals"]["keepalives_skipped"] <= 30 * 3
    assert report["latency_ms"]["register"]["count"] == report["totals"]["registrations"]
    assert report["final_states"]["unregistered"] == 3000
    assert reg_stats["auth_failures"] == 30
    assert bindings_left == 0


@pytest.mark.parametrize("mode", ["unregister", "silent"])
def test_churn_modes(run, mode: str) -> None:  # noqa: F811
    """Churn: 'unregister' sends Expires: 0 before going offline, 'silent'
    just stops (power loss); either way the device comes back and
    registers again."""

    async def scenario() -> tuple[dict[str, Any], dict[str, int], Any]:
        async with Registrar(SERVER_ID, port=0, transports=("udp",), passwords=PASSWORD,
                             keepalive_events=False) as reg:
            host, port = reg.address
            async with Simulator(400, server=f"udp://{host}:{port}", rate=4000, duration=2,
                                 keepalive_interval=None, churn=0.25, churn_offline=0.3,
                                 churn_mode=mode, seed=3) as sim:
                report = await sim.run()
                stats = sim.stats()
            return report, reg.stats(), stats

    report, reg_stats, stats = run(scenario())
    assert report["ok"] and report["churn"]["offline"] == 100
    assert report["totals"]["registrations"] == 500  # 400 + 100 coming back
    # "ever registered" counts devices, not registrations (issue 15)
    assert report["result"]["ever_registered"] == stats["ever_registered"] == 400
    expected_unreg = 400 + (100 if mode == "unregister" else 0)
    assert reg_stats["unregistrations"] == expected_unreg


def test_tcp_one_connection_per_device(run) -> None:  # noqa: F811
    """GB/T 28181-2022 §9.1.1 f: over TCP each device keeps one connection
    for all its traffic (REGISTER, keepalives, unregistration)."""

    async def scenario() -> tuple[dict[str, Any], int]:
        async with Registrar(SERVER_ID, port=0, transports=("tcp",), passwords=PASSWORD,
                             keepalive_events=False) as reg:
            host, port = reg.addresses["tcp"]
            # intervals long enough for a sanitizer build's slower TCP path
            async with Simulator(300, server=f"tcp://{host}:{port}", rate=3000, duration=3.0,
                                 keepalive_interval=1.0) as sim:
                report = await sim.run()
                connections = reg.stats()["tcp_connections"]
            return report, connections

    report, connections = run(scenario())
    assert report["ok"] and report["transport"] == "tcp"
    assert connections == 300
    assert report["messages"]["retransmitted"] == 0  # RFC 3261 §17.1.2.2: not over TCP
    assert report["totals"]["keepalives_answered"] > 0
    assert report["totals"]["keepalives_missed"] == 0


def test_one_socket_per_device(run) -> None:  # noqa: F811
    """sockets=0: every device has its own UDP socket, so the registrar
    sees as many source ports as devices."""

    async def scenario() -> set[tuple[str, int]]:
        async with Registrar(SERVER_ID, port=0, transports=("udp",), passwords=PASSWORD,
                             keepalive_events=False) as reg:
            host, port = reg.address
            async with Simulator(200, server=f"udp://{host}:{port}", sockets=0, rate=None,
                                 duration=0.5, keepalive_interval=None,
                                 unregister=False) as sim:
                report = await sim.run()
                assert report["ok"]
            return {b.source for b in reg.bindings.values()}

    assert len(run(scenario())) == 200


def test_shared_socket_pool(run) -> None:  # noqa: F811
    """The default pool: devices share a few sockets (Via and Contact name
    each device's socket)."""

    async def scenario() -> tuple[set[tuple[str, int]], dict[str, Any]]:
        async with Registrar(SERVER_ID, port=0, transports=("udp",), passwords=PASSWORD,
                             keepalive_events=False) as reg:
            host, port = reg.address
            async with Simulator(200, server=f"udp://{host}:{port}", sockets=4, rate=None,
                                 duration=0.5, keepalive_interval=None,
                                 unregister=False) as sim:
                report = await sim.run()
            return {b.source for b in reg.bindings.values()}, report

    sources, report = run(scenario())
    assert report["ok"] and report["config"]["sockets"] == 4
    assert len(sources) == 4


def test_ids_list_and_password_callable(run) -> None:  # noqa: F811
    """IDs from a list and one password per device (the registrar holds a
    mapping): every device answers its own challenge."""
    ids = [f"3402000000132{k:07d}" for k in range(500, 600)]
    passwords = {i: f"pw-{i[-4:]}" for i in ids}

    async def scenario() -> tuple[dict[str, Any], set[str]]:
        async with Registrar(SERVER_ID, port=0, transports=("udp",), passwords=passwords,
                             keepalive_events=False) as reg:
            host, port = reg.address
            async with Simulator(100, server=f"udp://{host}:{port}", ids=ids,
                                 password=lambda i: passwords[i], rate=None, duration=0.5,
                                 keepalive_interval=None, unregister=False) as sim:
                report = await sim.run()
            return report, set(reg.bindings)

    report, bound = run(scenario())
    assert report["ok"]
    assert bound == set(ids)


def test_default_ids_are_20_digit_camera_ids() -> None:
    """shared/README §3: IDs are 20 digits, type 132 (IP camera): the
    default prefix 340200000013200 followed by a 5-digit serial from
    id_start; beyond 99999 the serial runs on into the prefix's trailing
    zeros (the 6-digit serial field), so a million devices fit."""
    sim = Simulator(3, id_start=41)
    assert [sim.device_id(i) for i in range(3)] == [
        "34020000001320000041", "34020000001320000042", "34020000001320000043"]
    assert sim.index_of("34020000001320000042") == 1
    with pytest.raises(ValueError):
        sim.index_of("34020000001320000044")
    wide = Simulator(2, id_start=99999)
    assert [wide.device_id(i) for i in range(2)] == [
        "34020000001320099999", "34020000001320100000"]
    with pytest.raises(ValueError, match="do not fit"):
        Simulator(10, id_prefix="9" * 19, id_start=5)  # would need 21 digits


def test_trace_sees_one_device_exchange(run) -> None:  # noqa: F811
    """trace=ID: that device's messages, in order: REGISTER, 401, REGISTER
    with Digest, 200 (the seed's exchange), then the unregistration."""
    seen: list[tuple[str, bytes]] = []
    target = "34020000001320000007"

    async def scenario() -> None:
        async with Registrar(SERVER_ID, port=0, transports=("udp",), passwords=PASSWORD,
                             keepalive_events=False) as reg:
            host, port = reg.address
            async with Simulator(20, server=f"udp://{host}:{port}", rate=None, duration=0.3,
                                 keepalive_interval=None, trace=target,
                                 on_trace=lambda d, b: seen.append((d, b))) as sim:
                await sim.run()

    run(scenario())
    firsts = [(d, b.split(b"\r\n", 1)[0]) for d, b in seen]
    assert firsts[:4] == [("send", b"REGISTER sip:34020000002000000001@3402000000 SIP/2.0"),
                          ("recv", b"SIP/2.0 401 Unauthorized"),
                          ("send", b"REGISTER sip:34020000002000000001@3402000000 SIP/2.0"),
                          ("recv", b"SIP/2.0 200 OK")]
    assert all(target.encode() in b for _, b in seen)
    assert b"Expires: 0" in seen[-2][1] and seen[-1][1].startswith(b"SIP/2.0 200")


def test_live_stats_while_running(run) -> None:  # noqa: F811
    """sim.stats() during the run: devices by state add up, rates and RSS
    are reported, the phase moves from ramp to done."""
    snaps: list[dict[str, Any]] = []

    async def scenario() -> None:
        async with Registrar(SERVER_ID, port=0, transports=("udp",), passwords=PASSWORD,
                             keepalive_events=False) as reg:
            host, port = reg.address
            async with Simulator(1000, server=f"udp://{host}:{port}", rate=1000, duration=1.5,
                                 keepalive_interval=0.5) as sim:
                await sim.run(progress=snaps.append, interval=0.25)

    run(scenario())
    assert snaps[0]["phase"] == "ramp" and snaps[-1]["phase"] == "done"
    for s in snaps:
        assert sum(s["by_state"].values()) == 1000
        assert s["memory"]["rss_bytes"] > 0
    assert max(s["rates"]["registrations_per_s"] for s in snaps) > 300
    assert any(s["rates"]["keepalives_per_s"] > 0 for s in snaps)


def test_no_answer_is_reported(run) -> None:  # noqa: F811
    """Nothing listening: run() gives up after no_answer_timeout with a
    message naming the server, instead of waiting for Timer F."""
    port = free_port()

    async def scenario() -> None:
        async with Simulator(10, server=f"udp://127.0.0.1:{port}", rate=None, duration=5,
                             no_answer_timeout=0.5) as sim:
            await sim.run()

    with pytest.raises(SimulatorError, match=f"no answer from udp://127.0.0.1:{port}"):
        run(scenario())


# --------------------------------------------------------------------------
# Kamailio

# The fixture of tests/test_device_kamailio.py: Kamailio on a free loopback
# port in its own process group, stopped by the pid it started.
from test_device_kamailio import kamailio  # noqa: E402,F401


@pytest.mark.peer
def test_against_kamailio(run, kamailio: int) -> None:  # noqa: F811
    """An independent registrar (Kamailio auth + registrar + usrloc): 500
    devices register with Digest, keep alive (MESSAGE answered 200),
    unregister; the wrong-password ones are refused with 403."""

    async def scenario() -> dict[str, Any]:
        async with Simulator(500, server=f"udp://127.0.0.1:{kamailio}", rate=2500,
                             duration=2, expires=60, keepalive_interval=0.5,
                             faults={"wrong_password": 0.02}, seed=11) as sim:
            return await sim.run()

    report = run(scenario())
    assert _accounted(report) == 500
    assert report["result"]["registered"] == 490
    assert report["result"]["not_registered"] == {"rejected 403": 10}
    assert report["totals"]["keepalives_answered"] >= 490
    assert report["unregistration"]["unregistered"] == 500


# --------------------------------------------------------------------------
# sipp UAS


@pytest.mark.peer
@pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed")
def test_against_sipp_uas(run) -> None:  # noqa: F811
    """An independent SIP stack: a sipp UAS verifies every device's Digest
    answer (username = device ID, password 12345678) and exits 0 only when
    all 300 calls (register, challenge, register, unregister) succeeded."""
    port = free_port()
    scenario_file = Path(__file__).parent / "data" / "sipp" / "uas_fleet.xml"
    workdir = tempfile.TemporaryDirectory()
    proc = subprocess.Popen(
        ["sipp", "-sf", str(scenario_file), "-i", "127.0.0.1", "-p", str(port), "-t", "u1",
         "-m", "300", "-nostdin", "-timeout", "30s", "-timeout_error", "-trace_err"],
        cwd=workdir.name, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while str(port) not in subprocess.run(
                ["ss", "-lnuH", f"sport = :{port}"], capture_output=True, text=True).stdout:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "sipp did not start"
            time.sleep(0.05)

        async def scenario() -> dict[str, Any]:
            async with Simulator(300, server=f"udp://127.0.0.1:{port}", rate=1500,
                                 duration=1, keepalive_interval=None) as sim:
                return await sim.run()

        report = run(scenario())
        rc = proc.wait(timeout=20)
        errors = "".join(p.read_text() for p in Path(workdir.name).glob("*_errors.log"))
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=5)
        if proc.stderr:
            proc.stderr.close()
        workdir.cleanup()
    assert report["ok"] and report["result"]["registered"] == 300
    assert report["unregistration"]["unregistered"] == 300
    assert rc == 0, errors[-2000:]


def test_bad_options_are_refused() -> None:
    """Options that cannot work are refused at construction."""
    with pytest.raises(ValueError, match="fault"):
        Simulator(10, faults={"explode": 0.5})
    with pytest.raises(ValueError, match="more than 1"):
        Simulator(10, faults=Faults(wrong_password=0.7, drop_responses=0.7))
    with pytest.raises(ValueError, match="churn"):
        Simulator(10, churn=1.5)
    with pytest.raises(ValueError, match="scheme"):
        Simulator(10, server="sctp://127.0.0.1:5060")



def test_on_events_delivers_every_device_event_with_its_id(run) -> None:  # noqa: F811
    """Simulator(on_events=...): each device's events arrive as gbsip.events
    values with device_id set — the same vocabulary as gbsip.Device."""
    from gbsip.events import Challenged, KeepaliveAnswered, Registered, Unregistered

    async def scenario() -> tuple[list[Any], dict[str, Any], list[str]]:
        seen: list[Any] = []
        async with Registrar(SERVER_ID, port=0, transports=("udp",), passwords=PASSWORD,
                             keepalive_events=False) as reg:
            host, port = reg.address
            async with Simulator(20, server=f"udp://{host}:{port}", rate=None, duration=0.6,
                                 keepalive_interval=0.2, on_events=seen.extend) as sim:
                report = await sim.run()
                ids = [sim.device_id(i) for i in range(20)]
        return seen, report, ids

    seen, report, ids = run(scenario())
    assert report["ok"]
    for kind in (Challenged, Registered, KeepaliveAnswered, Unregistered):
        got = {e.device_id for e in seen if isinstance(e, kind)}
        assert got == set(ids), kind.__name__
    registered = [e for e in seen if isinstance(e, Registered)]
    assert all(e.expires == 3600 and e.latency >= 0 and e.time > 1e9 for e in registered)
    assert len(registered) == report["totals"]["registrations"] == 20


def test_stop_ends_the_run_early_and_unregisters_what_started(run) -> None:  # noqa: F811
    """Simulator.stop(): the ramp stops where it is, the hold ends, the
    started devices unregister, run() returns a report that says so."""

    async def scenario() -> tuple[dict[str, Any], int, float]:
        async with Registrar(SERVER_ID, port=0, transports=("udp",), passwords=PASSWORD,
                             keepalive_events=False) as reg:
            host, port = reg.address
            async with Simulator(100_000, server=f"udp://{host}:{port}", rate=500,
                                 duration=60) as sim:
                loop = asyncio.get_running_loop()
                loop.call_later(0.5, sim.stop)
                t0 = time.monotonic()
                report = await sim.run()
                took = time.monotonic() - t0
            return report, len(reg), took

    report, bindings_left, took = run(scenario())
    assert took < 15  # not the 60 s hold nor the 200 s ramp
    assert report["stopped"] is True
    started = report["started"]
    assert 0 < started < 100_000
    assert report["result"]["not_started"] == 100_000 - started
    assert report["result"]["registered"] == started and report["ok"]
    assert report["result"]["not_registered"] == {}
    assert report["unregistration"]["unregistered"] == started
    assert bindings_left == 0


def test_timeline_has_a_point_a_step_with_the_latency_of_what_completed(run) -> None:  # noqa: F811
    """Simulator(timeline=0.5): points from the start (all zero) every half
    second to the end, counts that add up, latency percentiles of the
    registrations and keepalives completed in each step."""

    async def scenario() -> tuple[list[Any], dict[str, Any]]:
        async with Registrar(SERVER_ID, port=0, transports=("udp",), passwords=PASSWORD,
                             keepalive_events=False) as reg:
            host, port = reg.address
            async with Simulator(400, server=f"udp://{host}:{port}", rate=400, duration=2,
                                 keepalive_interval=0.5, timeline=0.5, seed=3) as sim:
                report = await sim.run()
            return sim.timeline(), dict(report)

    points, report = run(scenario())
    assert points[0]["elapsed"] == 0.0 and points[0]["registered"] == 0
    assert points[0]["phase"] == "ramp" and points[-1]["phase"] == "done"
    # Points fall on the 0.5 s grid from the start, one a step at most; a
    # busy loop takes one late, never two in a step nor one early.
    cells = [math.floor(p["elapsed"] / 0.5 + 1e-9) for p in points[1:-1]]
    assert cells == sorted(set(cells)) and cells[0] >= 1, cells
    assert len(points) >= 5  # a 1 s ramp and a 2 s run: six steps
    assert sum(p["register_count"] for p in points) == 400
    assert sum(p["message_count"] for p in points) == report["totals"]["keepalives_answered"]
    assert max(p["registered"] for p in points) == 400
    assert any(p["register_p99"] is not None for p in points)
    assert all((p["register_p50"] is None) == (p["register_count"] == 0) for p in points)
    assert all(p["time"] > 1e9 for p in points)


def test_a_failed_run_still_has_a_report_saying_why(run) -> None:  # noqa: F811
    """Nothing listens on the UDP port: run() raises SimulatorError at once
    (the ICMP port unreachable, not --no-answer-timeout later), and
    report() gives what happened with the reason in `error`."""

    async def scenario() -> tuple[str, dict[str, Any], float]:
        port = free_port()
        async with Simulator(20, server=f"udp://127.0.0.1:{port}", no_answer_timeout=30,
                             duration=30) as sim:
            t0 = time.monotonic()
            with pytest.raises(SimulatorError) as err:
                await sim.run()
            return str(err.value), dict(sim.report()), time.monotonic() - t0

    message, report, took = run(scenario())
    assert "port unreachable" in message and took < 5
    assert report["ok"] is False and report["error"] == message
    assert report["messages"]["icmp_errors"] > 0 and report["started"] == 20


@pytest.mark.parametrize("interval,window", [(2.0, 6.0), (2.5, 5.0), (60.0, 60.0),
                                             (120.0, 60.0), (None, 5.0)])
def test_rates_average_over_whole_keepalive_intervals(interval: float | None,
                                                      window: float) -> None:
    """Keepalives come in waves; the live rates are averaged over a whole
    number of keepalive intervals, at least 5 s and at most 60 s."""
    sim = Simulator(10, keepalive_interval=interval)
    assert sim.stats()["rates"]["window_s"] == window


def test_a_ramp_under_a_second_has_no_peak_rate(run) -> None:  # noqa: F811
    """All at once, the ramp takes milliseconds: a peak over 1 s would only
    repeat the average of a shorter time, so the report gives none."""
    async def scenario() -> dict[str, Any]:
        async with Registrar(SERVER_ID, port=0, transports=("udp",), passwords=PASSWORD,
                             keepalive_events=False) as reg:
            host, port = reg.address
            async with Simulator(50, server=f"udp://{host}:{port}", rate=None,
                                 duration=0.5) as sim:
                return dict(await sim.run())

    ramp = run(scenario())["ramp"]
    assert ramp["seconds"] is not None and ramp["seconds"] < 1
    assert ramp["achieved_rate"] is not None and ramp["peak_rate"] is None


def test_peak_rate_is_never_below_the_achieved_rate(run) -> None:  # noqa: F811
    async def scenario() -> dict[str, Any]:
        async with Registrar(SERVER_ID, port=0, transports=("udp",), passwords=PASSWORD,
                             keepalive_events=False) as reg:
            host, port = reg.address
            async with Simulator(1500, server=f"udp://{host}:{port}", rate=1000,
                                 duration=2) as sim:
                return dict(await sim.run())

    ramp = run(scenario())["ramp"]
    assert ramp["achieved_rate"] is not None
    assert ramp["peak_rate"] >= ramp["achieved_rate"] > 500


def _typed_dict_mismatches(hint: Any, value: Any, path: str) -> list[str]:
    """Where ``value`` has other keys than the TypedDict ``hint`` declares,
    down through the TypedDicts nested in it (and in lists of them)."""
    import typing

    if typing.get_origin(hint) is list and value:
        (item,) = typing.get_args(hint)
        return _typed_dict_mismatches(item, value[0], f"{path}[0]")
    if not typing.is_typeddict(hint):
        return []
    fields = typing.get_type_hints(hint)
    out = []
    if set(fields) != set(value):
        out.append(f"{path} ({hint.__name__}): declared but missing "
                   f"{sorted(set(fields) - set(value))}, carried but not declared "
                   f"{sorted(set(value) - set(fields))}")
    for key in set(fields) & set(value):
        out += _typed_dict_mismatches(fields[key], value[key], f"{path}.{key}")
    return out


def test_the_typed_dicts_declare_exactly_the_keys_the_results_carry(run) -> None:  # noqa: F811
    """stats(), run()'s report and timeline() carry the keys their
    TypedDicts declare and no other, down to each latency histogram
    (`latency_ms.answer` included), so a typed read is a true one."""
    from gbsip.simulator import SimulatorReport, SimulatorStats, TimelinePoint

    async def scenario() -> tuple[Any, Any, Any]:
        async with Registrar(SERVER_ID, port=0, transports=("udp",), passwords=PASSWORD,
                             keepalive_events=False) as reg:
            host, port = reg.address
            async with Simulator(5, server=f"udp://{host}:{port}", duration=0.5,
                                 timeline=0.1) as sim:
                report = await sim.run()
                return sim.stats(), report, sim.timeline()

    stats, report, timeline = run(scenario())
    assert timeline
    problems = (_typed_dict_mismatches(SimulatorStats, stats, "stats()")
                + _typed_dict_mismatches(SimulatorReport, report, "report")
                + _typed_dict_mismatches(TimelinePoint, timeline[0], "timeline()[0]"))
    assert not problems, "\n".join(problems)
