"""The pid file of ``horus up`` (``$HORUS_HOME/run/up.pid``): how ``horus down`` finds the
platform of the same ``HORUS_HOME``, and how a second ``horus up`` there knows it is not
alone.

The file holds the pid and the process's start time (field 22 of ``/proc/<pid>/stat``), so
that a pid the kernel gave to another process after a crash is never taken for Horus.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from horus.errors import ConfigError, HorusError


def path_for(home: Path) -> Path:
    """Where the pid file of ``home``'s ``horus up`` lives."""
    return home / "run" / "up.pid"


def _started(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot, or None if it does not exist or
    has exited (a zombie waiting for its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def running(home: Path) -> int | None:
    """The pid of the ``horus up`` serving ``home``, or None when none is (a stale file is
    removed)."""
    file = path_for(home)
    try:
        pid_text, started = file.read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    if _started(pid) == started:
        return pid
    file.unlink(missing_ok=True)
    return None


def claim(home: Path) -> None:
    """Record this process as the ``horus up`` of ``home``; refuse if one is running."""
    other = running(home)
    if other is not None and other != os.getpid():
        raise ConfigError(
            f"Horus is already up with HORUS_HOME={home} (pid {other}): stop it with "
            "`horus down`, or set HORUS_HOME to another directory"
        )
    file = path_for(home)
    file.parent.mkdir(parents=True, exist_ok=True)
    partial = file.with_suffix(".tmp")
    partial.write_text(f"{os.getpid()} {_started(os.getpid())}\n")
    partial.replace(file)


def release(home: Path) -> None:
    """Remove the pid file if it is this process's."""
    if running(home) == os.getpid():
        path_for(home).unlink(missing_ok=True)


def stop(home: Path, timeout: float) -> int | None:
    """SIGTERM the ``horus up`` of ``home`` and wait until it has exited; the pid stopped,
    or None when none was running."""
    pid = running(home)
    if pid is None:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + timeout
    while _started(pid) is not None:
        if time.monotonic() > end:
            raise HorusError(
                f"horus up (pid {pid}) is still stopping after {timeout:g} s: wait, or "
                f"end it with `kill -INT {pid}`"
            )
        time.sleep(0.1)
    return pid
