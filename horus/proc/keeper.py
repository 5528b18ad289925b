"""A job's keeper: the small ``/bin/sh`` between the worker process and the job, the leader
of the job's process group.

It runs under util-linux ``setpriv --pdeathsig``, which arms the death signal
(PR_SET_PDEATHSIG) so that the keeper hears at once when the worker process that started it
dies. It waits for the go line its worker process writes on stdin once the group is recorded
(so a reaper knows the group of every job that started), and stops there should that
process die first: the line never comes, or the keeper has another parent and may have
missed the death signal. It runs the job as its child (with the rest of stdin; a job
killed by signal N exits 128 + N, as in a shell) and, when the job exits (a trap that
interrupts ``wait`` only makes it wait again), writes its exit status to
``exit-<group id>`` in the groups directory before it exits itself: should the worker die
before recording that exit, whoever reaps the group (the sweeper, the worker's main
process) still learns that the job ran to its end. When the worker process dies (SIGUSR2)
it kills the job at once, so that the job never goes on to its effects while it is
recovered elsewhere. It kills the job's own first process, never what reports its exit: a
job that has just exited keeps the status it exited with (a zombie cannot be killed), and
its exit 0 is written as 0, not as the kill. A sandboxed job's first process is the child
of the sandbox's init (pid 1 inside, the child of the sandbox's outer process, the keeper's
child); the init reports how that process ended to the outer process, which exits with
it, and the init's end (bubblewrap's ``--die-with-parent``) takes every process of the
sandbox with it. While the sandbox is still being made, the keeper waits a moment for the
job's first process to kill it; should it never come, the keeper kills the init. SIGTERM
(a timeout, a cancel) reaches the job through the group; the keeper waits.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from horus.proc import tools
from horus.proc.sandbox import Sandbox

log = logging.getLogger(__name__)

#: what the keeper runs under: setpriv arms the death signal, then execs the keeper
DIE_WITH_WORKER = (
    [tools.path("setpriv"), "--pdeathsig", "USR2", "--"]
    if Path(tools.path("setpriv")).is_absolute()  # found
    else []
)
#: the keeper's script; its own variables are named horus_*, names a job may not set, so
#: that none of them changes a variable of the job's environment (the shell exports every
#: variable it was given)
SCRIPT = """\
read -r horus_go && [ "$horus_go" = go ] && [ "$PPID" = "$HORUS_PARENT" ] || exit 137
unset HORUS_PARENT
horus_d=$1; horus_b=$2; shift 2
horus_first() {
  horus_f=; { read -r horus_f horus_; } 2>/dev/null < "/proc/$1/task/$1/children"
}
horus_end() {
  [ -n "$horus_b" ] || { kill -9 "$horus_c" 2>/dev/null; return; }
  horus_n=0
  while [ "$horus_n" -lt 200 ]; do
    horus_first "$horus_c"; horus_p=$horus_f; horus_j=
    [ -z "$horus_p" ] || { horus_first "$horus_p"; horus_j=$horus_f; }
    [ -z "$horus_j" ] || { kill -9 "$horus_j" 2>/dev/null; return; }
    horus_st=; { read -r horus_ horus_ horus_st horus_; } 2>/dev/null < "/proc/$horus_c/stat"
    [ "$horus_st" = Z ] || [ -z "$horus_st" ] && return
    horus_n=$((horus_n + 1)); @SLEEP@ 0.01
  done
  kill -9 "${horus_p:-$horus_c}" 2>/dev/null
}
trap 'horus_i=1' TERM
trap 'horus_i=1; horus_dead=1; [ -z "$horus_c" ] || horus_end' USR2
exec 3<&0
{ exec "$@"; } <&3 3<&- & horus_c=$!
exec 3<&-
[ -z "$horus_dead" ] || horus_end
horus_i=1
while [ -n "$horus_i" ]; do horus_i=; wait "$horus_c" 2>/dev/null; horus_s=$?; done
[ -z "$horus_d" ] || echo "$horus_s" 2>/dev/null > "$horus_d/exit-$$"
exit "$horus_s"
""".replace("@SLEEP@", shlex.quote(tools.path("sleep")))
#: the line that lets a job past the keeper's first check; the job's own stdin follows it
GO = b"go\n"
#: the variable that tells the keeper which process must be its parent
PARENT_ENV = "HORUS_PARENT"


@cache
def _default_signals() -> list[str]:
    """What gives the job SIGINT and SIGQUIT back (a shell starts a background child with
    both ignored): GNU env's --default-signal, where this env has it."""
    argv = [tools.path("env"), "--default-signal=INT,QUIT", "--"]
    try:
        works = subprocess.run([*argv, "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        works = False
    if not works:
        log.warning("env has no --default-signal: jobs start with SIGINT and SIGQUIT ignored")
    return argv if works else []


def wrap(
    argv: Sequence[str], groups_dir: Path | None, sandbox: Sandbox | None = None, cwd: Path = Path()
) -> list[str]:
    """``argv`` run by a keeper (unchanged where setpriv is missing), in ``sandbox`` if one
    is given (its working directory ``cwd``)."""
    job = [*_default_signals(), *argv]
    if sandbox is not None:
        job = sandbox.command(job, cwd)
    if not DIE_WITH_WORKER:
        return job
    where = str(groups_dir) if groups_dir is not None else ""
    sandboxed = "1" if sandbox is not None else ""
    return [*DIE_WITH_WORKER, "/bin/sh", "-c", SCRIPT, "horus-job", where, sandboxed, *job]
