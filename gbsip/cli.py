"""The ``gbsip`` command line.

Each subcommand lives in its own module (``simulate_cli``, ``serve_cli``,
``query_cli``, ``conformance.cli``); errors a person can act on are printed as one line
and a non-zero exit status, never as a traceback:

- a bad option: ``gbsip simulate: --rate: wants a number, at least 0 ...``
  and exit status 2;
- a run that cannot go on: one line, exit status 1;
- Ctrl-C: see each command (130, or 128 + the signal);
- a reader that went away (``gbsip serve | head``): nothing more is
  written, exit status 141 (as if SIGPIPE had ended the process).
"""
from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from gbsip._cli_args import EXIT_USAGE, Parser
from gbsip._console import EXIT_BROKEN_PIPE, silence
from gbsip._core import GBSIPError
from gbsip._version import __version__

EXIT_OK = 0
EXIT_FAILED = 1

Runner = Callable[[Coroutine[Any, Any, int]], int]


def _runner(choice: str, asked: bool) -> Runner | str:
    """How to run a coroutine: on ``choice`` ("uvloop" or "asyncio"), with
    asyncio standing in for a missing uvloop unless it was ``asked`` for
    (then a message).  Decided before anything runs, so no error of the
    run is ever shown chained to the probe's ImportError."""
    if choice == "asyncio":
        return asyncio.run
    try:
        import uvloop
    except ImportError:
        pass
    else:
        return uvloop.run
    if asked:
        return "GBSIP_LOOP=uvloop but uvloop is not installed"
    return asyncio.run


def _run(coro: Coroutine[Any, Any, int], default: str = "uvloop") -> int:
    """Run a coroutine on uvloop when installed, else on asyncio's loop
    (``default="asyncio"``: on asyncio's unless asked); GBSIP_LOOP=asyncio
    (or uvloop) chooses."""
    asked = os.environ.get("GBSIP_LOOP", "").lower()
    run = _runner(asked or default, bool(asked))
    if isinstance(run, str):
        coro.close()
        print(f"gbsip: {run}", file=sys.stderr)
        return EXIT_FAILED
    return run(coro)


def _run_one_device(coro: Coroutine[Any, Any, int]) -> int:
    """``gbsip register``: asyncio's loop unless GBSIP_LOOP=uvloop, so that
    an ICMP port unreachable ends the wait at once (gbsip._udp: uvloop's
    datagram transport cannot take ICMP errors); one device needs no speed."""
    return _run(coro, default="asyncio")


# --------------------------------------------------------------------------


def build_parser() -> Parser:
    parser = Parser(
        prog="gbsip",
        description="GB/T 28181 SIP registration engine: simulate cameras, run a platform, "
                    "check a camera or a platform.",
    )
    parser.add_argument("--version", action="version", version=f"gbsip {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from gbsip.conformance.cli import add_parser as add_conformance
    from gbsip.query_cli import add_query
    from gbsip.serve_cli import add_serve
    from gbsip.simulate_cli import add_register, add_simulate

    add_simulate(sub, _run)
    add_serve(sub, _run)
    add_register(sub, _run_one_device)
    add_query(sub, _run_one_device)
    add_conformance(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # whoever read our output went away: say nothing more, anywhere
        silence(sys.stdout)
        silence(sys.stderr)
        return EXIT_BROKEN_PIPE
    except GBSIPError as exc:
        print(f"gbsip {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except FileNotFoundError as exc:
        print(f"gbsip {args.command}: {exc.filename}: no such file", file=sys.stderr)
        return EXIT_FAILED
