"""Run a job's process in its own process group, with a deadline, a cancel check and an
output cap; whatever happens, the whole group (grandchildren included) is gone afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from horus.groups import kill_group, peek_exit, write_marker
from horus.job import JobStatus
from horus.watch import Watch

#: seconds between two cancel checks while a process runs
CANCEL_POLL = 0.5
#: seconds to read output left in the pipes once the job's group is gone
DRAIN_LIMIT = 5.0
#: what a job's first process runs under so that it is killed the moment the worker process
#: that started it dies (util-linux setpriv sets PR_SET_PDEATHSIG, then execs the job): a
#: job must not go on to its effects while its job is being recovered elsewhere. Whatever
#: the job started in the background is ended by the reaper (groups.kill_recorded_groups).
DIE_WITH_WORKER = ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []
#: run between setpriv and the job. It waits for the go line the worker process writes on
#: its stdin once the job's group is recorded (so a reaper knows the group of every job that
#: got past this point), and stops there should that process die first: then the line never
#: comes, or the job has another parent and may not have got the death signal.
_PARENT_CHECK = (
    'read -r go && [ "$go" = go ] && [ "$PPID" = "$HORUS_PARENT" ] || exit 137; '
    'unset HORUS_PARENT; exec "$@"'
)
#: the line that lets a job past :data:`_PARENT_CHECK`; the job's own stdin follows it
GO = b"go\n"


def _die_with_me(argv: Sequence[str]) -> list[str]:
    if not DIE_WITH_WORKER:
        return list(argv)
    return [*DIE_WITH_WORKER, "/bin/sh", "-c", _PARENT_CHECK, "horus-job", *argv]


@dataclass(frozen=True)
class Outcome:
    """What a runner reports back: the worker adds the job id, times and its own name."""

    status: JobStatus
    output: str = ""
    error: str | None = None
    exit_code: int | None = None
    output_truncated: bool = False


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
    exited: Callable[[int], None] | None = None,
    label: str = "",
    scratch: Path | None = None,
) -> Outcome:
    """Run ``argv`` until it exits, its ``deadline`` (monotonic) passes or it is cancelled.

    With ``groups_dir``, the process group is recorded there while it runs (see
    :mod:`horus.groups`) with ``label`` and ``scratch``, a directory of the
    attempt's own that the reaper removes should this process die before its caller does.
    ``exited`` is told the exit code the moment the process exits on its own, before
    anything else is done.
    """
    proc = subprocess.Popen(
        _die_with_me(argv),
        env={**env, "HORUS_PARENT": str(os.getpid())} if DIE_WITH_WORKER else env,
        cwd=cwd,
        stdin=subprocess.PIPE if stdin is not None or DIE_WITH_WORKER else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    marker = None
    if groups_dir is not None:
        marker = write_marker(groups_dir, proc.pid, label, scratch)
    watch = Watch(proc, GO + (stdin or b"") if DIE_WITH_WORKER else stdin, output_cap)
    stopped: JobStatus | None = None
    next_cancel_check = time.monotonic() + CANCEL_POLL
    try:
        while not watch.until_exit(max(0.0, min(deadline, next_cancel_check) - time.monotonic())):
            now = time.monotonic()
            if now >= deadline:
                stopped = JobStatus.TIMEOUT
                break
            if now >= next_cancel_check:
                next_cancel_check = now + CANCEL_POLL
                if cancelled():
                    stopped = JobStatus.CANCELLED
                    break
        else:
            if exited is not None:
                exited(peek_exit(proc.pid))  # noted before reaping: see groups.collect_orphans
    finally:
        # Stopped or not, nothing of the job (background children included) outlives it.
        kill_group(proc.pid, proc)
        proc.wait()
        watch.drain(DRAIN_LIMIT)
        watch.close()
        if marker is not None:
            marker.unlink(missing_ok=True)
    out, err = watch.out, watch.err
    error = err.text() or None
    if stopped is JobStatus.TIMEOUT:
        hint = "raise --timeout if it needs longer"
        error = f"{error or ''}\n[horus: killed at the job's timeout; {hint}]"
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
