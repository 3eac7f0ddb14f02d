"""Registration load benchmarks (issues 4 and 6): gbsip against Kamailio and sipp.

Three measurements, each a subcommand; every run is bounded in count and in
time, loopback only, and every process started here runs in its own session
and is stopped by its pid / process group:

``targets``
    The same generator (sipp, ``tests/data/sipp/register_digest.xml``:
    REGISTER, 401, REGISTER with Digest, 200; one call per device, distinct
    device IDs from an injection file) loads the gbsip Registrar and a
    Kamailio registrar (``benchmarks/load/kamailio_registrar.cfg``: auth +
    registrar + usrloc in memory, 2 children) at increasing ``-r`` rates;
    a fresh server per run.  A step is clean when no call failed, nothing
    was retransmitted and sipp reached 95% of the asked rate.  With
    ``--simulate`` the gbsip simulator is a second generator against both.
``generators``
    sipp and ``gbsip simulate`` drive the same gbsip Registrar (and
    Kamailio with ``--kamailio``) at increasing rates: the highest clean
    registrations/s of each generator.
``scale``
    ``gbsip simulate`` registers N devices and keeps them alive against the
    gbsip Registrar in another process: ramp rate, memory per device on
    each side, CPU of both at steady state (from /proc/PID/stat).
``tcp-scale``
    ``scale`` twice in one run, the same N devices at the same asked rate,
    over UDP then over TCP (one connection per device, from several
    127.0.0.x sources), each against a fresh registrar listening on both:
    ramp rate, registrar CPU per registration, steady-state CPU and memory
    per device, side by side (issue 12's targets).  Every TCP device is a
    descriptor on each side: the hard limit on open files is raised first
    where root may, else the run stops with one line saying what is needed.
``tcp-spread``
    N TCP devices on one machine when one process may not hold N
    descriptors: ``gbsip serve --workers P`` (P registrar processes on one
    port, SO_REUSEPORT) against P ``gbsip simulate`` processes of N/P
    devices each; every device registered and keeping alive, connections
    counted on the registrar's side with `ss`.

Results are printed as a table and written as JSON (``--out``).  See
docs/benchmarks.md, section "Registration load", for the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
LOAD = HERE / "load"
SCENARIO = HERE.parent / "tests" / "data" / "sipp" / "register_digest.xml"
KAMAILIO_CFG = LOAD / "kamailio_registrar.cfg"
SERVE_QUIET = LOAD / "serve_quiet.py"
SERVER_ID = "34020000002000000001"
PASSWORD = "12345678"
TCP_PORTS_PER_HOST = 4000  # TCP devices per source address, as gbsip.simulator's default
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------------------
# processes


def free_port() -> int:
    """A port free on 127.0.0.1 for UDP and TCP."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port on 127.0.0.1")


