"""The device suite's query checks (D12-D15, ``--gb-queries``: GB/T 28181
§9.5 Catalog with SumNum, §9.5.3 DeviceInfo, SN echo and charset, 200
before the answer) against the scripted camera of tests/scripted_camera.py:
one that answers as the standard says passes them; a broken one (wrong SN,
no SumNum, the answer before the 200) fails exactly the checks that look
at those.
"""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from conformance_helpers import run_suite
from device_helpers import free_port

QUERIES = {f"D{n}" for n in range(12, 22)}

CAMERA = '''
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
from scripted_camera import Script, ScriptedCamera

async def main() -> None:
    cam = ScriptedCamera("34020000001320000001", (sys.argv[2], int(sys.argv[3])), "udp",
                         Script(**json.loads(sys.argv[4])))
    await cam.open()
    await cam.register()
    await asyncio.sleep(60)

asyncio.run(main())
'''


def _suite(tmp_path: Path, script: dict[str, object]) -> tuple[dict[str, str], str, dict[str, str]]:
    camera = tmp_path / "camera.py"
    camera.write_text(CAMERA)
    tests_dir = str(Path(__file__).parent)
    cmd = (f"exec {shlex.quote(sys.executable)} {shlex.quote(str(camera))} "
           f"{shlex.quote(tests_dir)} {{host}} {{port}} {shlex.quote(json.dumps(script))}")
    run = run_suite("device", [
        f"--gb-listen=udp://127.0.0.1:{free_port()}", f"--gb-device-cmd={cmd}",
        "--gb-register-timeout=10", "--gb-timeout=2", "--gb-queries",
        "-k", "test_query_ or test_registers_within_timeout",
    ], tmp_path)
    return run.results, run.output, run.messages


def test_query_checks_pass_against_a_camera_that_answers_as_the_standard_says(
        tmp_path: Path) -> None:
    results, output, _ = _suite(tmp_path, {"channels": 5, "part_size": 2, "order": [2, 0, 1]})
    assert {cid: results.get(cid) for cid in QUERIES | {"D01"}} == {
        cid: "passed" for cid in QUERIES | {"D01"}}, output


def test_query_checks_catch_a_broken_camera(tmp_path: Path) -> None:
    """Wrong SN, no SumNum and the Response before the 200: D12 (SumNum),
    D14 (SN echo), D15 (ordering) and D18 (RecordInfo SumNum) fail; a
    DeviceStatus without Online/Status/DeviceTime fails D16, a BasicParam
    Expiration other than the registered lifetime D17, a single position
    NOTIFY D21, a PTZ command answered Result ERROR D19; each says what it
    saw.  The Catalog subscription (D20) is not broken and passes."""
    results, output, messages = _suite(
        tmp_path, {"channels": 3, "part_size": 2, "sn_offset": 7, "sum_num": False,
                   "response_first": True, "device_status": False,
                   "config_expiration": 1234, "positions": False, "ptz_result": "ERROR"})
    assert results.get("D12") == "failed" and "without SumNum" in messages["D12"], output
    assert results.get("D14") == "failed" and "SN" in messages["D14"], output
    assert results.get("D15") == "failed" and "before the 200" in messages["D15"], output
    assert results.get("D16") == "failed" and "no Online" in messages["D16"], output
    assert results.get("D17") == "failed" and "Expiration 1234" in messages["D17"], output
    assert results.get("D18") == "failed" and "without SumNum" in messages["D18"], output
    assert results.get("D21") == "failed" and "NOTIFY" in messages["D21"], output
    assert results.get("D19") == "failed" and "Result ERROR" in messages["D19"], output
    assert results.get("D20") == "passed", output


def test_query_checks_are_not_run_without_the_option(tmp_path: Path) -> None:
    run = run_suite("device", [], tmp_path)
    assert not QUERIES & set(run.results), run.output


def _passes(tmp_path: Path, camera: str) -> None:
    """Every query check passes against the camera that command starts
    (--gb-timeout 2 as for the scripted camera)."""
    from test_conformance_device import TIMING
    run = run_suite("device", [
        f"--gb-listen=udp://127.0.0.1:{free_port()}", f"--gb-device-cmd={camera}",
        "--gb-register-timeout=10", "--gb-queries", *TIMING, "--gb-timeout=2",
        "-k", "test_query_ or test_registers_within_timeout",
    ], tmp_path)
    assert {cid: run.results.get(cid) for cid in QUERIES} == {
        cid: "passed" for cid in QUERIES}, run.output


def test_query_checks_pass_against_gbsip_device(tmp_path: Path) -> None:
    """gbsip's own Device answers its platform (the camera side of issue
    13): D12-D21 pass against it."""
    from test_conformance_device import _device_cmd
    _passes(tmp_path, _device_cmd(tmp_path))


def test_query_checks_pass_against_gbsip_simulate(tmp_path: Path) -> None:
    """`gbsip simulate` (one device) answers the platform like gbsip's
    Device: D12-D21 pass against it too."""
    _passes(tmp_path, f"exec {shlex.quote(sys.executable)} -m gbsip simulate --server "
                      "udp://{host}:{port} --devices 1 --duration 3600 --keepalive 0.3 "
                      "--keepalive-count 3 --retry 1 --t1 0.1 --quiet")
