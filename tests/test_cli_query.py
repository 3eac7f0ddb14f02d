"""``gbsip query DEVICE_ID QUERY --listen HOST:PORT``: one device queried
by hand (GB/T 28181 §9.5) through the command's own registrar, run as a
person would (``python -m gbsip`` in a subprocess) against the scripted
camera of tests/scripted_camera.py.
"""
from __future__ import annotations

import asyncio
import json
import socket
import sys

import pytest

from scripted_camera import Script, ScriptedCamera
from test_cli import _CHILD, _env, gbsip
from test_registrar_asyncio import dev


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _query(*extra: str, script: Script | None = None) -> tuple[int, str, str]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gbsip", "query", dev(1), *extra,
        "--listen", f"127.0.0.1:{port}", "--transport", "udp", "--wait", "10",
        "--timeout", "3", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=_env(GBSIP_LOOP="asyncio"), **_CHILD)
    assert proc.stdout is not None and proc.stderr is not None
    first = b""
    if "--json" not in extra:
        first = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert first.startswith(b"waiting for"), first
    else:
        await asyncio.sleep(1.5)  # no line to wait for: give it time to listen
    cam = await ScriptedCamera(dev(1), ("127.0.0.1", port), "udp", script).open()
    try:
        await cam.register()
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        await cam.close()
    return proc.returncode or 0, first.decode() + out.decode(), err.decode()


def test_query_catalog_prints_the_exchange() -> None:
    code, out, err = asyncio.run(_query("catalog", script=Script(channels=3, part_size=2)))
    assert code == 0, err
    assert "< REGISTER from 127.0.0.1:" in out
    assert "> MESSAGE Query Catalog to 127.0.0.1:" in out
    assert "< 200 OK" in out
    assert "2 part(s), SumNum 3, 3 item(s)" in out and "complete" in out
    assert f"{dev(1)[:14]}000003  通道3  ON" in out


def test_query_json_and_partial_answer_exit_status() -> None:
    code, out, err = asyncio.run(_query("catalog", "--json",
                                        script=Script(channels=4, part_size=2, lose={0})))
    assert code == 1, err
    doc = json.loads(out.strip().splitlines()[-1])
    r = doc["result"]
    assert (r["cmd_type"], r["sum_num"], r["missing"], r["complete"]) == ("Catalog", 4, 2, False)
    assert len(r["items"]) == 2


def test_query_shows_the_fields_beside_the_items() -> None:
    """Issue 13: a DeviceStatus or ConfigDownload answer is shown whole:
    top-level values (Online, Status) and a group's by path
    (BasicParam/Expiration), also when the answer has an item list."""
    code, out, err = asyncio.run(_query("devicestatus"))
    assert code == 0, err
    assert "  Online: ONLINE" in out and "  Status: OK" in out, out
    code, out, err = asyncio.run(_query("configdownload", "--json"))
    assert code == 0, err
    fields = json.loads(out.strip().splitlines()[-1])["result"]["fields"]
    assert fields["Result"] == "OK" and fields["BasicParam/Expiration"] == "3600", fields
    assert fields["BasicParam/HeartBeatCount"] == "3", fields


def test_query_device_never_registers() -> None:
    res = gbsip("query", dev(1), "deviceinfo", "--listen", f"127.0.0.1:{free_port()}",
                "--wait", "0.3")
    assert res.returncode == 1
    assert "did not register" in res.stderr and "point the device" in res.stderr


@pytest.mark.parametrize("args, message", [
    (["catalog", "--listen", "nohost"], "wants HOST:PORT"),
    (["weather"], "invalid choice"),
    (["recordinfo"], "--start and --end"),
])
def test_query_usage_errors(args: list[str], message: str) -> None:
    res = gbsip("query", dev(1), *args)
    assert res.returncode == 2 and message in res.stderr, res.stderr


def test_serve_queries_each_new_device_and_shows_its_channels() -> None:
    """``gbsip serve`` asks DeviceInfo then Catalog after a first
    registration (as WVP does) and prints a line per answer, the Catalog's
    with its channel count."""
    async def scenario() -> tuple[int, str, str]:
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gbsip", "serve", "--port", str(port), "--transport", "udp",
            "--no-store", "--duration", "3", stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=_env(GBSIP_LOOP="asyncio"), **_CHILD)
        assert proc.stdout is not None
        await asyncio.wait_for(proc.stdout.readline(), 20)  # listening
        cam = await ScriptedCamera(dev(1), ("127.0.0.1", port), "udp",
                                   Script(channels=5, part_size=2)).open()
        try:
            await cam.register()
            out, err = await asyncio.wait_for(proc.communicate(), 20)
        finally:
            await cam.close()
        return proc.returncode or 0, out.decode(), err.decode()

    code, out, err = asyncio.run(scenario())
    assert code == 0, err
    lines = [line for line in out.splitlines() if "QueryCompleted" in line]
    assert len(lines) == 2, out
    assert "DeviceInfo 大门 complete" in lines[0]
    assert "Catalog channels=5/5 complete" in lines[1]


def test_serve_query_on_register_can_be_turned_off() -> None:
    res = gbsip("serve", "--port", "0", "--no-store", "--duration", "0.2",
                "--query-on-register", "weather")
    assert res.returncode == 2 and "--query-on-register: unknown query 'weather'" in res.stderr