def group_pids(pgid: int) -> list[int]:
    """Processes whose process group is pgid (Kamailio forks its workers)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            out.append(int(name))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the given processes, seconds."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
        except OSError:
            continue
    return total


def loadavg() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


class Proc:
    """A child in its own session; stop() ends it and its process group."""

    def __init__(self, cmd: list[str], **kw: Any) -> None:
        self.cmd = cmd
        # `python -m gbsip` from the repository root would import the source
        # tree (no built _core) instead of the installed package.
        kw.setdefault("cwd", tempfile.gettempdir())
        self.popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True, **kw)
        self.pid = self.popen.pid

    def pids(self) -> list[int]:
        return group_pids(self.pid) or [self.pid]

    def stop(self, timeout: float = 10) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        try:
            os.killpg(self.pid, signal.SIGKILL)  # workers that outlive the main process
        except (ProcessLookupError, PermissionError):
            pass


def probe(port: int, timeout: float = 0.2) -> bool:
    """A REGISTER without credentials: any registrar answers (401) once up."""
    msg = (f"REGISTER sip:{SERVER_ID}@127.0.0.1:{port} SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bKprobe" + str(time.monotonic_ns()) + "\r\n"
           "From: <sip:34020000001399999999@3402000000>;tag=p\r\n"
           "To: <sip:34020000001399999999@3402000000>\r\n"
           "Call-ID: probe\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n"
           "Contact: <sip:34020000001399999999@127.0.0.1:9>\r\nExpires: 3600\r\n"
           "Content-Length: 0\r\n\r\n").encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(timeout)
        s.sendto(msg, ("127.0.0.1", port))
        try:
            return s.recv(4096).startswith(b"SIP/2.0 ")
        except OSError:
            return False


def wait_answering(proc: Proc, port: int, log: Any, kind: str, seconds: float = 15) -> None:
    """Until the server started as `proc` answers a probe on `port`; stops
    it and raises with the end of its log when it exits or takes too long."""
    deadline = time.monotonic() + seconds
    while not probe(port):
        if proc.popen.poll() is not None or time.monotonic() > deadline:
            proc.stop()
            log.seek(0)
            raise RuntimeError(f"{kind} did not start: {log.read()[-2000:]!r}")


# --------------------------------------------------------------------------
# targets (servers)


@dataclass
class Target:
    name: str
    proc: Proc
    port: int
    workdir: str
    log: Any

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pids())

    def stop(self) -> str:
        self.proc.stop()
        self.log.close()
        return Path(self.log.name).read_text(errors="replace")


def start_target(kind: str, workdir: str) -> Target:
    """kind: gbsip-serve (``gbsip serve --quiet-keepalives``, output to a
    file), gbsip (benchmarks/load/serve_quiet.py: same Registrar, no
    per-event output) or kamailio."""
    port = free_port()
    log = open(f"{workdir}/{kind}-{port}.log", "w+b")
    if kind == "gbsip-serve":
        cmd = [sys.executable, "-m", "gbsip", "serve", "--port", str(port), "--transport", "udp",
               "--quiet-keepalives", "--min-expires", "60", "--password", PASSWORD,
               "--server-id", SERVER_ID, "--rate-per-source", "0"]
    elif kind == "gbsip":
        cmd = [sys.executable, str(SERVE_QUIET), "--port", str(port), "--password", PASSWORD,
               "--server-id", SERVER_ID]
    elif kind == "gbsip-workers":
        # one registrar process per core on one port (SO_REUSEPORT), no events
        cmd = [sys.executable, "-m", "gbsip", "serve", "--port", str(port), "--transport", "udp",
               "--workers", str(os.cpu_count() or 2), "--quiet", "--min-expires", "60",
               "--password", PASSWORD, "--server-id", SERVER_ID, "--rate-per-source", "0"]
    elif kind == "kamailio":
        cmd = ["kamailio", "-f", str(KAMAILIO_CFG), "-l", f"udp:127.0.0.1:{port}", "-E", "-DD",
               "-n", "2", "-Y", workdir, "-P", f"{workdir}/kamailio-{port}.pid",
               "-m", "1024", "-M", "16", "-b", "4194304"]  # 4 MB socket buffer, as gbsip asks
    else:
        raise ValueError(kind)
    proc = Proc(cmd, stdout=log, stderr=subprocess.STDOUT)
    wait_answering(proc, port, log, kind)
    time.sleep(0.2)
    return Target(kind, proc, port, workdir, log)


# --------------------------------------------------------------------------
# generators


def write_devices(path: Path, count: int) -> None:
    """sipp injection file: device ID; server ID; password (one line per device)."""
    with open(path, "w") as f:
        f.write("SEQUENTIAL\n")
        for i in range(count):
            f.write(f"340200000013{i:08d};{SERVER_ID};{PASSWORD};\n")


@dataclass
class Run:
    generator: str
    target: str
    rate: float                 # asked, registrations started per second
    count: int
    achieved: float = 0.0       # successful registrations / seconds from start to the last one
    successful: int = 0
    failed: int = 0
    retransmissions: int = 0
    seconds: float = 0.0
    gen_cpu: float = 0.0        # cores used by the generator over the run
    target_cpu: float = 0.0     # cores used by the server over the run
    target_us_per_reg: float = 0.0  # server CPU per successful registration
    load: float = 0.0
    note: str = ""
    clean: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def judge(self) -> None:
        self.clean = (self.failed == 0 and self.retransmissions == 0
                      and self.successful == self.count and self.achieved >= 0.95 * self.rate)


def run_sipp(target: Target, rate: float, count: int, devices: Path, workdir: str,
             max_seconds: float) -> Run:
    run = Run("sipp", target.name, rate, count, load=loadavg())
    stat = Path(workdir) / f"sipp-{target.port}-{int(rate)}.csv"
    stat.unlink(missing_ok=True)
    timeout = int(max_seconds)
    cmd = ["sipp", "-sf", str(SCENARIO), "-inf", str(devices), "-t", "u1",
           "-i", "127.0.0.1", "-p", str(free_port()), "-m", str(count), "-r", str(int(rate)),
           "-l", str(max(1000, int(rate) * 4)), "-buff_size", "4194304",
           "-timeout", f"{timeout}s", "-timeout_error", "-nostdin",
           "-trace_stat", "-stf", str(stat), "-fd", "1", f"127.0.0.1:{target.port}"]
    t_cpu0 = target.cpu()
    t0 = time.monotonic()
    proc = Proc(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    gen_cpu = 0.0
    while proc.popen.poll() is None:
        gen_cpu = cpu_seconds([proc.pid]) or gen_cpu  # last sample before it exits
        if time.monotonic() - t0 > timeout + 15:
            proc.stop()
            run.note = "sipp overran -timeout"
            break
        time.sleep(0.1)
    wall = time.monotonic() - t0
    t_cpu = target.cpu() - t_cpu0
    err = proc.popen.stderr.read().decode(errors="replace") if proc.popen.stderr else ""
    lines = stat.read_text().splitlines() if stat.exists() else []
    if len(lines) < 2:
        run.note = f"no sipp statistics: {err[-300:]}"
        return run
    head = lines[0].split(";")
    last = lines[-1].split(";")
    col = {name: i for i, name in enumerate(head)}
    start = float(last[col["StartTime"]].split("\t")[-1])
    now = float(last[col["CurrentTime"]].split("\t")[-1])
    run.successful = int(last[col["SuccessfulCall(C)"]])
    run.failed = int(last[col["FailedCall(C)"]])
    run.retransmissions = int(last[col["Retransmissions(C)"]])
    run.seconds = round(now - start, 3)
    run.achieved = round(run.successful / run.seconds, 1) if run.seconds > 0 else 0.0
    run.gen_cpu = round(gen_cpu / wall, 2)
    run.target_cpu = round(t_cpu / wall, 2)
    run.target_us_per_reg = round(t_cpu / run.successful * 1e6, 1) if run.successful else 0.0
    run.judge()
    return run


def run_simulate(target: Target, rate: float, count: int, workdir: str, max_seconds: float,
                 extra_args: list[str] | None = None) -> Run:
    """``gbsip simulate`` registering `count` devices at `rate`/s and leaving
    them registered (keepalives every hour, so only registrations load)."""
    run = Run("gbsip-simulate", target.name, rate, count, load=loadavg())
    ramp = count / rate
    cmd = [sys.executable, "-m", "gbsip", "simulate", "--server", f"udp://127.0.0.1:{target.port}",
           "--devices", str(count), "--rate", str(int(rate)), "--duration", f"{ramp + 3:.1f}",
           "--keepalive", "3600", "--no-unregister", "--no-capability", "--json", "--quiet",
           "--password", PASSWORD, "--server-id", SERVER_ID, "--id-prefix", "3402000000132",
           "--id-start", "0", "--no-answer-timeout", "10"] + (extra_args or [])
    out = Path(workdir) / f"simulate-{target.port}-{int(rate)}.json"
    t_cpu0 = target.cpu()
    t0 = time.monotonic()
    with open(out, "wb") as f:
        proc = Proc(cmd, cwd=workdir, stdout=f, stderr=subprocess.PIPE)
        gen_cpu = 0.0
        while proc.popen.poll() is None:
            gen_cpu = cpu_seconds([proc.pid]) or gen_cpu
            if time.monotonic() - t0 > max_seconds:
                proc.stop()
                run.note = "simulate overran its time bound"
                break
            time.sleep(0.1)
    wall = time.monotonic() - t0
    t_cpu = target.cpu() - t_cpu0
    try:
        rep = json.loads(out.read_text())
    except (OSError, ValueError):
        err = proc.popen.stderr.read().decode(errors="replace") if proc.popen.stderr else ""
        run.note = f"no JSON report (exit {proc.popen.returncode}): {err[-300:]}"
        return run
    tot, msgs, rmp = rep["totals"], rep["messages"], rep["ramp"]
    run.successful = rep["result"]["ever_registered"]
    run.failed = tot["failures"] + tot["timeouts"] + (count - run.successful)
    run.retransmissions = msgs["retransmitted"]
    run.seconds = rmp["seconds"]
    run.achieved = rmp["achieved_rate"]
    run.gen_cpu = round(gen_cpu / wall, 2)
    run.target_cpu = round(t_cpu / wall, 2)
    run.target_us_per_reg = round(t_cpu / run.successful * 1e6, 1) if run.successful else 0.0
    run.extra = {"latency_ms": rep["latency_ms"]["register"], "peak_rate": rmp.get("peak_rate"),
                 "memory": rep.get("memory")}
    run.judge()
    return run


# --------------------------------------------------------------------------
# rate stepping


def step_rates(args: argparse.Namespace, generator: str, target_kinds: list[str],
               rates: list[float], workdir: str, devices: Path,
               results: list[Run]) -> dict[str, float]:
    """For each rate (ascending), each target still clean: best of
    --repeat runs, each on a fresh server.  A target drops out after its
    first rate with no clean run.  Returns the highest clean rate per target."""
    best: dict[str, float] = {k: 0.0 for k in target_kinds}
    alive = list(target_kinds)
    for rate in rates:
        if not alive:
            break
        count = int(rate * args.seconds)
        for kind in list(alive):
            runs: list[Run] = []
            for _ in range(args.repeat):
                tgt = start_target(kind, workdir)
                try:
                    if generator == "sipp":
                        r = run_sipp(tgt, rate, count, devices, workdir, args.seconds * 3 + 10)
                    else:
                        r = run_simulate(tgt, rate, count, workdir, args.seconds * 3 + 30)
                finally:
                    tgt.stop()
                runs.append(r)
                print(fmt_run(r), flush=True)
                if r.clean:
                    break
            results.extend(runs)
            good = [r for r in runs if r.clean]
            if good:
                best[kind] = max(best[kind], max(r.achieved for r in good))
            else:
                alive.remove(kind)
    return best


def fmt_run(r: Run) -> str:
    mark = "clean" if r.clean else "NOT clean"
    return (f"{r.generator:>14} -> {r.target:<11} r={r.rate:>7.0f}/s n={r.count:>7}: "
            f"{r.achieved:>9.1f} reg/s ok={r.successful} fail={r.failed} "
            f"retrans={r.retransmissions} gen={r.gen_cpu:.2f} core srv={r.target_cpu:.2f} core "
            f"({r.target_us_per_reg:.1f} us/reg) load={r.load:.2f} {mark} {r.note}")


def parse_rates(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def cmd_targets(args: argparse.Namespace, workdir: str) -> dict[str, Any]:
    devices = Path(workdir) / "devices.csv"
    rates = parse_rates(args.rates)
    write_devices(devices, int(max(rates) * args.seconds))
    results: list[Run] = []
    kinds = args.targets.split(",")
    out: dict[str, Any] = {"sipp": step_rates(args, "sipp", kinds, rates, workdir, devices,
                                              results)}
    if args.simulate:
        out["simulate"] = step_rates(args, "simulate", kinds, parse_rates(args.sim_rates),
                                     workdir, devices, results)
    out["no_failures"] = best_without_failures(results)
    out["runs"] = [asdict(r) for r in results]
    return out


def best_without_failures(results: list[Run]) -> dict[str, float]:
    """Per generator -> target: the highest achieved rate of a run in which
    every registration succeeded and nothing was retransmitted (whether or
    not the generator reached the asked rate)."""
    best: dict[str, float] = {}
    for r in results:
        if r.failed == 0 and r.retransmissions == 0 and r.successful == r.count:
            key = f"{r.generator} -> {r.target}"
            best[key] = max(best.get(key, 0.0), r.achieved)
    return best


def cmd_generators(args: argparse.Namespace, workdir: str) -> dict[str, Any]:
    devices = Path(workdir) / "devices.csv"
    rates = parse_rates(args.rates)
    sim_rates = parse_rates(args.sim_rates)
    write_devices(devices, int(max(rates) * args.seconds))
    results: list[Run] = []
    kinds = [args.gbsip_target] + (["kamailio"] if args.kamailio else [])
    out: dict[str, Any] = {
        "sipp": step_rates(args, "sipp", kinds, rates, workdir, devices, results),
        "simulate": step_rates(args, "simulate", kinds, sim_rates, workdir, devices, results),
    }
    out["no_failures"] = best_without_failures(results)
    out["runs"] = [asdict(r) for r in results]
    return out


# --------------------------------------------------------------------------
# scale


def cmd_scale(args: argparse.Namespace, workdir: str) -> dict[str, Any]:
    """N devices against the gbsip Registrar over UDP (see scale_run)."""
    return scale_run(args, workdir, "udp")


def scale_run(args: argparse.Namespace, workdir: str, transport: str,
              registrar_transports: str = "udp") -> dict[str, Any]:
    """N devices against the gbsip Registrar over `transport`; polls both
    sides every --sample seconds: registrar stats (SIGUSR1 to
    serve_quiet.py), RSS and CPU from /proc."""
    n = args.devices
    port = free_port()
    slog = open(f"{workdir}/scale-{transport}-registrar.log", "w+b")
    server = Proc([sys.executable, str(SERVE_QUIET), "--port", str(port), "--password", PASSWORD,
                   "--server-id", SERVER_ID, "--keepalive", str(args.keepalive),
                   "--max-bindings", str(n + 1000), "--duration", str(args.max_seconds + 60),
                   "--transport", registrar_transports, "--max-connections", str(n + 100)],
                  stdout=slog, stderr=subprocess.STDOUT)
    wait_answering(server, port, slog, "registrar")
    srv_rss0 = rss_bytes([server.pid])
    sim_cmd = [sys.executable, "-m", "gbsip", "simulate", "--server",
               f"{transport}://127.0.0.1:{port}",
               "--devices", str(n), "--rate", str(args.rate), "--duration", str(args.duration),
               "--keepalive", str(args.keepalive), "--no-capability", "--json",
               "--interval", str(args.sample), "--password", PASSWORD,
               "--server-id", SERVER_ID, "--sockets", str(args.sockets),
               "--no-answer-timeout", "30"]
    sim_out = open(f"{workdir}/scale-{transport}-simulate.json", "w+b")
    sim_err = open(f"{workdir}/scale-{transport}-simulate.log", "w+b")
    print(" ".join(sim_cmd), flush=True)
    t0 = time.monotonic()
    cpu0 = (cpu_seconds([server.pid]), 0.0)
    sim = Proc(sim_cmd, stdout=sim_out, stderr=sim_err)
    samples: list[dict[str, Any]] = []
    last = (t0, cpu0[0], 0.0)
    try:
        while sim.popen.poll() is None:
            if time.monotonic() - t0 > args.max_seconds:
                sim.stop()
                break
            time.sleep(args.sample)
            now = time.monotonic()
            s_cpu, g_cpu = cpu_seconds([server.pid]), cpu_seconds([sim.pid])
            slog.seek(0)
            before = slog.read().count(b'{"stats"')
            os.kill(server.pid, signal.SIGUSR1)
            lines: list[bytes] = []
            for _ in range(40):  # up to 2 s for the registrar to print this poll's line
                time.sleep(0.05)
                slog.seek(0)
                lines = [ln for ln in slog.read().splitlines()
                         if ln.startswith(b'{"stats"') and ln.endswith(b"}")]
                if len(lines) > before:
                    break
            st = json.loads(lines[-1]) if lines else {}
            dt = now - last[0]
            stats = st.get("stats", {})
            sample = {
                "t": round(now - t0, 1), "bindings": st.get("bindings"),
                "registrations": stats.get("registrations"),
                "keepalives": stats.get("keepalives"),
                "tcp_connections": stats.get("tcp_connections"),
                "registrar_cpu": round((s_cpu - last[1]) / dt, 2),
                "simulator_cpu": round((g_cpu - last[2]) / dt, 2),
                "registrar_cpu_total": round(s_cpu - cpu0[0], 3),
                "simulator_cpu_total": round(g_cpu, 3),
                "registrar_rss": rss_bytes([server.pid]), "simulator_rss": rss_bytes([sim.pid]),
                "load": loadavg(),
            }
            if samples and sample["keepalives"] is not None and samples[-1]["keepalives"] is not None:
                sample["keepalives_per_s"] = round((sample["keepalives"] - samples[-1]["keepalives"]) / dt)
                sample["registrations_per_s"] = round(
                    (sample["registrations"] - samples[-1]["registrations"]) / dt)
            samples.append(sample)
            last = (now, s_cpu, g_cpu)
            print(json.dumps(sample), flush=True)
        sim.popen.wait(timeout=120)
    finally:
        sim.stop()
        server.stop()
    sim_out.seek(0)
    try:
        report = json.loads(sim_out.read())
    except ValueError:
        sim_err.seek(0)
        report = {"error": sim_err.read().decode(errors="replace")[-2000:]}
    slog.seek(0)
    lines = [ln for ln in slog.read().splitlines() if ln.startswith(b'{"stats"')]
    full = [json.loads(ln) for ln in lines]
    peak = max(full, key=lambda d: d["bindings"]) if full else {}
    return {"transport": transport, "devices": n, "rate": args.rate,
            "keepalive": args.keepalive, "registrar_rss0": srv_rss0, "registrar_at_peak": peak,
            "samples": samples, "simulator_report": report,
            "summary": scale_summary(n, args.duration, samples, report, srv_rss0)}


def scale_summary(n: int, duration: float, samples: list[dict[str, Any]],
                  report: dict[str, Any], rss0: int) -> dict[str, Any]:
    """The figures of one scale run: the ramp (until every device is
    registered), CPU per registration on both sides, the steady state."""
    ramp = report.get("ramp", {})
    done = next((s for s in samples if (s.get("bindings") or 0) >= n), None)
    out: dict[str, Any] = {
        "registered": report.get("result", {}).get("ever_registered"),
        "failures": report.get("totals", {}).get("failures"),
        "timeouts": report.get("totals", {}).get("timeouts"),
        "achieved_rate": ramp.get("achieved_rate"), "peak_rate": ramp.get("peak_rate"),
        "ramp_seconds": ramp.get("seconds"),
        "register_latency_ms": report.get("latency_ms", {}).get("register"),
        "keepalives_answered": report.get("totals", {}).get("keepalives_answered"),
        "keepalives_sent": report.get("totals", {}).get("keepalives_sent"),
        "unregistered": report.get("unregistration", {}).get("unregistered"),
        "simulator_bytes_per_device": report.get("memory", {}).get("bytes_per_device"),
        "tcp_connect_failures": report.get("messages", {}).get("tcp_connect_failures"),
    }
    if done:
        out["ramp_window_s"] = done["t"]
        out["ramp_registrar_cpu_s"] = done["registrar_cpu_total"]
        out["ramp_simulator_cpu_s"] = done["simulator_cpu_total"]
        out["registrar_us_per_registration"] = round(done["registrar_cpu_total"] / n * 1e6, 1)
        out["simulator_us_per_registration"] = round(done["simulator_cpu_total"] / n * 1e6, 1)
        out["registrar_bytes_per_device"] = round((done["registrar_rss"] - rss0) / n)
        steady = [s for s in samples if done["t"] + 5 <= s["t"] <= duration - 2
                  and "keepalives_per_s" in s]
        if steady:
            out["steady_samples"] = len(steady)
            for k in ("keepalives_per_s", "registrar_cpu", "simulator_cpu", "load"):
                out[f"steady_{k}"] = round(sum(s[k] for s in steady) / len(steady), 2)
            out["registrar_bytes_per_device_steady"] = round(
                max(s["registrar_rss"] for s in steady) - rss0) // n
    return out


def raise_hard_limit(need: int) -> str:
    """Open files for `need` descriptors in each of this process's
    children: the hard limit is raised where the kernel lets us (root with
    CAP_SYS_RESOURCE), the soft one to the hard one.  Returns what was done;
    exits with one line saying why when the limit stays too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            return f"raised the open-files limit from {soft}/{hard} to {need}/{need}"
        except (ValueError, OSError) as exc:
            raise SystemExit(
                f"bench_load: each process needs about {need} file descriptors and the hard "
                f"limit is {hard}, which this process may not raise ({exc}: root without "
                f"CAP_SYS_RESOURCE, e.g. in a container): raise it outside "
                f"(ulimit -Hn {need}, docker --ulimit nofile={need}) or use fewer devices") from exc
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return f"open-files limit {hard}/{hard} (each process needs about {need})"


