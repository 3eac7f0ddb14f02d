"""benchmarks/bench_catalog.py at a tiny scale: the gbsip.Registrar driver
queries Catalog from every camera of gbsip's simulator (4-channel IPCs and
64-channel NVRs) and of sipp playing cameras (benchmarks/sipp/), and every
answer comes whole (issue 13, "Scale").  Figures live in docs/benchmarks.md;
this only checks that the benchmark and its sipp scenarios work."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_catalog.py"


def run_bench(*args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-P", str(BENCH), "--json", "--max-seconds", "40",
         "--query-timeout", "10", "--window", "50", *args],
        capture_output=True, text=True, timeout=120, cwd=BENCH.parent.parent.parent)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_registrar_driver_gets_every_catalog_of_the_simulator() -> None:
    fig = run_bench("--devices", "60", "--nvrs", "2")
    assert fig["simulator"] == "gbsip"
    assert (fig["registered"], fig["answered"], fig["lost"]) == (62, 62, 0)
    assert (fig["camera_catalogs"], fig["nvr_catalogs"], fig["items"]) == (60, 2, 60 * 4 + 2 * 64)
    assert fig["partial"] == fig["timeouts"] == fig["wrong_count"] == 0
    assert fig["fleet_bytes_per_device"] > 0


@pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed")
def test_registrar_driver_gets_every_catalog_of_sipp_cameras() -> None:
    fig = run_bench("--cameras", "sipp", "--devices", "40", "--sipp-rate", "500")
    assert fig["simulator"] == "sipp"
    assert (fig["registered"], fig["answered"], fig["lost"]) == (40, 40, 0)
    assert (fig["camera_catalogs"], fig["items"], fig["parts"]) == (40, 160, 160)
    assert fig["duplicates"] == fig["early"] == 0
