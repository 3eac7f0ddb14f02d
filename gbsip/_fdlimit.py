"""File descriptors: what a role needs, against the process's limit.

Every TCP connection is a descriptor, on both ends: 100,000 simulated
devices need 100,000 of them in the simulator and as many in the
registrar, far above the usual soft limit (1024).  The roles ask here
before they start, raise the soft limit to the hard one when told to
(``raise_fd_limit=True``; ``gbsip serve`` and ``gbsip simulate`` do by
default), and otherwise say in one line what is needed and how to get it.
"""
from __future__ import annotations

import os
import resource

#: Descriptors a role keeps besides its connections (listening sockets,
#: epoll, the event loop's own, a spare for shedding connections).
OVERHEAD = 64


def limits() -> tuple[int, int]:
    """(soft, hard) RLIMIT_NOFILE; RLIM_INFINITY as a large number."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    big = 1 << 30
    return (big if soft == resource.RLIM_INFINITY else soft,
            big if hard == resource.RLIM_INFINITY else hard)


def in_use() -> int:
    """Descriptors this process has open now (0 when it cannot tell)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def make_room(more: int, *, raise_limit: bool) -> int:
    """Make room for ``more`` descriptors beyond those open now (negative:
    as many as allowed): when the soft limit is short and ``raise_limit``,
    it is raised to the hard limit (so that two roles in one process both
    find room).  Returns how many more descriptors the limit leaves room for."""
    soft, hard = limits()
    used = in_use()
    short = soft < hard if more < 0 else soft < used + more + OVERHEAD
    if raise_limit and short:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE,
                               (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
            soft = hard
        except (ValueError, OSError):
            pass
    return max(0, soft - used - OVERHEAD)


def shortage(what: str, more: int) -> str:
    """One line: ``what`` needs ``more`` descriptors, the limits, how to raise them."""
    soft, hard = limits()
    total = in_use() + more + OVERHEAD
    if total <= hard:
        how = (f"raise the soft limit (`ulimit -n {total}`, or raise_fd_limit=True: "
               "--raise-fd-limit)")
    else:
        how = (f"raise the hard limit as root (`ulimit -Hn {total}`, LimitNOFILE={total} "
               "in a systemd unit, or nofile in /etc/security/limits.conf)")
    return (f"{what} needs about {total} file descriptors but the limit is {soft} "
            f"(hard limit {hard}): {how}, or ask for fewer")