def cmd_tcp_scale(args: argparse.Namespace, workdir: str) -> dict[str, Any]:
    """The same N devices over UDP then TCP, each against a fresh registrar
    listening on both, and the two side by side."""
    note = raise_hard_limit(args.devices + 200)
    print(note, flush=True)
    out: dict[str, Any] = {"fd_limit": note, "devices": args.devices, "rate": args.rate}
    for transport in args.transports.split(","):
        out[transport] = scale_run(args, workdir, transport, "udp,tcp")
        print(json.dumps({transport: out[transport]["summary"]}), flush=True)
        if transport != args.transports.split(",")[-1]:
            time.sleep(args.pause)  # let the TIME_WAITs and the machine settle
    if "udp" in out and "tcp" in out:
        u, t = out["udp"]["summary"], out["tcp"]["summary"]
        cmp: dict[str, Any] = {}
        if u.get("achieved_rate") and t.get("achieved_rate"):
            cmp["tcp_rate_over_udp"] = round(t["achieved_rate"] / u["achieved_rate"], 2)
        if u.get("registrar_us_per_registration") and t.get("registrar_us_per_registration"):
            cmp["tcp_server_cpu_over_udp"] = round(
                t["registrar_us_per_registration"] / u["registrar_us_per_registration"], 2)
        cmp["tcp_all_registered"] = t.get("registered") == args.devices
        out["comparison"] = cmp
    return out


