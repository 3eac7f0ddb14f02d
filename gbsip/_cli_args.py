"""Option checking for the ``gbsip`` commands: every bad value is refused
with one line that names its option and says what it wants.

    gbsip simulate: --duration: wants a number of seconds above 0, not -3

Values that argparse can check alone are checked by the ``type=`` functions
here; checks across options (IDs that must fit, a transport that must agree
with the server URL) raise :class:`UsageError` from the command.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import difflib
import ipaddress
import math
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from gbsip._address import PortRangeError, parse_target

EXIT_USAGE = 2

N = TypeVar("N", int, float)

#: GB/T 2260 province codes: the first two digits of a GB/T 28181 centre code.
PROVINCES = frozenset({
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46,
    50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82,
})
#: Device type codes (digits 11-13 of an ID) of front-end devices and peripherals.
DEVICE_TYPES = range(111, 200)
ID_HINT = ("8-digit centre code, 2-digit industry, 3-digit type (132 IP camera, "
           "200 SIP server), 1-digit network, 6-digit serial")


class UsageError(Exception):
    """A bad option value (or combination): ``option`` and what is wrong."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line naming the option (no usage
    block), exit status 2."""

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        """A subcommand that is not one: ``unknown command 'simulat' (did
        you mean 'simulate'?)``, not argparse's list of choices."""
        choices = action.choices
        if isinstance(action, argparse._SubParsersAction) and choices is not None \
                and value not in choices:
            near = difflib.get_close_matches(str(value), list(choices), n=1)
            hint = (f"did you mean {near[0]!r}?" if near
                    else f"one of {', '.join(map(str, choices))}")
            raise argparse.ArgumentError(None, f"unknown command {value!r} ({hint})")
        super()._check_value(action, value)

    def error(self, message: str) -> NoReturn:
        text = message.removeprefix("argument ")
        self.exit(EXIT_USAGE, f"{self.prog}: {text} (see {self.prog} --help)\n")


def fail(prog: str, exc: UsageError) -> int:
    """Print a :class:`UsageError` as the parser would; the exit status."""
    print(f"{prog}: {exc}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def _checked(kind: Callable[[str], N], ok: Callable[[N], bool], wants: str) -> Callable[[str], N]:
    def parse(text: str) -> N:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"wants {wants}, not {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value) or not ok(value):
            raise argparse.ArgumentTypeError(f"wants {wants}, not {text}")
        return value

    parse.__name__ = wants
    return parse


def seconds(above: float | None = 0.0, at_least: float | None = None,
            note: str = "", at_most: float | None = None) -> Callable[[str], float]:
    """Seconds, strictly above ``above`` or at least ``at_least`` (and at
    most ``at_most``, with ``at_least``)."""
    if at_least is not None and at_most is not None:
        wants = f"a number of seconds from {at_least:g} to {at_most:g}{note}"
        return _checked(float, lambda v: at_least <= v <= at_most, wants)
    if at_least is not None:
        wants = f"a number of seconds, at least {at_least:g}{note}"
        return _checked(float, lambda v: v >= at_least, wants)
    assert above is not None
    wants = f"a number of seconds above {above:g}{note}"
    return _checked(float, lambda v: v > above, wants)


def whole(at_least: int, at_most: int | None = None, note: str = "") -> Callable[[str], int]:
    """A whole number in ``[at_least, at_most]``."""
    wants = (f"a whole number from {at_least} to {at_most}{note}" if at_most is not None
             else f"a whole number, at least {at_least}{note}")
    return _checked(int, lambda v: v >= at_least and (at_most is None or v <= at_most), wants)


def number(at_least: float, note: str = "") -> Callable[[str], float]:
    return _checked(float, lambda v: v >= at_least, f"a number, at least {at_least:g}{note}")


def fraction(text: str) -> float:
    """A fraction of the devices, 0 to 1."""
    return _checked(float, lambda v: 0.0 <= v <= 1.0, "a fraction from 0 to 1")(text)


def port(text: str) -> int:
    return whole(0, 65535, " (0: any free port)")(text)


def ip_address(text: str) -> str:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"wants an IP address, not {text!r}") from None
    return text.strip("[]")


