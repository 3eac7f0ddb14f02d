"""``gbsip query DEVICE_ID catalog``: query one device by hand.

A small registrar of its own listens on ``--listen`` (GB/T 28181 §9.1:
the device must be pointed at it and register there), waits up to
``--wait`` seconds for DEVICE_ID to register (or uses the binding at once
when it is already there), sends the query (§9.5) and prints the exchange:
the registration, the MESSAGE sent, the SIP answer, the ``<Response>``
parts and the result (``--json``: one JSON object).  Exit status 0 when the
answer is complete, 1 when it is partial, refused or missing.

Why an embedded registrar and not ``--server``: a platform only queries
devices registered to it (the request goes to the binding: its Contact,
its source address, over TCP its connection), so a separate process
cannot borrow another platform's registration.  Point the camera (or
``gbsip register``) at ``--listen``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import astuple
from typing import Any, Callable

from gbsip import _cli_args as opt
from gbsip._cli_args import EXIT_USAGE
from gbsip.queries import QUERY_TYPES, QueryResult

EXIT_OK, EXIT_FAILED = 0, 1


def host_port(text: str) -> tuple[str, int]:
    """HOST:PORT (``[::1]:5060`` for IPv6)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"wants HOST:PORT, e.g. 127.0.0.1:5060, not {text!r}")
    return opt.ip_address(host), opt.port(port_text)


def add_query(sub: Any, run: Callable[[Any], int]) -> None:
    p = sub.add_parser(
        "query", help="query one device (Catalog, DeviceInfo...) through a registrar of its own",
        description="Listen as a GB/T 28181 platform on --listen, wait for DEVICE_ID to "
                    "register there, send it a MANSCDP query and print the exchange and the "
                    "answer.  Exit status 0 when the answer is complete, 1 otherwise.")
    p.add_argument("device_id", metavar="DEVICE_ID", type=opt.device_id,
                   help="the device's 20-digit ID")
    p.add_argument("query", metavar="QUERY", type=str.lower,
                   choices=sorted(QUERY_TYPES), help="one of: " + ", ".join(sorted(QUERY_TYPES)))
    p.add_argument("--listen", type=host_port, default=("127.0.0.1", 5060),
                   metavar="HOST:PORT", help="where to listen (default 127.0.0.1:5060)")
    p.add_argument("--transport", type=opt.transports, default="udp,tcp",
                   help="udp, tcp or udp,tcp (default %(default)s)")
    p.add_argument("--server-id", default="34020000002000000001",
                   help="20-digit platform ID (default %(default)s)")
    p.add_argument("--password", default="12345678",
                   help="the device's password (default %(default)s)")
    p.add_argument("--wait", type=opt.seconds(), default=60.0,
                   help="seconds to wait for the device to register (default %(default)s)")
    p.add_argument("--timeout", type=opt.seconds(), default=10.0,
                   help="seconds to wait for the whole answer (default %(default)s)")
    p.add_argument("--start", type=opt.gb_time,
                   help="RecordInfo: StartTime (e.g. 2026-12-03T00:00:00)")
    p.add_argument("--end", type=opt.gb_time, help="RecordInfo: EndTime (after --start)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=lambda a: run(query(a)))


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.json:
        print(text, flush=True)


def _print_result(result: QueryResult) -> None:
    state = "complete" if result.complete else (
        "refused" if result.status and result.status >= 300 else
        "timed out" if result.timed_out else "incomplete")
    total = f", SumNum {result.sum_num}" if result.sum_num is not None else ""
    missing = f", {result.missing} missing" if result.missing else ""
    print(f"< Response {result.cmd_type} SN={result.sn}: {result.parts_received} part(s)"
          f"{total}, {len(result.items)} item(s){missing}, {result.duplicates} duplicate(s): "
          f"{state} ({result.elapsed:.2f} s)")
    for item in result.items:
        print("  " + "  ".join(str(v) for v in astuple(item) if v is not None))
    for name, value in result.fields().items():
        print(f"  {name}: {value}")


async def query(args: argparse.Namespace) -> int:
    from gbsip.errors import ConfigurationError, RegistrarError
    from gbsip.events import DeviceRegistered
    from gbsip.registrar import Registrar

    prog = "gbsip query"
    try:
        opt.server_id_domain(args.server_id, None, None)
        if args.query == "recordinfo" and not (args.start and args.end):
            raise opt.UsageError("--start", "a RecordInfo query needs --start and --end")
        if args.start and args.end and args.end <= args.start:
            raise opt.UsageError("--end", f"{args.end} is not after --start {args.start}")
    except opt.UsageError as exc:
        return opt.fail(prog, exc)
    host, port = args.listen
    try:
        reg = Registrar(args.server_id, host=host, port=port, transports=args.transport,
                        passwords=args.password, keepalive_events=False, min_expires=1)
        await reg.start()
    except ConfigurationError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RegistrarError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    out: dict[str, Any] = {"device_id": args.device_id}
    try:
        addrs = ", ".join(f"{t}://{h}:{p}" for t, (h, p) in reg.addresses.items())
        _say(args, f"waiting for {args.device_id} to register on {addrs} "
                   f"(up to {args.wait:g} s)")
        binding = reg.binding(args.device_id)
        if binding is None:
            try:
                ev = await reg.wait_for(DeviceRegistered, args.device_id, timeout=args.wait)
            except asyncio.TimeoutError:
                print(f"{prog}: {args.device_id} did not register on {addrs} within "
                      f"{args.wait:g} s: point the device at this address (password "
                      f"{args.password!r}) or give a longer --wait", file=sys.stderr)
                return EXIT_FAILED
            src = f"{ev.source[0]}:{ev.source[1]}" if ev.source else "?"
            _say(args, f"< REGISTER from {src}/{ev.transport} contact={ev.contact} "
                       f"expires={ev.expires}: registered")
            out["registered"] = {"source": list(ev.source) if ev.source else None,
                                 "transport": ev.transport, "contact": ev.contact}
        binding = reg.binding(args.device_id)
        assert binding is not None
        cmd = QUERY_TYPES[args.query]
        _say(args, f"> MESSAGE Query {cmd} to {binding.source[0]}:{binding.source[1]}/"
                   f"{binding.transport} ({binding.contact})")
        result = await reg.query(args.device_id, cmd, timeout=args.timeout,
                                 start_time=args.start, end_time=args.end)
        if not args.json:
            answer = (f"< {result.status} {result.reason or ''}".rstrip()
                      if result.status is not None else "< no SIP answer")
            print(answer)
            _print_result(result)
        else:
            out["result"] = result.as_dict()
            print(json.dumps(out, ensure_ascii=False, default=str))
        return EXIT_OK if result.complete else EXIT_FAILED
    finally:
        await reg.close()
