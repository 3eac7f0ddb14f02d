"""Packaging: gbsip builds into a wheel that installs and works on its own.

The wheel is built from a copy of the source tree without build products,
with this interpreter's setuptools (--no-build-isolation, --no-index), so the
test needs no package index.  It is installed into a fresh virtual
environment and used from there with python -I, so nothing from the source
tree or this environment can stand in for it.
"""
from __future__ import annotations

import importlib.resources
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import gbsip

ROOT = Path(__file__).resolve().parent.parent

# The seed's first REGISTER (shared/seed), as the camera sent it.
SEED_REGISTER = (
    b"REGISTER sip:192.168.10.177:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.168.10.117:5061;rport=5061;branch=z9hG4bK2509000523;"
    b"received=192.168.10.117\r\n"
    b"From: <sip:34020000001320000001@192.168.10.177>;tag=2577708869\r\n"
    b"To: <sip:34020000001320000001@192.168.10.177>\r\n"
    b"Call-ID: 939764460\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"Contact: <sip:34020000001320000001@192.168.10.117:5061;line=6513f93347c330b>\r\n"
    b"Max-Forwards: 70\r\n"
    b"User-Agent: eXosip/3.6.0\r\n"
    b"Expires: 3600\r\n"
    b'Authorization: Capability, algorithm="H:MD5"\r\n'
    b"Content-Length: 0\r\n"
    b"\r\n"
)

# Run inside the fresh venv: parse the seed REGISTER, report what it read.
PROBE = """
import json, sys
import gbsip, gbsip._core
data = sys.stdin.buffer.read()
msg = gbsip.parse(data)
print(json.dumps({
    "gbsip_file": gbsip.__file__,
    "core_file": gbsip._core.__file__,
    "version": gbsip.__version__,
    "type": type(msg).__name__,
    "method": msg.method,
    "uri": msg.uri,
    "call_id": msg.call_id,
    "cseq": [msg.cseq.number, msg.cseq.method],
    "from_tag": msg.from_.tag,
    "expires": msg.expires,
}))
"""

_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "*.so", "*.o",
    "__pycache__", ".hypothesis", ".pytest_cache",
)


def _clean_env() -> dict[str, str]:
    """The environment minus anything that would change the build or the
    interpreter: sanitizer switches and preloads, PYTHONPATH, pip config."""
    drop = ("LD_PRELOAD", "PYTHONPATH", "PYTHONHOME", "PYTHONMALLOC")
    return {
        k: v for k, v in os.environ.items()
        if k not in drop and not k.startswith(("GBSIP_", "ASAN_", "UBSAN_", "PIP_"))
    }


def _run(cmd: list[str], cwd: Path, stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(cmd, cwd=cwd, env=_clean_env(), input=stdin,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=600)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout.decode(errors='replace')}")
    return proc.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if os.environ.get("GBSIP_SANITIZED_RUN"):
        pytest.skip("builds a plain wheel: the unsanitized pass covers it")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=_IGNORE)
    dist = tmp / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index",
          "--no-build-isolation", "--disable-pip-version-check", "-q",
          "-w", str(dist), str(src)], cwd=tmp)
    wheels = sorted(dist.glob("gbsip-*.whl"))
    assert len(wheels) == 1, f"expected one gbsip wheel, found {wheels}"
    yield wheels[0]


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("venv")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp)
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "--no-index", "--no-deps",
          "--disable-pip-version-check", "-q", str(wheel)], cwd=tmp)
    return python


@pytest.mark.slow
def test_wheel_contains_extension_stubs_and_marker(wheel: Path) -> None:
    """Issue 2: `pip wheel .` makes a wheel holding the compiled _core, its
    .pyi stub and the PEP 561 py.typed marker."""
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("gbsip/_core.") and n.endswith(".so") for n in names), names
    assert "gbsip/_core.pyi" in names
    assert "gbsip/py.typed" in names
    assert "gbsip/__init__.py" in names


@pytest.mark.slow
def test_wheel_installs_and_parses_seed_register_in_fresh_venv(fresh_venv: Path) -> None:
    """Issue 2: the wheel installs into a fresh virtual environment, imports
    from there (not from the source tree) and parses the seed REGISTER."""
    venv = fresh_venv.parent.parent
    # -I: no PYTHONPATH, no user site, no current directory on sys.path.
    out = _run([str(fresh_venv), "-I", "-c", PROBE], cwd=venv,
               stdin=SEED_REGISTER)
    got = json.loads(out)
    for key in ("gbsip_file", "core_file"):
        assert Path(got[key]).resolve().is_relative_to(venv.resolve()), got[key]
    assert got["version"] == gbsip.__version__
    assert got["type"] == "Request"
    assert got["method"] == "REGISTER"
    assert got["uri"] == "sip:192.168.10.177:5060"
    assert got["call_id"] == "939764460"
    assert got["cseq"] == [1, "REGISTER"]
    assert got["from_tag"] == "2577708869"
    assert got["expires"] == 3600


