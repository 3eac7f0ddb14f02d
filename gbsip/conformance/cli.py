"""``gbsip conformance platform|device [options] [-- pytest options]``.

Runs one conformance suite with pytest.main; every ``--gb-*`` option of the
pytest plugin is accepted here too (see docs/conformance.md), and anything
after ``--`` goes to pytest unchanged (``-- --junitxml=report.xml -x``).

Hook it into ``gbsip.cli.build_parser`` with ``add_parser(sub)``.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from gbsip._cli_args import server_url

# (flag, metavar or None for a switch, suites, help); values go to pytest as given
_OPTIONS: tuple[tuple[str, str | None, str, str], ...] = (
    ("--gb-platform", "URL", "platform",
     "the platform under test, udp://HOST:PORT or tcp://HOST:PORT (required)"),
    ("--gb-listen", "URL", "device",
     "where gbsip plays the platform and waits for the camera, udp://HOST:PORT or "
     "tcp://HOST:PORT (required)"),
    ("--gb-server-id", "ID", "both", "the platform's 20-digit SIP server ID "
                                     "(default 34020000002000000001)"),
    ("--gb-domain", "DOMAIN", "both", "SIP domain / Digest realm (default: first 10 digits "
                                      "of the server ID)"),
    ("--gb-device-id", "ID", "both", "the camera's 20-digit device ID "
                                     "(default 34020000001320000001)"),
    ("--gb-password", "PASSWORD", "both", "the device's Digest password (default 12345678)"),
    ("--gb-timeout", "SECONDS", "both", "wait for any one answer or event (default 5)"),
    ("--gb-expires", "SECONDS", "platform", "lifetime the camera asks for (default 3600)"),
    ("--gb-grant-expires", "SECONDS", "device", "lifetime granted to the camera; the refresh "
                                                "check waits for it (default 60)"),
    ("--gb-keepalive-interval", "SECONDS", "both",
     "keepalive interval configured on the platform / the camera (default 60)"),
    ("--gb-keepalive-timeout-count", "N", "both", "missed keepalives before offline (default 3)"),
    ("--gb-unknown-device-id", "ID", "platform", "an ID the platform does not know "
                                                 "(default: the device ID with serial 999999)"),
    ("--gb-any-device", None, "platform", "the platform accepts any device ID by design: "
                                          "skip the unknown-device check"),
    ("--gb-nonce-lifetime", "SECONDS", "platform", "the platform's nonce lifetime: enables "
                                                   "the stale-nonce check (P14)"),
    ("--gb-offline-cmd", "CMD", "platform", "shell command exiting 0 when the platform shows "
                                            "{device_id} offline: enables P21"),
    ("--gb-utc-offset", "HOURS", "both", "zone of the GB Date, hours east of UTC (default 8)"),
    ("--gb-date-tolerance", "SECONDS", "platform", "accepted Date error (default 5)"),
    ("--gb-device-cmd", "CMD", "device", "starts the camera once gbsip listens ({host} and "
                                         "{port} replaced); stopped at the end"),
    ("--gb-register-timeout", "SECONDS", "device", "wait for the first registration "
                                                   "(default 60)"),
    ("--gb-unregister-cmd", "CMD", "device", "makes the camera unregister ({pid}: the "
                                             "--gb-device-cmd process)"),
    ("--gb-queries", None, "device", "also check the camera's answers to queries, controls "
                                     "and subscriptions (D12-D21)"),
    ("--gb-no-queries", None, "platform", "the platform is not expected to query a new "
                                          "device: skip P25 and P26"),
    ("--gb-query-wait", "SECONDS", "platform", "wait for the platform's query or SUBSCRIBE "
                                               "after a registration (default 10)"),
)
_REQUIRED = {"platform": "--gb-platform", "device": "--gb-listen"}


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> argparse.ArgumentParser:
    """Add ``conformance platform|device`` to the gbsip command line; each
    suite lists only its own options."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "conformance", help="check a GB/T 28181 platform or camera",
        description="Run a GB/T 28181 conformance suite with pytest. Arguments after -- "
                    "go to pytest (e.g. -- --junitxml=report.xml).")
    suites = p.add_subparsers(dest="suite", metavar="SUITE", required=True)
    for name, text in (("platform", "gbsip plays a camera against --gb-platform"),
                       ("device", "gbsip plays the platform on --gb-listen for a camera")):
        q = suites.add_parser(name, help=text, description=text + ". Arguments after -- go "
                              "to pytest (e.g. -- --junitxml=report.xml -x).")
        for flag, metavar, which, help_text in _OPTIONS:
            if which not in ("both", name):
                continue
            if metavar is None:
                q.add_argument(flag, action="store_true", help=help_text)
            elif metavar == "URL":
                q.add_argument(flag, metavar=metavar, help=help_text, type=server_url)
            else:
                q.add_argument(flag, metavar=metavar, help=help_text)
        q.add_argument("pytest_args", nargs="*", metavar="-- PYTEST-ARGS",
                       help="options for pytest, after --")
        q.set_defaults(func=run_command)
    return p


def pytest_arguments(args: argparse.Namespace) -> list[str]:
    """The pytest command line for parsed ``gbsip conformance`` arguments."""
    out: list[str] = ["-q", "-rfEs"]
    for flag, metavar, _which, _text in _OPTIONS:
        value = getattr(args, flag[2:].replace("-", "_"), None)
        if metavar is None:
            if value:
                out.append(flag)
        elif value is not None:
            out.append(f"{flag}={value}")
    return out + list(args.pytest_args or [])


def run_command(args: argparse.Namespace) -> int:
    """Exit status: 0 every check passed or was skipped, 1 some failed, else
    pytest's own (2 interrupted, 4 usage error...)."""
    from gbsip.conformance import require_pytest, run
    from gbsip.errors import MissingDependency

    try:
        require_pytest()
    except MissingDependency as exc:
        print(f"gbsip conformance: {exc}", file=sys.stderr)
        return 2
    required = _REQUIRED[args.suite]
    if not getattr(args, required[2:].replace("-", "_")):
        print(f"gbsip conformance {args.suite}: {required} udp://HOST:PORT is required "
              f"(see gbsip conformance {args.suite} --help)", file=sys.stderr)
        return 2
    return run(args.suite, pytest_arguments(args))


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry (``python -m gbsip.conformance.cli platform ...``)."""
    parser = argparse.ArgumentParser(prog="gbsip")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
