"""Every Python example of README.md, README.zh-CN.md and docs/*.md is a
whole program that runs as printed (issue 15).

Each example is written to a file and run in a child process against the
installed gbsip: a client against a registrar started here, a platform
with a device registering to it, a test file under pytest, a locustfile
under a headless Locust.  The docs' address convention (127.0.0.1:5060) is
kept: the tests put a free port in place of 5060.
"""
from __future__ import annotations

import collections

import contextlib
import io
import os
import signal
import socket
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance_helpers import CHILD_PYTEST_ARGS, ThreadedRegistrar, peer_env, python_env
from device_helpers import free_port
from docs_snippets import ROOT, Command, Snippet, gbsip_commands, snippets

ALL = snippets()
COMMANDS = gbsip_commands()
TIMEOUT = 90


def _workdir(tmp_path: Path) -> Path:
    """A directory like the repository's root for examples that read its
    files (benchmarks/messages/register.sip), but where they may write."""
    (tmp_path / "benchmarks").symlink_to(ROOT / "benchmarks")
    return tmp_path


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None,
         timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env or python_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_the_docs_have_their_examples() -> None:
    """The extraction finds the examples the docs are known to have, of
    every kind (so a broken pattern cannot make the tests below vacuous)."""
    names = {s.name for s in ALL}
    assert {"README.md#1", "README.md#2", "README.md#3", "README.md#4",
            "README.zh-CN.md#1", "docs/pytest.md#1", "docs/registrar.md#1",
            "docs/simulate.md#1", "docs/device.md#1", "docs/parser.md#1"} <= names
    assert {s.kind for s in ALL} == {"program", "client", "platform", "pytest", "locust"}


@pytest.mark.parametrize("snippet", ALL, ids=[s.name for s in ALL])
def test_example_is_a_whole_program(snippet: Snippet) -> None:
    """No fragment: each example compiles as a module (no top-level
    ``await``/``async with``) and defines or imports every name it uses."""
    compile(snippet.code, snippet.name, "exec")
    if snippet.kind not in ("pytest", "locust"):
        assert "import" in snippet.code, snippet.code


def test_the_docs_have_their_commands() -> None:
    """The sh blocks' gbsip commands are found, every subcommand among them
    (so a broken extraction cannot make the test below vacuous), quoted ones
    (--gb-device-cmd 'exec gbsip simulate ...') included."""
    files = {c.name.rsplit(":", 1)[0] for c in COMMANDS}
    assert {"README.md", "README.zh-CN.md", "docs/simulate.md", "docs/registrar.md",
            "docs/conformance.md"} <= files
    assert any(c.name.startswith("docs/registrar.md:") and tuple(c.argv[:1]) == ("query",)
               for c in COMMANDS)
    assert {c.argv[0] for c in COMMANDS if c.argv} >= {
        "simulate", "serve", "register", "query", "conformance", "--version"}
    # a command quoted inside another's option: two on one line
    per_line = collections.Counter(c.name for c in COMMANDS)
    assert any(n == 2 and name.startswith("docs/conformance.md:")
               for name, n in per_line.items())


@pytest.mark.parametrize("command", COMMANDS, ids=[c.name for c in COMMANDS])
def test_documented_command_parses(command: Command) -> None:
    """Each gbsip command of the docs' sh blocks is accepted by the command
    line as written (parsed, and for simulate checked across options, never
    run): an option that no longer exists, or a value it refuses, fails
    here rather than in a reader's terminal."""
    from gbsip import _cli_args as opt
    from gbsip.cli import build_parser
    from gbsip.simulate_cli import _check_simulate

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            args = build_parser().parse_args(list(command.argv))
        except SystemExit as exc:  # --version, --help: 0; a refusal: 2
            assert exc.code == 0, f"{command}\n{err.getvalue()}"
            return
    if args.command == "simulate":
        try:
            _check_simulate(args)
        except opt.UsageError as exc:
            pytest.fail(f"{command}\ngbsip simulate: {exc}")


def _examples(kind: str) -> list[Snippet]:
    return [s for s in ALL if s.kind == kind]