def test_installed_package_ships_stubs_and_py_typed() -> None:
    """PEP 561: the installed gbsip carries py.typed and the _core.pyi stub
    beside the compiled extension, so type checkers see the C API."""
    pkg = importlib.resources.files("gbsip")
    assert pkg.joinpath("py.typed").is_file()
    stub = pkg.joinpath("_core.pyi")
    assert stub.is_file()
    assert "def parse(" in stub.read_text(encoding="utf-8")


def _run_status(cmd: list[str], cwd: Path, timeout: float = 120) -> tuple[int, str]:
    proc = subprocess.run(cmd, cwd=cwd, env=_clean_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=timeout)
    return proc.returncode, proc.stdout.decode(errors="replace")


@pytest.mark.slow
def test_cli_help_works_in_a_bare_venv_without_pytest(fresh_venv: Path) -> None:
    """Issue 12: `pip install . && gbsip --help` works where pytest is not
    installed (the conformance suites are imported only when run)."""
    venv = fresh_venv.parent.parent
    rc, out = _run_status([str(fresh_venv), "-I", "-c", "import pytest"], cwd=venv)
    assert rc != 0, "the fresh venv must not have pytest for this test to mean anything"
    for args in (["--help"], ["simulate", "--help"], ["serve", "--help"],
                 ["conformance", "platform", "--help"]):
        rc, out = _run_status([str(venv / "bin" / "gbsip"), *args], cwd=venv)
        assert rc == 0, f"gbsip {' '.join(args)} exited {rc}:\n{out}"
        assert "usage:" in out


@pytest.mark.slow
def test_simulate_runs_in_a_bare_venv_without_pytest(fresh_venv: Path) -> None:
    """Issue 12: the README's first command, `gbsip simulate` against the
    embedded registrar, runs in a bare venv (no pytest, no uvloop)."""
    venv = fresh_venv.parent.parent
    rc, out = _run_status([str(venv / "bin" / "gbsip"), "simulate", "--devices", "20",
                           "--duration", "0.5", "--rate", "200"], cwd=venv)
    assert rc == 0, out
    assert "registered" in out


@pytest.mark.slow
def test_conformance_without_pytest_names_the_extra_to_install(fresh_venv: Path) -> None:
    """Issue 12: `gbsip conformance` without pytest says what to install
    (`gbsip[conformance]`) in one line and exits 2, no traceback."""
    venv = fresh_venv.parent.parent
    rc, out = _run_status([str(venv / "bin" / "gbsip"), "conformance", "platform",
                           "--gb-platform", "udp://127.0.0.1:5060"], cwd=venv)
    assert rc == 2, out
    assert "gbsip[conformance]" in out
    assert "Traceback" not in out


@pytest.fixture(scope="module")
def source_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The source tree without any built extension, as a fresh clone has it."""
    src = tmp_path_factory.mktemp("checkout") / "gbsip-src"
    shutil.copytree(ROOT, src, ignore=_IGNORE)
    return src


@pytest.mark.parametrize("cmd", [["-c", "import gbsip"], ["-S", "-m", "gbsip", "--help"]],
                         ids=["import", "python-m-nothing-installed"])
def test_import_from_an_unbuilt_source_tree_says_what_to_do(
        source_copy: Path, cmd: list[str]) -> None:
    """Issue 12/15: importing gbsip from a checkout without a built _core
    (or `python -m gbsip` there with no gbsip installed: -S leaves out
    site-packages) names the cause and both ways out, instead of a bare
    ModuleNotFoundError, and without a traceback for `python -m`."""
    rc, out = _run_status([sys.executable, *cmd], cwd=source_copy)
    assert rc != 0
    assert "gbsip._core" in out and "not built" in out, out
    assert "build_ext --inplace" in out and "another directory" in out, out
    assert "ModuleNotFoundError" not in out
    if "-m" in cmd:
        assert "Traceback" not in out, out


def test_python_m_gbsip_in_an_unbuilt_source_tree_runs_the_installed_gbsip(
        source_copy: Path) -> None:
    """Issue 15: after `pip install .`, `python -m gbsip` typed in the
    checkout (README.zh-CN recommends it) runs the installed gbsip instead
    of failing on the tree's missing _core."""
    rc, out = _run_status([sys.executable, "-m", "gbsip", "simulate", "--devices", "20",
                           "--duration", "1", "--quiet"], cwd=source_copy)
    assert rc == 0, out
    assert "registered        20 when the hold ended" in out, out


def test_python_m_gbsip_in_the_checkout_runs_a_gbsip_installed_inside_it(
        source_copy: Path) -> None:
    """Issue 15: `./run-tests` makes its venv inside the checkout
    (`.venv/`); `python -m gbsip` typed in the checkout runs the gbsip
    installed there, which is not the tree's own unbuilt package."""
    if os.environ.get("GBSIP_SANITIZED_RUN"):
        pytest.skip("copies the sanitized build, which needs the runtime preloaded: "
                    "the plain pass covers the path logic")
    site = source_copy / ".venv" / "site-packages"
    shutil.copytree(Path(gbsip.__file__).parent, site / "gbsip")
    env = {**_clean_env(), "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-m", "gbsip", "--version"], cwd=source_copy,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=120)
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0 and "not built" not in out, out