def ip_addresses(text: str) -> list[str]:
    """A comma list of IP addresses, each checked like ip_address."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"wants IP addresses separated by commas, not {text!r}")
    return [ip_address(t) for t in items]


def server_url(text: str) -> str:
    try:
        parse_target(text)
    except PortRangeError as exc:
        raise argparse.ArgumentTypeError(f"port {exc.port} out of range 1-65535 in "
                                         f"{text!r}") from None
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"wants udp://HOST:PORT or tcp://HOST:PORT, not {text!r} ({exc})") from None
    if "://" not in text:
        raise argparse.ArgumentTypeError(
            f"wants udp://HOST:PORT or tcp://HOST:PORT, not {text!r}")
    return text


def transports(text: str) -> list[str]:
    """A comma list of transports to listen on: ``udp``, ``tcp`` or both,
    each once."""
    items = [t.strip().lower() for t in text.split(",") if t.strip()]
    if not items or any(t not in ("udp", "tcp") for t in items):
        raise argparse.ArgumentTypeError(f"wants udp, tcp or udp,tcp, not {text!r}")
    twice = next((t for t in items if items.count(t) > 1), None)
    if twice is not None:
        raise argparse.ArgumentTypeError(f"{twice} is given twice in {text!r}: give each "
                                         "transport once (udp, tcp or udp,tcp)")
    return items


def transport_of(server: str | None, transport: str | None, option: str = "--transport") -> str:
    """The transport a command uses: ``--transport``, or the server URL's;
    refuses the two disagreeing (``udp://`` with ``--transport tcp``)."""
    scheme = parse_target(server).transport if server else None
    if transport and scheme and transport != scheme:
        raise UsageError(option, f"{transport} contradicts --server {server} ({scheme}): "
                                 f"give tcp:// in --server, or leave out {option}")
    return transport or scheme or "udp"


def device_id(text: str) -> str:
    """A 20-digit GB/T 28181 device ID."""
    if len(text) != 20 or not text.isdigit():
        raise argparse.ArgumentTypeError(f"wants a 20-digit GB/T 28181 ID ({ID_HINT}), "
                                         f"not {text!r}")
    return text


def gb_time(text: str) -> str:
    """A GB/T 28181 time (A.2.1 dateTime): ``2026-12-03T00:00:00``, the
    device's local time, no zone."""
    try:
        _dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"wants a time like 2026-12-03T00:00:00, not {text!r}") from None
    return text


def server_id_domain(server_id: str, domain: str | None,
                     domain_option: str | None = "--domain") -> str:
    """The SIP domain: ``domain`` (the command's ``domain_option``), or the
    first 10 digits of a 20-digit server ID (refused for any other server
    ID, which has no such part; the message names the command's own option
    for the domain, or none when it has none)."""
    if domain:
        return domain
    if len(server_id) != 20 or not server_id.isdigit():
        alternative = f", or {domain_option}" if domain_option else ""
        raise UsageError("--server-id", f"{server_id!r} is not a 20-digit GB/T 28181 ID "
                                        f"({ID_HINT}), so the SIP domain cannot be taken from "
                                        f"it: give the platform's 20-digit ID{alternative}")
    return server_id[:10]


def id_prefix(text: str) -> str:
    """A device ID prefix that fixes centre code, industry and type."""
    if not text.isdigit() or not 13 <= len(text) <= 19:
        raise argparse.ArgumentTypeError(
            f"wants the first 13 to 19 digits of the device IDs, at least centre code (8), "
            f"industry (2) and device type (3), e.g. 3402000000132; not {text!r}")
    if int(text[:2]) not in PROVINCES:
        raise argparse.ArgumentTypeError(
            f"{text!r} does not start with a GB/T 2260 province code (11-82, e.g. 34), "
            "so it is no GB/T 28181 centre code")
    kind = int(text[10:13])
    if kind not in DEVICE_TYPES:
        raise argparse.ArgumentTypeError(
            f"{text!r} has device type {text[10:13]}, not a device's (111-199: 132 IP camera, "
            "131 camera, 111 DVR, 118 NVR)")
    return text


def check_serials(prefix: str, start: int, devices: int) -> None:
    """``--id-start`` .. + ``--devices`` must fit in the digits the prefix
    leaves free (its trailing zeros count as free): never into its type code."""
    fixed = prefix.rstrip("0") or "0"
    free = 20 - len(fixed)
    last = start + devices - 1
    if last >= 10 ** free:
        raise UsageError("--id-start", f"serials {start} to {last} need {len(str(last))} digits, "
                                       f"but --id-prefix {prefix} leaves {free} free (the last "
                                       "IDs would change its device type): use a smaller "
                                       "--id-start, fewer --devices or a shorter prefix")
