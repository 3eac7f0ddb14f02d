"""Reports of a simulation for people and dashboards: an HTML page with
charts over time (``gbsip simulate --report``), the time series as CSV
(``--csv``) and live statistics as JSON lines (``--stats-json``).

The HTML is one self-contained file: the charts are inline SVG drawn here,
with no script, style sheet or font fetched from anywhere, so it opens the
same offline, attached to a ticket or archived by CI.

    async with gbsip.Simulator(1000, server=..., timeline=1.0) as sim:
        report = await sim.run()
    gbsip.report.write_html("run.html", report, sim.timeline())
"""
from __future__ import annotations

import csv
import html
import json
import math
import time
from collections.abc import Sequence
from typing import Any

from gbsip._console import Clock, iso_time
from gbsip._version import __version__
from gbsip.simulator import TIMELINE_FIELDS, SimulatorReport, SimulatorStats, TimelinePoint

__all__ = ["ramp_text", "registered_text", "render_html", "stats_record", "unregistered_text",
           "write_csv", "write_html"]


# --------------------------------------------------------------------------
# JSON lines and CSV


def stats_record(stats: SimulatorStats, interval: TimelinePoint | None,
                 clock: Clock | None = None) -> dict[str, Any]:
    """One ``--stats-json`` line: wall-clock ``time`` (ISO 8601), every
    field of :meth:`Simulator.stats`, and ``interval``, the last point of
    the timeline (rates and latency percentiles of the last second), its
    ``time`` as ISO 8601 too (as ``gbsip serve --json`` and ``--csv`` give
    times); ``elapsed`` gives both in seconds since the run started."""
    iso = clock.iso if clock else iso_time
    record: dict[str, Any] = {"time": iso(time.time())}
    record.update(stats)
    record["interval"] = None if interval is None else dict(interval, time=iso(interval["time"]))
    return record


def write_csv(path: str, points: Sequence[TimelinePoint]) -> None:
    """The timeline as CSV: one row per point, the columns of
    :class:`gbsip.simulator.TimelinePoint`; ``time`` as ISO 8601, empty
    cells where nothing was measured."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(TIMELINE_FIELDS)
        for p in points:
            row: list[object] = []
            for name in TIMELINE_FIELDS:
                v = p[name]  # type: ignore[literal-required]
                row.append(iso_time(v) if name == "time" else ("" if v is None else v))
            w.writerow(row)


# --------------------------------------------------------------------------
# HTML


def write_html(path: str, report: SimulatorReport, points: Sequence[TimelinePoint]) -> None:
    """:func:`render_html` into ``path``."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(render_html(report, points))


_COLOURS = ("#1f77b4", "#2ca02c", "#d62728", "#ff7f0e", "#9467bd", "#8c564b")
_PHASE_FILL = {"ramp": "#eef4fb", "hold": "#ffffff", "settle": "#fdf6e3",
               "unregister": "#f3eef8", "done": "#f4f4f4"}


def _nice(span: float) -> float:
    """A round step (1, 2 or 5 × 10^k) giving about five ticks over ``span``."""
    if span <= 0:
        return 1.0
    raw = span / 5
    mag = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 5.0):
        if raw <= m * mag:
            return m * mag
    return 10.0 * mag


