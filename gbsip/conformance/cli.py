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

# (flag, metavar or None for a switch, help); values are passed to pytest as given
_OPTIONS: tuple[tuple[str, str | None, str], ...] = (
    ("--gb-platform", "URL", "platform under test, udp://HOST:PORT or tcp://HOST:PORT"),
    ("--gb-listen", "URL", "device suite: where gbsip waits for the camera"),
    ("--gb-server-id", "ID", "platform's 20-digit SIP server ID"),
    ("--gb-domain", "DOMAIN", "SIP domain / Digest realm (default: first 10 digits of the ID)"),
    ("--gb-device-id", "ID", "camera's 20-digit device ID"),
    ("--gb-password", "PASSWORD", "the device's Digest password"),
    ("--gb-timeout", "SECONDS", "wait for any one answer (default 5)"),
    ("--gb-expires", "SECONDS", "platform suite: lifetime the camera asks for (3600)"),
    ("--gb-grant-expires", "SECONDS", "device suite: lifetime granted to the camera (60)"),
    ("--gb-keepalive-interval", "SECONDS", "keepalive interval of the platform/camera (60)"),
    ("--gb-keepalive-timeout-count", "N", "missed keepalives before offline (3)"),
    ("--gb-unknown-device-id", "ID", "platform suite: an ID the platform does not know"),
    ("--gb-any-device", None, "platform suite: the platform accepts any device ID"),
    ("--gb-nonce-lifetime", "SECONDS", "platform suite: enables the stale-nonce check"),
    ("--gb-offline-cmd", "CMD", "platform suite: exits 0 when {device_id} shows offline"),
    ("--gb-utc-offset", "HOURS", "zone of the GB Date (8)"),
    ("--gb-date-tolerance", "SECONDS", "accepted Date error (5)"),
    ("--gb-device-cmd", "CMD", "device suite: starts the camera ({host}, {port})"),
    ("--gb-register-timeout", "SECONDS", "device suite: wait for the first registration (60)"),
    ("--gb-unregister-cmd", "CMD", "device suite: makes the camera unregister ({pid})"),
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add ``conformance platform|device`` to the gbsip command line."""
    p = subparsers.add_parser(
        "conformance", help="check a GB/T 28181 platform or camera",
        description="Run a GB/T 28181 conformance suite with pytest. Arguments after -- "
                    "go to pytest (e.g. -- --junitxml=report.xml).")
    suites = p.add_subparsers(dest="suite", metavar="SUITE", required=True)
    for name, text in (("platform", "gbsip plays a camera against --gb-platform"),
                       ("device", "gbsip plays the platform on --gb-listen for a camera")):
        q = suites.add_parser(name, help=text, description=text)
        for flag, metavar, help_text in _OPTIONS:
            if metavar is None:
                q.add_argument(flag, action="store_true", help=help_text)
            else:
                q.add_argument(flag, metavar=metavar, help=help_text)
        q.add_argument("pytest_args", nargs="*", metavar="-- PYTEST-ARGS",
                       help="options for pytest, after --")
        q.set_defaults(func=run_command)
    return p


def pytest_arguments(args: argparse.Namespace) -> list[str]:
    """The pytest command line for parsed ``gbsip conformance`` arguments."""
    out: list[str] = ["-q", "-rfEs"]
    for flag, metavar, _text in _OPTIONS:
        value = getattr(args, flag[2:].replace("-", "_"))
        if metavar is None:
            if value:
                out.append(flag)
        elif value is not None:
            out.append(f"{flag}={value}")
    return out + list(args.pytest_args or [])


def run_command(args: argparse.Namespace) -> int:
    """Exit status: 0 every check passed or was skipped, 1 some failed, else
    pytest's own (2 interrupted, 4 usage error...)."""
    from gbsip.conformance import MissingDependency, require_pytest, run

    try:
        require_pytest()
    except MissingDependency as exc:
        print(f"gbsip conformance: {exc}", file=sys.stderr)
        return 2
    if args.suite == "platform" and not args.gb_platform:
        print("gbsip conformance platform: --gb-platform udp://HOST:PORT is required")
        return 2
    if args.suite == "device" and not args.gb_listen:
        print("gbsip conformance device: --gb-listen udp://HOST:PORT is required")
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
