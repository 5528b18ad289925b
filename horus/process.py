"""Run a job's process in its own process group, with a deadline, a cancel check and an
output cap; whatever happens, the whole group (grandchildren included) is gone afterwards."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from horus.groups import exit_file, kill_group, peek_exit, write_marker
from horus.job import JobStatus
from horus.watch import Watch

log = logging.getLogger(__name__)
#: seconds between two cancel checks while a process runs
CANCEL_POLL = 0.5
#: seconds to read output left in the pipes once the job's group is gone
DRAIN_LIMIT = 5.0
#: what a job's first process, its keeper, runs under: util-linux setpriv arms the death
#: signal (PR_SET_PDEATHSIG) so that the keeper hears at once when the worker process that
#: started it dies, then execs :data:`_KEEPER`.
DIE_WITH_WORKER = ["setpriv", "--pdeathsig", "USR2", "--"] if shutil.which("setpriv") else []
#: The keeper (/bin/sh), the leader of the job's process group, between setpriv and the job.
#: It waits for the go line its worker process writes on stdin once the group is recorded
#: (so a reaper knows the group of every job that started), and stops there should that
#: process die first: the line never comes, or the keeper has another parent and may have
#: missed the death signal. It runs the job as its child (with the rest of stdin; a job
#: killed by signal N exits 128 + N, as in a shell) and, when the job exits (a trap that
#: interrupts ``wait`` only makes it wait again), writes its exit status to
#: ``exit-<group id>`` in the groups directory
#: before it exits itself: should the worker die before recording that exit, whoever reaps
#: the group (the sweeper, the worker's main process) still learns that the job ran to its
#: end. When the worker process dies (SIGUSR2) it kills the job at once, so that the job
#: never goes on to its effects while it is recovered elsewhere, and records how it ended.
#: SIGTERM (a timeout, a cancel) reaches the job through the group; the keeper waits.
_KEEPER = """\
read -r go && [ "$go" = go ] && [ "$PPID" = "$HORUS_PARENT" ] || exit 137
unset HORUS_PARENT
d=$1; shift
trap 'i=1' TERM
trap 'i=1; dead=1; kill -9 "$c" 2>/dev/null' USR2
exec 3<&0
{ exec "$@"; } <&3 3<&- & c=$!
exec 3<&-
[ -z "$dead" ] || kill -9 "$c"
i=1
while [ -n "$i" ]; do i=; wait "$c" 2>/dev/null; s=$?; done
[ -z "$d" ] || echo "$s" 2>/dev/null > "$d/exit-$$"
exit "$s"
"""
#: the line that lets a job past the keeper's first check; the job's own stdin follows it
GO = b"go\n"


@cache
def _default_signals() -> list[str]:
    """What gives the job SIGINT and SIGQUIT back (a shell starts a background child with
    both ignored): GNU env's --default-signal, where this env has it."""
    argv = ["env", "--default-signal=INT,QUIT", "--"]
    try:
        works = subprocess.run([*argv, "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        works = False
    if not works:
        log.warning("env has no --default-signal: jobs start with SIGINT and SIGQUIT ignored")
    return argv if works else []


def _die_with_me(argv: Sequence[str], groups_dir: Path | None) -> list[str]:
    if not DIE_WITH_WORKER:
        return list(argv)
    where = str(groups_dir) if groups_dir is not None else ""
    keeper = [*DIE_WITH_WORKER, "/bin/sh", "-c", _KEEPER, "horus-job", where]
    return [*keeper, *_default_signals(), *argv]


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
        _die_with_me(argv, groups_dir),
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
        if groups_dir is not None:
            exit_file(groups_dir, proc.pid).unlink(missing_ok=True)
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
