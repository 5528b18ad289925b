"""Job process groups: stopping one, the marker each running job leaves, and the reaping of
what a worker process that died left behind.

A running job's process leads a process group of its own. Its worker process records the
group in a marker file (in the per-host groups directory, named after the group id) so that
whoever outlives that worker process can end the job before it runs again elsewhere:

- a job's keeper (its group leader, see :mod:`horus.proc.launch`) writes the job's exit
  status next to the marker (``exit-<group id>``) before it exits;
- :func:`orphan_exits` (read by the sweeper and the worker's main process, which record
  them) finds how each job whose worker process died ended, from that file or, in the
  worker's main process (a child subreaper, which adopts the keeper of a pool process that
  died), from the zombie; :func:`reap_adopted` reaps whatever else a job left there;
- every reaper (the sweeper, the worker's main process, ``horus up``) runs
  :func:`kill_recorded_groups` to end what is left of those groups.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

#: seconds between SIGTERM and SIGKILL when a job's group is stopped
KILL_GRACE = 1.0
#: the same for a job whose worker process died (its keeper killed the job already; this is
#: for what the job left, and lets the keeper write the job's exit status first)
ORPHAN_GRACE = 0.25
PR_SET_CHILD_SUBREAPER = 36
#: the name every job's scratch directory starts with (in the worker's temporary directory)
SCRATCH_PREFIX = "horus-"


class _Stat(NamedTuple):
    state: str
    ppid: int
    pgrp: int
    started: str


def _stat(pid: int) -> _Stat | None:
    """A process's state letter, parent, process group and start time (clock ticks)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return _Stat(fields[0], int(fields[1]), int(fields[2]), fields[19])
    except (OSError, IndexError, ValueError):
        return None


def start_time(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot), or None if there is none."""
    stat = _stat(pid)
    return stat.started if stat else None


def _lives(pid: int, started: str) -> bool:
    """True while the process ``pid`` that started at ``started`` runs (a zombie is dead:
    a pool process stays one until the worker's main process reaps it)."""
    stat = _stat(pid)
    return stat is not None and stat.started == started and stat.state not in ("Z", "X")


def group_alive(pgid: int, leader: subprocess.Popen[bytes] | None = None) -> bool:
    """True while a process of the group is still running (zombies do not count: an
    orphan's zombie waits for init to reap it, which may take long in a container)."""
    if leader is not None:
        leader.poll()  # reap our own child
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # a member runs as another user: look for it below
    wanted = str(pgid).encode()
    proc = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)
    try:  # raw reads, half the cost of open(): this runs at the end of most jobs
        for name in os.listdir(proc):
            if not name.isdigit():
                continue
            try:
                fd = os.open(f"{name}/stat", os.O_RDONLY, dir_fd=proc)
            except OSError:
                continue
            try:
                fields = os.read(fd, 1024).rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue
            finally:
                os.close(fd)
            if len(fields) > 2 and fields[2] == wanted and fields[0] != b"Z":
                return True
    finally:
        os.close(proc)
    return False


def kill_group(
    pgid: int, leader: subprocess.Popen[bytes] | None = None, grace: float = KILL_GRACE
) -> None:
    """SIGTERM the group, then SIGKILL whatever is left after ``grace`` seconds (at once
    with no grace). ``leader`` is the group leader when this process started it (it is
    reaped here). Members this process may not signal are left alone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if grace > 0:
            os.killpg(pgid, signal.SIGTERM)
            end, pause = time.monotonic() + grace, 0.001
            while time.monotonic() < end:
                if not group_alive(pgid, leader):
                    return
                # a job that has just ended is mostly gone within a millisecond or two (a
                # sandbox's pid-1 is still exiting): look again soon, then less often
                time.sleep(pause)
                pause = min(pause * 2, 0.02)
        os.killpg(pgid, signal.SIGKILL)


@dataclass(frozen=True)
class Marker:
    """The file a running job leaves in the groups directory, named after its process group
    id. Its first line holds the leader's start time, the pid and start time of the worker
    process that started it, that process's parent (the worker's main process, which adopts
    the job should the worker process die) and a label; its second line, if any, the
    attempt's scratch directory."""

    path: Path
    pgid: int
    started: str
    owner: int
    owner_started: str
    adopter: int
    label: str
    scratch: Path | None = None

    @property
    def orphaned(self) -> bool:
        """True once the worker process that started the job is gone."""
        return not _lives(self.owner, self.owner_started)

    @property
    def exit_file(self) -> Path:
        """Where the job's keeper writes the job's exit status."""
        return exit_file(self.path.parent, self.pgid)

    def exit_code(self) -> int | None:
        """The job's exit status as its keeper wrote it, or None (not written yet)."""
        try:
            return int(self.exit_file.read_text())
        except (OSError, ValueError):
            return None

    def leader(self) -> _Stat | None:
        """The job's first process while it exists (a zombie included), else None."""
        stat = _stat(self.pgid)
        return stat if stat is not None and stat.started == self.started else None


def exit_file(groups_dir: Path, pgid: int) -> Path:
    """The file the keeper of job group ``pgid`` writes the job's exit status to."""
    return groups_dir / f"exit-{pgid}"


def write_marker(
    groups_dir: Path,
    pid: int,
    label: str = "",
    scratch: Path | None = None,
    started: bool = True,
) -> Path:
    """Record the job process ``pid`` (a group leader this process just started, or, with
    ``started`` False, one it recorded before, under a new label). The marker is replaced
    whole (never seen half written); a new leader's stale exit file goes first."""
    groups_dir.mkdir(parents=True, exist_ok=True)
    if started:
        exit_file(groups_dir, pid).unlink(missing_ok=True)  # an earlier process's, same pid
    me = os.getpid()
    head = f"{start_time(pid)} {me} {start_time(me)} {os.getppid()} {label}".strip()
    path = groups_dir / str(pid)
    draft = groups_dir / f".{pid}.new"  # not a marker's name until it is renamed
    draft.write_text(f"{head}\n{scratch}" if scratch is not None else head)
    os.replace(draft, path)
    return path


