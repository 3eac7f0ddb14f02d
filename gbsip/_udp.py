"""UDP sockets that hear ICMP errors.

On Linux an *unconnected* UDP socket is told nothing when its datagram
meets a closed port: the ICMP port unreachable is dropped unless the socket
has ``IP_RECVERR`` (``IPV6_RECVERR``).  With it, the next receive fails with
``ECONNREFUSED`` at once (what the C pump counts as ``icmp_errors``, and
what asyncio hands to ``error_received``), and a copy of the error waits in
the socket's error queue, which keeps the socket polling as ready until it
is read: :func:`drain_errors` empties it.

uvloop's datagram transports crash on a socket with ``IP_RECVERR`` (its
receive callback does not expect an error without an address), so
:func:`report_errors` is only for sockets read by our own code (the
simulator's C pump) or by asyncio's selector loop.
"""
from __future__ import annotations

import asyncio
import socket
import sys

# not in every Python's socket module
_IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
_IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
_MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0)  # Linux only


def report_errors(sock: socket.socket) -> bool:
    """Ask for ICMP errors on ``sock``; False where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVERR, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
    except OSError:
        return False
    return True


def drain_errors(sock: socket.socket, limit: int = 64) -> int:
    """Read (and drop) what waits in the error queue; how many."""
    n = 0
    if not _MSG_ERRQUEUE:
        return n
    for _ in range(limit):
        try:
            sock.recvmsg(1, 512, _MSG_ERRQUEUE)
        except OSError:  # BlockingIOError: empty
            break
        n += 1
    return n


def datagram_socket(host: str, port: int, loop: asyncio.AbstractEventLoop) -> socket.socket:
    """A non-blocking UDP socket bound to (host, port) for a datagram
    endpoint on ``loop``: with ICMP errors reported when the loop is
    asyncio's own (see the module doc)."""
    info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(info[0], socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if _is_selector_loop(loop):
            report_errors(sock)
        sock.bind(info[4])
    except OSError:
        sock.close()
        raise
    return sock


def _is_selector_loop(loop: asyncio.AbstractEventLoop) -> bool:
    from asyncio import selector_events

    return isinstance(loop, selector_events.BaseSelectorEventLoop)
