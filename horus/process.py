"""Run a job's process in its own process group, with a deadline, a cancel check and an
output cap; whatever happens, the whole group (grandchildren included) is gone afterwards."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from horus.job import JobStatus
from horus.watch import Watch

#: seconds between SIGTERM and SIGKILL when a job's group is stopped
KILL_GRACE = 1.0
#: seconds between two cancel checks while a process runs
CANCEL_POLL = 0.5
PR_SET_CHILD_SUBREAPER = 36
#: seconds to read output left in the pipes once the job's group is gone
DRAIN_LIMIT = 5.0
#: what a job's first process runs under so that it is killed the moment the worker process
#: that started it dies (util-linux setpriv sets PR_SET_PDEATHSIG, then execs the job): a
#: job must not go on to its effects while its job is being recovered elsewhere. Whatever
#: the job started in the background is ended by the reaper (kill_recorded_groups).
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


class _Stat(NamedTuple):
    state: str
    pgrp: int
    started: str


def _stat(pid: int) -> _Stat | None:
    """A process's state letter, process group and start time (clock ticks since boot)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return _Stat(fields[0], int(fields[2]), fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _start_time(pid: int) -> str | None:
    stat = _stat(pid)
    return stat.started if stat else None


def _lives(pid: int, started: str) -> bool:
    """True while the process ``pid`` that started at ``started`` runs (a zombie is dead:
    a pool process stays one until the worker's main process reaps it)."""
    stat = _stat(pid)
    return stat is not None and stat.started == started and stat.state not in ("Z", "X")


@dataclass(frozen=True)
class Marker:
    """The file a running job leaves in the groups directory, named after its process
    group id: the leader's start time, its worker process's pid and start time and a label
    on its first line; on the second, the attempt's scratch directory, if it has one."""

    path: Path
    pgid: int
    started: str
    owner: int
    owner_started: str
    label: str
    scratch: Path | None = None

    @property
    def orphaned(self) -> bool:
        """True once the worker process that started the job is gone."""
        return not _lives(self.owner, self.owner_started)


def _markers(groups_dir: Path) -> list[Marker]:
    """The well-formed group markers in ``groups_dir``."""
    found = []
    for path in groups_dir.glob("[0-9]*") if groups_dir.is_dir() else []:
        try:
            head, _, scratch = path.read_text().partition("\n")
            started, owner, owner_started, *label = head.split()
            found.append(
                Marker(
                    path,
                    int(path.name),
                    started,
                    int(owner),
                    owner_started,
                    " ".join(label),
                    Path(scratch) if scratch else None,
                )
            )
        except (ValueError, OSError):
            continue
    return found


def kill_recorded_groups(groups_dir: Path, orphans_only: bool = False) -> int:
    """Kill the job process groups recorded in ``groups_dir`` whose leader still lives;
    with ``orphans_only``, only those whose worker process (the one that started the job)
    is gone.

    Each running job leaves a file named after its process group id holding the leader's
    start time and its worker process's pid and start time, so a worker or a supervisor can
    end the jobs of a worker process that died without cleaning up, before the job is
    recovered and run again. A marker is removed once its leader is gone: while the leader
    is a zombie, the process that adopted it (see :func:`collect_orphans`) still needs the
    marker to record how that job ended. The scratch directory of a job whose worker
    process died goes with its marker.
    """
    killed = 0
    for marker in _markers(groups_dir):
        if orphans_only and not marker.orphaned:
            continue  # its worker process lives and will end it
        pgid = marker.pgid
        leader = _stat(pgid)
        ours = leader is None or leader.started == marker.started
        # The leader may be gone (it dies with its worker) while the job's children live
        # on in its group; a pid is not reused while a group of that id exists, so members
        # found under it are the job's. A live leader that started later is another process.
        if ours and _group_alive(pgid, None):
            kill_group(pgid)
            killed += 1
        if not ours or _stat(pgid) is None:
            if marker.scratch is not None and marker.orphaned:
                shutil.rmtree(marker.scratch, ignore_errors=True)
            marker.path.unlink(missing_ok=True)
    return killed


def _exit_code(info: os.waitid_result) -> int:
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def _peek_exit(pid: int) -> int:
    """The exit code of an exited child, without reaping it: should this process die before
    it records the code, the zombie goes to the subreaper, which records it."""
    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    return -1 if info is None else _exit_code(info)


def collect_orphans(groups_dir: Path, note: Callable[[str, int], None]) -> int:
    """Reap the recorded job processes whose worker process died and that were handed to
    this process (a child subreaper: the worker's main process), each only after ``note``
    was told its label and exit code (a job that exited 0 just before its worker process
    died completed, and must not run again): should ``note`` fail, the zombie waits for the
    next call. Returns how many were reaped."""
    reaped = 0
    for marker in _markers(groups_dir):
        if not marker.orphaned:
            continue  # its worker process lives and reaps it
        try:
            info = os.waitid(os.P_PID, marker.pgid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            continue  # not ours
        if info is None:
            continue  # still running: the reaper kills it
        note(marker.label, _exit_code(info))
        os.waitpid(marker.pgid, 0)
        reaped += 1
    return reaped


def _children() -> list[int]:
    """The pids of this process's children (zombies included)."""
    found: list[int] = []
    for task in Path("/proc/self/task").iterdir():
        try:
            found += [int(pid) for pid in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def reap_adopted(groups_dir: Path) -> int:
    """Reap the exited processes this process adopted as a child subreaper, save the job
    leaders whose exit :func:`collect_orphans` notes first: the background children a job
    left (run_process ends them when the job exits, and they come here). Its own children
    (the pool processes, in its process group) are left to whoever started them. Returns
    how many were reaped."""
    mine = os.getpgrp()
    leaders = {marker.pgid for marker in _markers(groups_dir)}
    reaped = 0
    for pid in _children():
        stat = _stat(pid)
        if stat is None or stat.state != "Z" or stat.pgrp == mine or pid in leaders:
            continue
        with contextlib.suppress(ChildProcessError):
            reaped += os.waitpid(pid, os.WNOHANG)[0] == pid
    return reaped


def become_subreaper() -> bool:
    """Make this process adopt the orphans of its descendants (Linux PR_SET_CHILD_SUBREAPER),
    so that it learns how a job ended whose worker process died. False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


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
    :func:`kill_recorded_groups`) with ``label`` and ``scratch``, a directory of the
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
        groups_dir.mkdir(parents=True, exist_ok=True)
        marker = groups_dir / str(proc.pid)
        me = os.getpid()
        head = f"{_start_time(proc.pid)} {me} {_start_time(me)} {label}".strip()
        marker.write_text(f"{head}\n{scratch}" if scratch is not None else head)
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
                exited(_peek_exit(proc.pid))  # noted before reaping: see collect_orphans
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