def established_on(port: int) -> int:
    """Established TCP connections whose local port is `port` (the
    registrar's side), counted by the kernel's socket diagnostics (`ss`):
    /proc/net/tcp takes seconds at 100,000 connections and can count a
    socket twice while connections come and go."""
    p = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                       capture_output=True, text=True, timeout=60)
    return sum(1 for line in p.stdout.splitlines() if line.strip())


def cmd_tcp_spread(args: argparse.Namespace, workdir: str) -> dict[str, Any]:
    """N TCP devices: P registrar processes sharing one port against P
    simulator processes, N/P devices each."""
    n, procs = args.devices, args.processes
    per = -(-n // procs)
    note = raise_hard_limit(per + 2000)
    print(note, flush=True)
    port = free_port()
    slog = open(f"{workdir}/spread-serve.log", "w+b")
    server = Proc([sys.executable, "-m", "gbsip", "serve", "--port", str(port),
                   "--transport", "udp,tcp", "--workers", str(procs), "--quiet", "--no-store",
                   "--password", PASSWORD, "--server-id", SERVER_ID,
                   "--keepalive", str(args.keepalive), "--rate-per-source", "0",
                   "--max-connections", str(per + 2000),
                   "--duration", str(args.max_seconds + 60)],
                  stdout=slog, stderr=subprocess.STDOUT)
    wait_answering(server, port, slog, "registrar", seconds=20)
    time.sleep(2)  # one worker answered the probe: let the others finish starting
    sims: list[Proc] = []
    outs = []
    t0 = time.monotonic()
    cpu0 = cpu_seconds(server.pids())
    for k in range(procs):
        count = min(per, n - k * per)
        cmd = [sys.executable, "-m", "gbsip", "simulate", "--server",
               f"tcp://127.0.0.1:{port}", "--devices", str(count),
               "--id-start", str(1 + k * per), "--rate", str(max(1, args.rate // procs)),
               "--duration", str(args.duration), "--keepalive", str(args.keepalive),
               "--no-capability", "--json", "--password", PASSWORD, "--server-id", SERVER_ID,
               "--no-answer-timeout", "30",
               # its own sources, as many as simulate's default would take
               # for its devices: ephemeral ports stay plentiful
               "--tcp-sources", ",".join(f"127.0.{k + 1}.{j + 1}"
                                         for j in range(-(-count // TCP_PORTS_PER_HOST)))]
        if k == 0:
            print(" ".join(cmd), f"(and {procs - 1} more, the next serials)", flush=True)
        out = open(f"{workdir}/spread-sim-{k}.json", "w+b")
        outs.append(out)
        sims.append(Proc(cmd, stdout=out, stderr=open(f"{workdir}/spread-sim-{k}.log", "w+b")))
    samples: list[dict[str, Any]] = []
    try:
        while any(s.popen.poll() is None for s in sims):
            if time.monotonic() - t0 > args.max_seconds:
                break
            time.sleep(args.sample)
            # each pids() call scans /proc: once a sample for each side
            reg_pids, sim_pids = server.pids(), [p for s in sims for p in s.pids()]
            sample = {"t": round(time.monotonic() - t0, 1),
                      "connections": established_on(port),
                      "registrar_cpu_total": round(cpu_seconds(reg_pids) - cpu0, 2),
                      "simulators_cpu_total": round(cpu_seconds(sim_pids), 2),
                      "registrar_rss": rss_bytes(reg_pids),
                      "simulators_rss": rss_bytes(sim_pids),
                      "load": loadavg()}
            samples.append(sample)
            print(json.dumps(sample), flush=True)
        for s in sims:
            s.popen.wait(timeout=120)
    finally:
        for s in sims:
            s.stop()
        server.stop()
    reports = []
    for out in outs:
        out.seek(0)
        try:
            reports.append(json.loads(out.read()))
        except ValueError:
            reports.append({})

    def total(*path: str) -> int:
        t = 0
        for r in reports:
            v: Any = r
            for key in path:
                v = v.get(key, {}) if isinstance(v, dict) else {}
            t += v if isinstance(v, (int, float)) else 0
        return int(t)

    peak = max(samples, key=lambda x: x["connections"]) if samples else {}
    summary = {
        "devices": n, "processes": procs,
        "registered": total("result", "ever_registered"),
        "failures": total("totals", "failures"), "timeouts": total("totals", "timeouts"),
        "keepalives_sent": total("totals", "keepalives_sent"),
        "keepalives_answered": total("totals", "keepalives_answered"),
        "unregistered": total("unregistration", "unregistered"),
        "tcp_connect_failures": total("messages", "tcp_connect_failures"),
        "registrar_connections_peak": peak.get("connections"),
        "registrar_rss_at_peak": peak.get("registrar_rss"),
        "simulators_rss_at_peak": peak.get("simulators_rss"),
        "ramp_rates": [r.get("ramp", {}).get("achieved_rate") for r in reports],
        "reports_missing": sum(1 for r in reports if not r),
    }
    print(json.dumps({"tcp-spread": summary}), flush=True)
    return {"fd_limit": note, "summary": summary, "samples": samples, "reports": reports}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", help="write the results as JSON here")
    p.add_argument("--workdir", help="keep logs and sipp statistics here (default: a temp dir)")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("targets", help="gbsip Registrar vs Kamailio, same generator")
    t.add_argument("--targets", default="gbsip,kamailio",
                   help="comma list of gbsip, gbsip-serve, gbsip-workers, kamailio")
    t.add_argument("--rates", default="4000,8000,10000,12000,14000,16000,18000,20000")
    t.add_argument("--simulate", action="store_true", help="also step gbsip simulate")
    t.add_argument("--sim-rates", default="10000,20000,30000,40000,50000")
    g = sub.add_parser("generators", help="sipp vs gbsip simulate against the gbsip Registrar")
    g.add_argument("--rates", default="4000,8000,10000,12000,14000,16000,18000,20000")
    g.add_argument("--sim-rates", default="10000,20000,30000,40000,50000")
    g.add_argument("--kamailio", action="store_true", help="also against Kamailio")
    g.add_argument("--gbsip-target", default="gbsip", choices=("gbsip", "gbsip-serve", "gbsip-workers"),
                   help="the gbsip registrar to load: one process (default), gbsip serve, "
                        "or gbsip serve --workers <cores>")
    for q in (t, g):
        q.add_argument("--seconds", type=float, default=5,
                       help="registrations per run = rate x this (default 5)")
        q.add_argument("--repeat", type=int, default=2,
                       help="runs per step, best kept (default 2)")
    s = sub.add_parser("scale", help="N devices registered and keeping alive")
    c = sub.add_parser("tcp-scale", help="N devices over UDP then TCP, side by side")
    for q, (devices, rate, duration, keepalive, sample, most) in (
            (s, (1_000_000, 20000, 150, 60, 5, 290)), (c, (100_000, 10000, 90, 30, 1, 240))):
        q.add_argument("--devices", type=int, default=devices)
        q.add_argument("--rate", type=int, default=rate)
        q.add_argument("--duration", type=float, default=duration,
                       help="simulate --duration: first REGISTER to unregistration")
        q.add_argument("--keepalive", type=float, default=keepalive)
        q.add_argument("--sockets", type=int, default=8, help="UDP sockets of the simulator")
        q.add_argument("--sample", type=float, default=sample)
        q.add_argument("--max-seconds", type=float, default=most,
                       help="bound of one simulator run")
    w = sub.add_parser("tcp-spread", help="N TCP devices, P registrar and P simulator processes")
    w.add_argument("--devices", type=int, default=100_000)
    w.add_argument("--processes", type=int, default=6,
                   help="registrar workers and simulator processes (default 6)")
    w.add_argument("--rate", type=int, default=6000, help="devices started per second, in all")
    w.add_argument("--duration", type=float, default=90)
    w.add_argument("--keepalive", type=float, default=30)
    w.add_argument("--sample", type=float, default=2)
    w.add_argument("--max-seconds", type=float, default=300)
    c.add_argument("--transports", default="udp,tcp")
    c.add_argument("--pause", type=float, default=10, help="seconds between the two runs")
    args = p.parse_args()
    cmds: dict[str, Callable[[argparse.Namespace, str], dict[str, Any]]] = {
        "targets": cmd_targets, "generators": cmd_generators, "scale": cmd_scale,
        "tcp-scale": cmd_tcp_scale, "tcp-spread": cmd_tcp_spread}
    with tempfile.TemporaryDirectory(prefix="gbsip-load-") as tmp:
        workdir = args.workdir or tmp
        os.makedirs(workdir, exist_ok=True)
        started = time.time()
        result = cmds[args.cmd](args, workdir)
        result["meta"] = {"command": sys.argv, "started": started, "seconds": time.time() - started,
                          "loadavg_end": open("/proc/loadavg").read().split()[:3]}
    summary = {k: (v["summary"] if isinstance(v, dict) and "summary" in v else v)
               for k, v in result.items() if k not in ("runs", "samples", "reports")}
    print(json.dumps(summary, indent=1, default=str)[:4000])
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