def markers(groups_dir: Path) -> list[Marker]:
    """The well-formed markers in ``groups_dir``."""
    found = []
    for path in groups_dir.glob("[0-9]*") if groups_dir.is_dir() else []:
        try:
            head, _, scratch = path.read_text().partition("\n")
            started, owner, owner_started, adopter, *label = head.split()
            found.append(
                Marker(
                    path,
                    int(path.name),
                    started,
                    int(owner),
                    owner_started,
                    int(adopter),
                    " ".join(label),
                    Path(scratch) if scratch else None,
                )
            )
        except (ValueError, OSError):
            continue
    return found


def _remove_scratch(scratch: Path) -> None:
    """Remove a dead worker process's scratch directory: only one that is what the worker
    makes (a real directory named horus-... right in its temporary directory)."""
    if (
        scratch.name.startswith(SCRATCH_PREFIX)
        and scratch.parent == Path(tempfile.gettempdir())
        and scratch.is_dir()
        and not scratch.is_symlink()
    ):
        shutil.rmtree(scratch, ignore_errors=True)


def kill_recorded_groups(groups_dir: Path, orphans_only: bool = False) -> int:
    """Kill what is left of the job process groups recorded in ``groups_dir``; with
    ``orphans_only``, only of those whose worker process is gone (quickly: their keeper
    has killed the job already). Returns how many groups it killed.

    A marker goes once its leader is gone, with its exit file, and the scratch directory of
    an orphan with them. It stays while nobody has yet recorded (:func:`settle`) how an
    orphan ended: while its leader is a zombie its adopter (the worker's main process) has
    yet to reap, or while its exit file is there.
    """
    killed = 0
    for marker in markers(groups_dir):
        orphaned = marker.orphaned
        if orphans_only and not orphaned:
            continue  # its worker process lives and will end it
        leader = marker.leader()
        # The leader may be gone while the job's children live on in its group; a pid is
        # not reused while a group of that id exists, so members found under it are the
        # job's. A live leader that started later is another process.
        ours = leader is not None or _stat(marker.pgid) is None
        if ours and group_alive(marker.pgid):
            kill_group(marker.pgid, grace=ORPHAN_GRACE if orphaned else KILL_GRACE)
            killed += 1
        leader = marker.leader()
        if orphaned and marker.exit_file.exists():
            continue  # how it ended is recorded first (settle)
        uncollected = leader is not None and leader.state == "Z" and leader.ppid == marker.adopter
        if leader is None or (leader.state == "Z" and not uncollected):
            if orphaned and marker.scratch is not None:
                _remove_scratch(marker.scratch)
            marker.exit_file.unlink(missing_ok=True)
            marker.path.unlink(missing_ok=True)
    return killed


def _exit_code(info: os.waitid_result) -> int:
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def peek_exit(pid: int) -> int:
    """The exit code of an exited child, without reaping it: should this process die before
    it records the code, the zombie goes to the subreaper, which records it."""
    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    return -1 if info is None else _exit_code(info)


@dataclass(frozen=True)
class OrphanExit:
    """How a recorded job whose worker process died ended: its marker's label and its exit
    code (-1: its keeper died writing it, so how it ended is unknown)."""

    marker: Marker
    code: int
    #: its keeper's zombie is this process's (a child subreaper's) to reap
    adopted: bool

    @property
    def label(self) -> str:
        """The label the worker process wrote in the job's marker."""
        return self.marker.label


def orphan_exits(groups_dir: Path) -> list[OrphanExit]:
    """The exits of the recorded jobs whose worker process died, from the exit file their
    keeper wrote or, for a keeper this process adopted (a child subreaper: the worker's main
    process), from its zombie. Nothing is dropped here: :func:`settle` drops one once its
    exit is recorded (a job that exited 0 just before its worker process died completed,
    and must not run again)."""
    found = []
    me = os.getpid()
    for marker in markers(groups_dir):
        if not marker.orphaned:
            continue  # its worker process lives and records it
        leader = marker.leader()
        adopted = leader is not None and leader.ppid == me and leader.state == "Z"
        code = marker.exit_code()
        if code is None and adopted:
            info = os.waitid(os.P_PID, marker.pgid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            code = None if info is None else _exit_code(info)
        ended = leader is None or leader.state == "Z"
        if code is None and ended and marker.exit_file.exists():
            code = -1  # the keeper died writing it: how the job ended is unknown
        if code is not None:
            found.append(OrphanExit(marker, code, adopted))
    return found


def settle(found: OrphanExit) -> None:
    """Drop an orphan's exit once it is recorded: its exit file, and its keeper's zombie."""
    found.marker.exit_file.unlink(missing_ok=True)
    if found.adopted:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(found.marker.pgid, 0)


def unrecorded(groups_dir: Path) -> bool:
    """True while the exit of a job whose worker process died waits to be recorded (its
    keeper wrote it, and nobody has settled it yet)."""
    return any(m.orphaned and m.exit_file.exists() for m in markers(groups_dir))


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
    leaders whose exit is recorded first (:func:`orphan_exits`): the background children a job
    left (they come here once the job exits, and are ended then). Its own children (the
    pool processes, in its process group) are left to whoever started them. Returns how
    many were reaped."""
    mine = os.getpgrp()
    leaders = {marker.pgid for marker in markers(groups_dir)}
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
