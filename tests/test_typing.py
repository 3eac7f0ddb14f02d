"""``mypy --strict`` accepts the code users copy from us (issue 15): every
Python example of README.md, README.zh-CN.md and docs/*.md, and
examples/*.py, checked against the installed gbsip's annotations and stubs
(as msgspec's tests/typing does).  So ``Registrar.wait_for(DeviceRegistered)``
must be typed as a DeviceRegistered, a registered device's ``device_id`` as
a ``str``, the simulator's report as a TypedDict, the fixtures as their
classes.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance_helpers import python_env
from docs_snippets import EXAMPLES, snippets

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("GBSIP_SANITIZED_RUN")),
    reason="types do not depend on the build; the unsanitized pass checks them")


def _mypy(files: list[Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("mypy")
    env = python_env()
    for name in ("LD_PRELOAD", "ASAN_OPTIONS", "PYTHONMALLOC", "UBSAN_OPTIONS"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         "--cache-dir", os.devnull, "--no-error-summary", "--hide-error-context",
         "--show-error-codes", *map(str, files)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)


def test_docs_examples_and_examples_dir_pass_mypy_strict(tmp_path: Path) -> None:
    files = []
    names = {}
    for s in snippets():
        path = tmp_path / f"{s.module}.py"
        path.write_text(s.code)
        files.append(path)
        names[path.name] = s.name
    files += EXAMPLES
    done = _mypy(files, tmp_path)
    report = "\n".join(
        f"{names.get(line.split(':', 1)[0], '')} {line}" for line in done.stdout.splitlines())
    assert done.returncode == 0, report + done.stderr


def test_mypy_catches_a_misuse_of_the_typed_results(tmp_path: Path) -> None:
    """The check has teeth: a misspelt report key, a wrong event attribute
    and a device_id used as an int are errors."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import gbsip\n"
        "from gbsip.events import DeviceRegistered, KeepaliveAnswered\n"
        "async def main(reg: gbsip.Registrar, sim: gbsip.Simulator, dev: gbsip.Device) -> None:\n"
        "    report = await sim.run()\n"
        "    print(report['result']['registerd'])\n"
        "    ev = await reg.wait_for(DeviceRegistered)\n"
        "    print(ev.sn)\n"
        "    n: int = ev.device_id\n"
        "    ka = await dev.wait_for(KeepaliveAnswered)\n"
        "    print(ka.expires)\n")
    done = _mypy([bad], tmp_path)
    assert done.returncode == 1
    out = done.stdout
    assert "registerd" in out and "typeddict-item" in out, out
    assert '"DeviceRegistered" has no attribute "sn"' in out, out
    assert 'expression has type "str", variable has type "int"' in out, out
    assert '"KeepaliveAnswered" has no attribute "expires"' in out, out


def test_wait_for_a_tuple_of_event_classes_is_typed_as_their_union(tmp_path: Path) -> None:
    """``wait_for((A, B))`` is an ``A | B`` (not their base class), on the
    Registrar, the Device and the recording fixture; ``wait_for(A)`` is
    still an ``A``, and a tuple of unknown length the classes' type."""
    code = tmp_path / "unions.py"
    code.write_text(
        "from typing_extensions import assert_type\n"
        "import gbsip\n"
        "from gbsip.events import (DeviceRegistered, DeviceUnregistered, Expired, Failed,\n"
        "                          KeepaliveAnswered, Registered, RegistrarEvent)\n"
        "from gbsip.pytest_plugin import RecordingRegistrar\n"
        "async def main(reg: gbsip.Registrar, dev: gbsip.Device,\n"
        "               rec: RecordingRegistrar) -> None:\n"
        "    assert_type(await reg.wait_for(DeviceRegistered), DeviceRegistered)\n"
        "    assert_type(await reg.wait_for((DeviceRegistered, DeviceUnregistered)),\n"
        "                DeviceRegistered | DeviceUnregistered)\n"
        "    assert_type(await reg.wait_for((DeviceRegistered, DeviceUnregistered, Expired),\n"
        "                                   '34020000001320000001', timeout=1),\n"
        "                DeviceRegistered | DeviceUnregistered | Expired)\n"
        "    kinds: tuple[type[RegistrarEvent], ...] = (DeviceRegistered,)\n"
        "    assert_type(await reg.wait_for(kinds), RegistrarEvent)\n"
        "    assert_type(await dev.wait_for(KeepaliveAnswered), KeepaliveAnswered)\n"
        "    assert_type(await dev.wait_for((Registered, Failed), timeout=3),\n"
        "                Registered | Failed)\n"
        "    assert_type(await rec.wait_recorded((DeviceRegistered, Expired)),\n"
        "                DeviceRegistered | Expired)\n"
        "    assert_type(rec.of((DeviceRegistered, Expired)), list[DeviceRegistered | Expired])\n")
    done = _mypy([code], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
