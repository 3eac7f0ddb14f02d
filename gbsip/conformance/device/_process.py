"""The camera process ``--gb-device-cmd`` starts: its stderr kept in a
file, and what to say when it exits before it has registered."""
from __future__ import annotations

import subprocess
import time
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from gbsip.conformance._platform_rig import PlatformRig

#: Lines of the process's stderr a failure shows.
STDERR_LINES = 20


def failed_early(proc: subprocess.Popen[bytes] | None) -> bool:
    """Whether the device command has already exited with a failure (a
    command that exits 0 may have left the camera running in the
    background: the wait for its REGISTER goes on)."""
    return proc is not None and proc.poll() not in (None, 0)


def exit_report(proc: subprocess.Popen[bytes] | None, stderr: IO[bytes] | None) -> str:
    """``""`` while the process runs (or none was started), else its exit
    status and the last lines of its stderr."""
    if proc is None or proc.poll() is None:
        return ""
    status = proc.returncode
    how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
    tail = ""
    if stderr is not None:
        stderr.flush()
        stderr.seek(0)
        lines = stderr.read().decode("utf-8", "replace").rstrip().splitlines()
        tail = "\n".join(lines[-STDERR_LINES:])
    return (f"the device command (--gb-device-cmd) {how}"
            + (f"; its stderr ends:\n{tail}" if tail else "; it wrote nothing to stderr"))


def wait_registered(rig: PlatformRig, proc: subprocess.Popen[bytes] | None,
                    timeout: float) -> bool:
    """Wait at most ``timeout`` seconds for the camera's first accepted
    registration, giving up at once when the device command fails (the
    rig wakes on messages only, so its exit is looked for every 0.1 s)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if rig.wait(lambda: rig.registrations, min(0.1, max(0.0, left))):
            return True
        if left <= 0 or failed_early(proc):
            return bool(rig.registrations)