@pytest.mark.parametrize("snippet", _examples("program"), ids=lambda s: s.name)
def test_standalone_example_runs(snippet: Snippet, tmp_path: Path) -> None:
    path = tmp_path / f"{snippet.module}.py"
    path.write_text(snippet.code)
    done = _run([sys.executable, str(path)], _workdir(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("snippet", _examples("client"), ids=lambda s: s.name)
def test_client_example_runs_against_a_registrar(snippet: Snippet, tmp_path: Path) -> None:
    """Examples that talk to a platform (a camera, the simulator) run to
    their end against a gbsip Registrar on a free port."""
    state = tmp_path / "state"
    state.mkdir()
    with ThreadedRegistrar(state, passwords="12345678") as reg:
        path = tmp_path / f"{snippet.module}.py"
        path.write_text(snippet.with_port(reg.port))
        done = _run([sys.executable, str(path)], _workdir(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("snippet", _examples("platform"), ids=lambda s: s.name)
def test_platform_example_registers_a_device(snippet: Snippet, tmp_path: Path) -> None:
    """Examples that play the platform print the events of a device that
    `gbsip register` registers and unregisters against them."""
    port = free_port()
    path = tmp_path / f"{snippet.module}.py"
    path.write_text(snippet.with_port(port))
    log = tmp_path / "platform.out"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-u", str(path)], cwd=tmp_path,
                                env=python_env(), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            done = _run([sys.executable, "-m", "gbsip", "register", "--server",
                         f"udp://127.0.0.1:{port}", "--timeout", "2", "--quiet"], tmp_path)
            if done.returncode == 0 or time.monotonic() > deadline or proc.poll() is not None:
                break
            time.sleep(0.3)
        assert done.returncode == 0, done.stdout + done.stderr + log.read_text()
        time.sleep(0.3)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    printed = log.read_text()
    assert "DeviceRegistered(" in printed and "34020000001320000001" in printed, printed
    assert "DeviceUnregistered(" in printed, printed


def _listening(port: int) -> bool:
    """Whether something holds UDP ``port`` on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@pytest.mark.parametrize("snippet", _examples("platform"), ids=lambda s: s.name)
def test_platform_example_stops_quietly_on_ctrl_c(snippet: Snippet, tmp_path: Path) -> None:
    """A platform example serves until Ctrl-C, then exits quietly: status
    0, no KeyboardInterrupt traceback."""
    port = free_port()
    path = tmp_path / f"{snippet.module}.py"
    path.write_text(snippet.with_port(port))
    proc = subprocess.Popen([sys.executable, "-u", str(path)], cwd=tmp_path, env=python_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not _listening(port) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out + err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err


INI = """[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
"""


@pytest.mark.parametrize("snippet", _examples("pytest"), ids=lambda s: s.name)
def test_pytest_example_passes(snippet: Snippet, tmp_path: Path) -> None:
    """The docs' tests pass with the installed plugin's fixtures."""
    from gbsip.conformance import plugin_args

    (tmp_path / "pytest.ini").write_text(INI)
    path = tmp_path / f"test_{snippet.module}.py"
    path.write_text(snippet.code)
    done = _run([sys.executable, "-m", "pytest", *CHILD_PYTEST_ARGS, *plugin_args(), "-q",
                 str(path)], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout and "failed" not in done.stdout


@pytest.mark.skipif(bool(os.environ.get("GBSIP_SANITIZED_RUN")),
                    reason="gevent's stack switching under ASan; the unsanitized pass runs it")
@pytest.mark.parametrize("snippet", _examples("locust"), ids=lambda s: s.name)
def test_locustfile_example_runs_headless(snippet: Snippet, tmp_path: Path) -> None:
    """A locustfile of the docs runs headless against a registrar: its
    cameras register, and Locust ends without failures."""
    if importlib.util.find_spec("locust") is None:  # not imported: it gevent-patches
        pytest.skip("locust is not installed")
    state = tmp_path / "state"
    state.mkdir()
    with ThreadedRegistrar(state, passwords="12345678") as reg:
        path = tmp_path / "locustfile.py"
        path.write_text(snippet.code)
        done = _run([sys.executable, "-m", "locust", "-f", str(path), "--headless", "-u", "1",
                     "-r", "1", "-t", "4s", "--only-summary", "--gb-server",
                     f"udp://127.0.0.1:{reg.port}", "--gb-rate", "500"],
                    tmp_path, env=peer_env(), timeout=120)
        assert reg.reg is not None
        registered = reg.reg.stats()["registrations"]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert registered > 0, done.stderr[-3000:]
