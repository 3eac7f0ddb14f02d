"""The gbsip pytest plugin (gbsip.pytest_plugin): its fixtures, options,
virtual clock, failure reports and conformance summary, exercised in child
pytest sessions made with pytester."""
from __future__ import annotations

from pathlib import Path

import pytest

from conformance_helpers import CHILD_PYTEST_ARGS, ROOT, ThreadedRegistrar
from gbsip.conformance import plugin_args

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
"""


@pytest.fixture
def gbtester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytester whose child sessions import this gbsip and load the plugin."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeini(INI)
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*plugin_args(), *CHILD_PYTEST_ARGS, *args,
                                         timeout=60)


def test_fixtures_give_a_registered_device(gbtester: pytest.Pytester) -> None:
    """gb_device is registered to gb_registrar, whose events are recorded;
    gb_device_factory numbers device IDs from --gb-device-id."""
    gbtester.makepyfile("""
        import pytest
        from gbsip.device import DeviceState
        from gbsip.events import DeviceRegistered

        @pytest.mark.asyncio
        async def test_registered(gb_registrar, gb_device):
            assert gb_device.state is DeviceState.REGISTERED
            ev = await gb_registrar.wait_recorded(DeviceRegistered, gb_device.device_id, timeout=5)
            assert ev.device_id == "34020000001320000001"
            assert gb_registrar.binding("34020000001320000001") is not None

        @pytest.mark.asyncio
        async def test_factory(gb_registrar, gb_device_factory):
            a = await gb_device_factory()
            b = await gb_device_factory()
            c = await gb_device_factory("34020000001310000077", register=False)
            assert (a.device_id, b.device_id) == ("34020000001320000001", "34020000001320000002")
            assert c.state.value == "idle"
            assert len(gb_registrar) == 2

        @pytest.mark.asyncio
        @pytest.mark.gb_registrar(min_expires=60)
        @pytest.mark.gb_device(expires=60)
        async def test_markers(gb_registrar, gb_device):
            ev = await gb_registrar.wait_recorded(DeviceRegistered, timeout=5)
            assert ev.expires == 60
    """)
    result = run(gbtester)
    result.assert_outcomes(passed=3)


def test_gb_clock_runs_an_hour_of_keepalives_in_moments(gbtester: pytest.Pytester) -> None:
    """Under gb_clock a silent device goes Offline after 3 × 60 s and a
    keepalive-sending one refreshes within the hour, in real seconds."""
    gbtester.makepyfile("""
        import time
        import pytest
        from gbsip.events import DeviceRefreshed, Offline

        @pytest.mark.asyncio
        @pytest.mark.gb_device(keepalive_interval=None)
        async def test_offline(gb_clock, gb_registrar, gb_device):
            start = time.monotonic()
            await gb_clock.advance(200)
            assert gb_registrar.of(Offline, gb_device.device_id)
            assert gb_clock.elapsed >= 200
            assert time.monotonic() - start < 10

        @pytest.mark.asyncio
        async def test_refresh(gb_clock, gb_registrar, gb_device):
            start = time.monotonic()
            await gb_clock.advance(3600)
            assert gb_registrar.of(DeviceRefreshed, gb_device.device_id)
            assert not gb_registrar.of(Offline)
            assert gb_device.keepalive_sn >= 55
            assert time.monotonic() - start < 20
    """)
    result = run(gbtester, "-v")
    result.assert_outcomes(passed=2)


def test_gb_clock_refuses_to_go_back(gbtester: pytest.Pytester) -> None:
    """gb_clock.advance(-1) (or a NaN, or infinity) is a ValueError saying
    advance takes a non-negative number of seconds; advance(0) is fine."""
    gbtester.makepyfile("""
        import math
        import pytest

        @pytest.mark.asyncio
        @pytest.mark.parametrize("bad", [-1, -0.001, math.nan, math.inf])
        async def test_back(gb_clock, bad):
            with pytest.raises(ValueError, match="advance takes a non-negative number of "
                                                 "seconds"):
                await gb_clock.advance(bad)
            assert gb_clock.elapsed == 0

        @pytest.mark.asyncio
        async def test_zero(gb_clock):
            await gb_clock.advance(0)
            assert gb_clock.elapsed == 0
    """)
    result = run(gbtester)
    result.assert_outcomes(passed=5)


def test_failure_shows_the_sip_exchange(gbtester: pytest.Pytester) -> None:
    """A failing test that used gb_device prints the messages exchanged."""
    gbtester.makepyfile("""
        import pytest

        @pytest.mark.asyncio
        async def test_wrong(gb_device):
            assert gb_device.keepalive_sn == 99
    """)
    result = run(gbtester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*gbsip SIP exchange*",
        "*-> udp://127.0.0.1:*: REGISTER sip:34020000002000000001@3402000000 SIP/2.0",
        "*SIP/2.0 401 Unauthorized",
        "*registrar event DeviceRegistered device=34020000001320000001*",
    ])


def test_fixtures_clean_up_after_a_failing_test(gbtester: pytest.Pytester) -> None:
    """Sockets of the registrar and of every device are closed even when the
    test raises: the process has as many descriptors afterwards as before."""
    gbtester.makepyfile("""
        import os
        import pytest
        SEEN = {}

        def fds():
            return len(os.listdir("/proc/self/fd"))

        def test_0_before():
            SEEN["fds"] = fds()

        @pytest.mark.asyncio
        async def test_1_fails(gb_registrar, gb_device_factory):
            await gb_device_factory()
            await gb_device_factory(register=False)
            raise RuntimeError("boom")

        def test_2_after():
            assert fds() == SEEN["fds"]
    """)
    result = run(gbtester)
    result.assert_outcomes(passed=2, failed=1)


def test_gb_platform_sends_devices_to_that_platform(gbtester: pytest.Pytester,
                                                    tmp_path: Path) -> None:
    """With --gb-platform, gb_device registers there (not to gb_registrar),
    and gb_clock refuses to pretend it controls a real platform's time."""
    gbtester.makepyfile("""
        import pytest
        from gbsip.events import DeviceRegistered

        @pytest.mark.asyncio
        async def test_there(gb_options, gb_registrar, gb_device):
            assert gb_device.server_port == gb_options.platform.port
            assert gb_options.platform.port != gb_registrar.address[1]
            assert gb_registrar.of(DeviceRegistered) == []

        def test_clock(gb_clock):
            pass
    """)
    with ThreadedRegistrar(tmp_path, passwords="secret") as platform:
        result = run(gbtester, f"--gb-platform=udp://127.0.0.1:{platform.port}",
                     "--gb-password=secret", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*gb_clock controls in-process peers only*"])


def test_bad_platform_url_is_a_usage_error(gbtester: pytest.Pytester) -> None:
    """A malformed --gb-platform stops pytest before any test, saying why."""
    gbtester.makepyfile("def test_nothing(): pass")
    result = run(gbtester, "--gb-platform=http://example:80")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--gb-platform*udp:// or tcp://*"])


def test_conformance_summary_table_and_junit_properties(gbtester: pytest.Pytester) -> None:
    """Tests marked as checks get a summary table (result, clause, skip reason
    or failure) and their id and clause as JUnit properties; a failing
    check's message ends with its SIP exchange."""
    gbtester.makepyfile("""
        import pytest
        from gbsip.conformance import check

        @check("X01", "RFC 3261 §8.1")
        def test_fine():
            pass

        @check("X02", "GB/T 28181-2016 §9.6.1")
        def test_not_here():
            pytest.skip("cannot apply here")

        @check("X03", "RFC 3261 §10.3")
        def test_broken(gb_trace):
            gb_trace.sent(b"REGISTER sip:x SIP/2.0\\r\\n\\r\\n", "udp://peer")
            raise gb_trace.fail("it broke")
    """)
    result = run(gbtester, "--junitxml=report.xml")
    result.assert_outcomes(passed=1, skipped=1, failed=1)
    result.stdout.fnmatch_lines([
        "*GB/T 28181 conformance summary*",
        "X01  PASS   fine*RFC 3261 §8.1",
        "X02  SKIP   not_here*GB/T 28181-2016 §9.6.1",
        "*└ cannot apply here",
        "X03  FAIL   broken*RFC 3261 §10.3",
        "*└ it broke",
        "3 checks: 1 passed, 1 failed, 0 errors, 1 skipped",
    ])
    result.stdout.fnmatch_lines(["*SIP exchange (gbsip's view)*", "*gbsip -> udp://peer*"])
    report = (gbtester.path / "report.xml").read_text()
    assert '<property name="gb_check" value="X03" />' in report
    assert '<property name="clause" value="RFC 3261 §10.3" />' in report


def test_no_summary_without_checks(gbtester: pytest.Pytester) -> None:
    """Sessions without conformance checks print no table."""
    gbtester.makepyfile("def test_plain(): pass")
    result = run(gbtester)
    result.assert_outcomes(passed=1)
    assert "conformance summary" not in result.stdout.str()


def test_failures_point_at_the_test_not_the_plugin(gbtester: pytest.Pytester) -> None:
    """Issue 15: a device that cannot register and a recorded event that
    never comes fail at the test's own line, with the reason; the traceback
    does not walk through the plugin, asyncio or gbsip.device."""
    gbtester.makepyfile("""
        import pytest
        from gbsip.events import Offline

        @pytest.mark.asyncio
        async def test_factory_fails(gb_registrar, gb_device_factory):
            await gb_device_factory(password="wrong")

        @pytest.mark.asyncio
        async def test_wait_recorded_times_out(gb_registrar, gb_device):
            await gb_registrar.wait_recorded(Offline, gb_device.device_id, timeout=0.2)
    """)
    result = run(gbtester)
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert "pytest_plugin.py" not in out and "asyncio/tasks.py" not in out, out
    assert "gbsip/device.py" not in out, out
    result.stdout.fnmatch_lines([
        "*await gb_device_factory(password=\"wrong\")*",
        "*device 34020000001320000001 did not register at udp://127.0.0.1:*403 Forbidden*",
        "*await gb_registrar.wait_recorded(Offline, gb_device.device_id, timeout=0.2)*",
        "*TimeoutError: no Offline of 34020000001320000001 within 0.2 s*",
    ])


def test_a_device_that_cannot_register_fails_with_a_public_exception(
        gbtester: pytest.Pytester) -> None:
    """gb_device_factory's device refused: the test sees (and can catch)
    gbsip.errors.RegistrationError with the platform's status, never a
    private class of the conformance suites."""
    gbtester.makepyfile("""
        import pytest
        from gbsip.errors import RegistrationError

        @pytest.mark.asyncio
        async def test_caught(gb_registrar, gb_device_factory):
            with pytest.raises(RegistrationError) as caught:
                await gb_device_factory(password="wrong")
            assert caught.value.status == 403
            assert "SIP exchange" in str(caught.value)

        @pytest.mark.asyncio
        async def test_shown(gb_registrar, gb_device_factory):
            await gb_device_factory(password="wrong")
    """)
    result = run(gbtester)
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "_common" not in out and "CheckFailed" not in out, out
    result.stdout.fnmatch_lines(["*gbsip.errors.RegistrationError: device 34020000001320000001 "
                                 "did not register at udp://127.0.0.1:*403 Forbidden*"])


def test_platform_that_is_not_a_url_is_a_usage_error(gbtester: pytest.Pytester) -> None:
    """`--gb-platform garbage` stops pytest before any test (it used to be
    taken as a host name and fail every test with a gaierror)."""
    gbtester.makepyfile("def test_nothing(): pass")
    result = run(gbtester, "--gb-platform=garbage")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--gb-platform: 'garbage' is not a URL*udp://HOST:PORT*"])