def _ticks(top: float, step: float) -> list[float]:
    """0, step, 2 step ... up to ``top``."""
    return [k * step for k in range(int(top / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    if v >= 10000:
        return f"{v / 1000:g}k"
    return f"{v:g}"


def _chart(title: str, unit: str, xs: Sequence[float], phases: Sequence[str],
           series: Sequence[tuple[str, Sequence[float | None]]]) -> str:
    """A figure: the title and legend, then an SVG line chart with x =
    seconds since the start, one polyline per series (gaps where a value
    is None) and the run's phases shaded."""
    w, h = 860, 220
    left, right, top, bottom = 64, 16, 8, 36
    pw, ph = w - left - right, h - top - bottom
    x_max = max(xs[-1] if xs else 1.0, 1.0)
    values = [v for _, vs in series for v in vs if v is not None]
    y_step = _nice(max(values) if values else 1.0)
    y_max = max(y_step, math.ceil((max(values) if values else 1.0) / y_step) * y_step)

    def X(x: float) -> float:
        return left + pw * x / x_max

    def Y(y: float) -> float:
        return top + ph * (1 - y / y_max)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" '
           f'role="img" aria-label="{html.escape(title)}">']
    # phases as background bands
    start = 0
    for i in range(1, len(xs) + 1):
        if i == len(xs) or phases[i] != phases[start]:
            x0 = X(xs[start - 1] if start else 0.0)
            x1 = X(xs[i - 1])
            fill = _PHASE_FILL.get(phases[start], "#ffffff")
            out.append(f'<rect x="{x0:.1f}" y="{top}" width="{max(0.0, x1 - x0):.1f}" '
                       f'height="{ph}" fill="{fill}"><title>{html.escape(phases[start])}'
                       f'</title></rect>')
            if x1 - x0 > 50:
                out.append(f'<text x="{x0 + 4:.1f}" y="{top + 12}" class="p">'
                           f'{html.escape(phases[start])}</text>')
            start = i
    # grid and axes
    for y in _ticks(y_max, y_step):
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{Y(y):.1f}" y2="{Y(y):.1f}" '
                   f'class="g"/><text x="{left - 6}" y="{Y(y) + 4:.1f}" class="a" '
                   f'text-anchor="end">{_fmt(y)}</text>')
    for x in _ticks(x_max, _nice(x_max)):
        out.append(f'<line x1="{X(x):.1f}" x2="{X(x):.1f}" y1="{top}" y2="{top + ph}" '
                   f'class="g"/><text x="{X(x):.1f}" y="{top + ph + 16}" class="a" '
                   f'text-anchor="middle">{_fmt(x)}</text>')
    out.append(f'<text x="{left + pw}" y="{h - 4}" class="a" text-anchor="end">'
               f'seconds since the start</text>'
               f'<text x="12" y="{top + ph / 2}" class="a" text-anchor="middle" '
               f'transform="rotate(-90 12 {top + ph / 2})">{html.escape(unit)}</text>')
    # the series, and their legend
    legend: list[str] = []
    for k, (name, vs) in enumerate(series):
        colour = _COLOURS[k % len(_COLOURS)]
        runs: list[list[str]] = [[]]
        for xv, yv in zip(xs, vs):
            if yv is None:
                if runs[-1]:
                    runs.append([])
                continue
            runs[-1].append(f"{X(xv):.1f},{Y(yv):.1f}")
        for pts in runs:
            if len(pts) == 1:
                cx, cy = pts[0].split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{colour}"/>')
            elif pts:
                out.append(f'<polyline points="{" ".join(pts)}" fill="none" '
                           f'stroke="{colour}" stroke-width="1.6"><title>{html.escape(name)}'
                           f'</title></polyline>')
        present = [v for v in vs if v is not None]
        note = f" (max {_fmt(round(max(present), 1))})" if present else " (none)"
        legend.append(f'<span><i style="background:{colour}"></i>{html.escape(name)}'
                      f'<small>{note}</small></span>')
    out.append("</svg>")
    return (f'<figure><figcaption><b>{html.escape(title)}</b> {"".join(legend)}</figcaption>'
            f'{"".join(out)}</figure>')


def registered_text(report: SimulatorReport) -> str:
    """The summary's "registered": devices registered at the end of the
    run, before they unregistered (when the hold ended, or when the run was
    stopped early, which may be before any hold), and at least once."""
    res = report["result"]
    when = "when the run was stopped early" if report["stopped"] else "when the hold ended"
    return f"{res['registered']} {when}, {res['ever_registered']} at least once"


def ramp_text(report: SimulatorReport) -> str:
    """The summary's "ramp": the rate achieved to the last registration of
    the ramp, the target, the peak over 1 s (left out of a ramp shorter than
    that, where it would only repeat the average), and how many registered
    in how long (all of the started devices, or how many of them)."""
    ramp = report["ramp"]
    target = f"{ramp['target_rate']:g}/s" if ramp["target_rate"] else "all at once"
    seconds = ramp["seconds"]
    if ramp["peak_rate"] is not None:
        peak = f"peak {ramp['peak_rate']:.0f}/s over 1 s"
    else:
        peak = "no peak rate (the ramp took under 1 s)"
    done, started = ramp["registered"], report["started"]
    who = f"all {done}" if done >= started else f"{done} of {started} started devices"
    return (f"{ramp['achieved_rate'] or 0:.0f}/s achieved (target {target}), {peak}; "
            f"{who} registered in {seconds} s")


#: How the summary says why a device's unregistration was not a 200.
_UNREGISTER_WHY = {"not_registered": "not registered (nothing to unregister)",
                   "timeout": "unanswered"}


def unregistered_text(report: SimulatorReport) -> str:
    """The summary's "unregistered": devices unregistered at the end, and
    of those, how many the platform confirmed (200) and why the others
    were not (never registered, no answer...)."""
    unreg = report["unregistration"]
    n, why = unreg["unregistered"], unreg["by_reason"]
    if not why:
        return str(n)
    others = ", ".join(f"{v} {_UNREGISTER_WHY.get(k, k.replace('_', ' '))}"
                       for k, v in why.items())
    return f"{n}: {n - sum(why.values())} confirmed by the platform, {others}"


def _rows(report: SimulatorReport) -> list[tuple[str, str]]:
    res, ramp, lat = report["result"], report["ramp"], report["latency_ms"]
    tot, msg, mem = report["totals"], report["messages"], report["memory"]
    rows = [
        ("result", "every started device registered" if report["ok"]
         else f"NOT every device registered{': ' + report['error'] if report['error'] else ''}"),
        ("server", f"{report['server']} ({report['transport']})"),
        ("devices", f"{report['devices']} ({report['config']['first_device']} .. "
                    f"{report['config']['last_device']}), {report['started']} started"
                    + (", stopped early" if report["stopped"] else "")),
        ("registered", registered_text(report)),
    ]
    for why, n in res["not_registered"].items():
        rows.append(("not registered", f"{n} {why}"))
    if ramp["achieved_rate"] is not None:
        rows.append(("ramp", ramp_text(report)))
    rows += [
        ("registrations", f"{tot['registrations']} + {tot['refreshes']} refreshes, "
                          f"{tot['challenges']} challenges (unregistering REGISTERs' too), "
                          f"{tot['failures']} failures, "
                          f"{tot['timeouts']} timeouts"),
        ("keepalives", f"{tot['keepalives_sent']} sent, {tot['keepalives_answered']} answered, "
                       f"{tot['keepalives_missed']} missed"),
    ]
    for name, h in (("REGISTER latency", lat["register"]), ("refresh latency", lat["refresh"]),
                    ("MESSAGE latency", lat["message"])):
        if h["count"]:
            rows.append((name, f"p50 {h['p50']} ms, p95 {h['p95']} ms, p99 {h['p99']} ms, "
                               f"max {h['max']} ms ({h['count']}; 0 = under 1 ms)"))
    rows += [
        ("messages", f"{msg['sent']} sent ({msg['retransmitted']} retransmitted), "
                     f"{msg['received']} received, {msg['strays']} stray, "
                     f"{msg['icmp_errors']} ICMP errors"),
        ("failures", ", ".join(f"{k} {v}" for k, v in report["failures"]["by_reason"].items())
         or "none"),
        ("unregistered", unregistered_text(report)),
        ("time", f"{report['elapsed']} s from {report['started_at']}; CPU "
                 f"{report['cpu_seconds']} s ({report['cpu_percent']} %)"),
        ("memory", f"RSS {mem['rss_bytes'] / 2**20:.1f} MiB, "
                   f"{mem['bytes_per_device']:.0f} B per device"),
    ]
    return rows


_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;
max-width:900px;color:#222;padding:0 12px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 6px}
.sub{color:#666;margin:0 0 16px}.bad{color:#b00020;font-weight:600}.ok{color:#1b7f3b;font-weight:600}
table{border-collapse:collapse}td{padding:2px 14px 2px 0;vertical-align:top}
td:first-child{color:#555;white-space:nowrap}
figure{margin:8px 0 18px}figcaption{font-size:13px;margin-bottom:4px}
figcaption span{margin-left:14px;white-space:nowrap}figcaption small{color:#777}
figcaption i{display:inline-block;width:12px;height:3px;margin:0 5px 3px 0;vertical-align:middle}
svg{width:100%;height:auto;border:1px solid #e4e4e4}
svg .a,svg .p{font-size:10.5px;fill:#666}svg .g{stroke:#e8e8e8;stroke-width:1}
pre{background:#f6f6f6;padding:10px;overflow:auto;font-size:12px}
"""


def render_html(report: SimulatorReport, points: Sequence[TimelinePoint]) -> str:
    """The report as one self-contained HTML page: the summary, then charts
    over time of devices, rates, failures and latency percentiles (from the
    timeline), then the whole report as JSON."""
    xs = [p["elapsed"] for p in points]
    phases = [p["phase"] for p in points]

    def col(name: str) -> list[float | None]:
        return [p[name] for p in points]  # type: ignore[literal-required]

    charts: list[str] = []
    if points:
        charts = [
            _chart("Devices", "devices", xs, phases,
                   [("registered now", col("registered")),
                    ("registering", col("registering")),
                    ("failed", col("failed")),
                    ("started", col("started"))]),
            _chart("Rates (per second)", "per second", xs, phases,
                   [("registrations", col("registrations_per_s")),
                    ("keepalives answered", col("keepalives_per_s"))]),
            _chart("Failures (per second)", "per second", xs, phases,
                   [("failed attempts", col("failures_per_s")),
                    ("keepalives missed", col("keepalives_missed_per_s"))]),
            _chart("REGISTER latency: first REGISTER to 200, each second (ms)", "ms", xs,
                   phases, [("p50", col("register_p50")), ("p95", col("register_p95")),
                            ("p99", col("register_p99"))]),
            _chart("Keepalive (MESSAGE) latency, each second (ms)", "ms", xs, phases,
                   [("p50", col("message_p50")), ("p95", col("message_p95")),
                    ("p99", col("message_p99"))]),
        ]
    verdict = ('<span class="ok">OK</span>' if report["ok"]
               else '<span class="bad">FAILED</span>')
    table = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
                    for k, v in _rows(report))
    body = "\n".join(charts) if charts else (
        "<p>No timeline was recorded (run with <code>--report</code>, <code>--csv</code> "
        "or <code>Simulator(timeline=1.0)</code>).</p>")
    started = report["started_at"] or ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>gbsip simulate {html.escape(report['server'])} {html.escape(started)}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>gbsip simulate: {report['devices']} devices → "
        f"{html.escape(report['server'])} {verdict}</h1>"
        f"<p class=\"sub\">gbsip {html.escape(report['gbsip'])}, started "
        f"{html.escape(started)}; report by gbsip {__version__}. Times on the charts are "
        "seconds since the run started; shaded bands are its phases (ramp, hold, settle, "
        "unregister).</p>"
        f"<table>{table}</table>"
        f"<h2>Over time</h2>{body}"
        "<h2>Configuration and the whole report</h2><details><summary>JSON</summary>"
        f"<pre>{html.escape(json.dumps(report, indent=2))}</pre></details>"
        "</body></html>\n"
    )
