"""Run a job's process in its own process group, with a deadline, a cancel check and an
output cap; whatever happens, the whole group (grandchildren included) is gone afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from horus.job import JobStatus

#: seconds between SIGTERM and SIGKILL when a job's group is stopped
KILL_GRACE = 1.0
#: seconds between two cancel checks while a process runs
CANCEL_POLL = 0.5


@dataclass(frozen=True)
class Outcome:
    """What a runner reports back: the worker adds the job id, times and its own name."""

    status: JobStatus
    output: str = ""
    error: str | None = None
    exit_code: int | None = None
    output_truncated: bool = False


class _Capture(threading.Thread):
    """Drains one pipe, keeping the first ``cap`` bytes and counting the rest."""

    def __init__(self, stream: IO[bytes], cap: int) -> None:
        super().__init__(daemon=True)
        self.stream, self.cap = stream, cap
        self.kept = bytearray()
        self.dropped = 0

    def run(self) -> None:
        while chunk := self.stream.read1(65536):  # type: ignore[attr-defined]
            room = self.cap - len(self.kept)
            self.kept += chunk[:room]
            self.dropped += max(0, len(chunk) - room)
        self.stream.close()

    def text(self) -> str:
        body = self.kept.decode("utf-8", "replace")
        if self.dropped:
            body += f"\n[horus: output truncated, {self.dropped} more bytes dropped]"
        return body


def _group_alive(pgid: int, leader: subprocess.Popen[bytes] | None) -> bool:
    """True while a process of the group is still running (zombies do not count: an
    orphan's zombie waits for init to reap it, which may take long in a container)."""
    if leader is not None:
        leader.poll()  # reap our own child
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def _feed(stream: IO[bytes], data: bytes) -> None:
    with contextlib.suppress(OSError):
        stream.write(data)
        stream.close()


def kill_group(pgid: int, leader: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM the group, then SIGKILL whatever is left after :data:`KILL_GRACE`.

    ``leader`` is the group leader when this process started it (it is reaped here).
    """
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + KILL_GRACE
    while time.monotonic() < end:
        if not _group_alive(pgid, leader):
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def kill_recorded_groups(groups_dir: Path) -> int:
    """Kill the job process groups recorded in ``groups_dir`` whose leader still lives.

    Each running job leaves a file named after its process group id holding the leader's
    start time, so a supervisor can end the jobs of a worker that died without cleaning up.
    """
    killed = 0
    for entry in groups_dir.glob("*") if groups_dir.is_dir() else []:
        try:
            pgid, started = int(entry.name), entry.read_text().strip()
        except (ValueError, OSError):
            continue
        if _start_time(pgid) == started:
            kill_group(pgid)
            killed += 1
        entry.unlink(missing_ok=True)
    return killed


def run_process(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    cwd: Path,
    deadline: float,
    cancelled: Callable[[], bool],
    output_cap: int,
    stdin: bytes | None = None,
    groups_dir: Path | None = None,
) -> Outcome:
    """Run ``argv`` until it exits, its ``deadline`` (monotonic) passes or it is cancelled.

    With ``groups_dir``, the process group is recorded there while it runs (see
    :func:`kill_recorded_groups`).
    """
    proc = subprocess.Popen(
        list(argv),
        env=env,
        cwd=cwd,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    marker = None
    if groups_dir is not None:
        groups_dir.mkdir(parents=True, exist_ok=True)
        marker = groups_dir / str(proc.pid)
        marker.write_text(_start_time(proc.pid) or "")
    out, err = _Capture(proc.stdout, output_cap), _Capture(proc.stderr, output_cap)
    out.start()
    err.start()
    if stdin is not None and proc.stdin is not None:
        # Written beside the deadline loop: a process that never reads is still timed out.
        threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True).start()
    stopped: JobStatus | None = None
    next_cancel_check = time.monotonic() + CANCEL_POLL
    try:
        while True:
            try:
                proc.wait(timeout=0.05)
                break
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if now >= deadline:
                stopped = JobStatus.TIMEOUT
            elif now >= next_cancel_check:
                next_cancel_check = now + CANCEL_POLL
                if cancelled():
                    stopped = JobStatus.CANCELLED
            if stopped is not None:
                kill_group(proc.pid, proc)
                proc.wait()
                break
    finally:
        # Leftovers (background children, a killed worker's job) never outlive the job.
        kill_group(proc.pid, proc)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.join(timeout=5)
        err.join(timeout=5)
        if marker is not None:
            marker.unlink(missing_ok=True)
    error = err.text() or None
    if stopped is JobStatus.TIMEOUT:
        limit = "the job's timeout"
        error = (error or "") + f"\n[horus: killed at {limit}; raise --timeout if it needs longer]"
    elif stopped is JobStatus.CANCELLED:
        error = (error or "") + "\n[horus: cancelled while running]"
    status = stopped or (JobStatus.COMPLETED if proc.returncode == 0 else JobStatus.FAILED)
    return Outcome(
        status=status,
        output=out.text(),
        error=error.lstrip("\n") if error else None,
        exit_code=proc.returncode,
        output_truncated=bool(out.dropped or err.dropped),
    )
