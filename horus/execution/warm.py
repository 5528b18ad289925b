"""Warm starts: each pool process keeps the next job's process started, in its sandbox and
working directory, so that the job that comes next begins the moment it arrives, instead of
after bubblewrap, its helpers and (for a python call) the interpreter and the modules its
runner preloads have started: about 10 ms a shell job and 30 ms a python job here.

Once an attempt's first process runs, its pool process starts the next job's, held
(:class:`horus.proc.launch.Launch`, ``held``), of the kind the attempt used:

- ``call`` (:meth:`horus.runner.RunContext.call`): the child interpreter starts, imports
  what the runner preloads and waits for its request on stdin. A job's call fits it if it
  is the same command with the same variables an interpreter reads as it starts (locale,
  time zone); the request carries the job's environment, which the child takes before it
  imports anything of the job.
- ``exec`` (:meth:`horus.runner.RunContext.run_process`): a ``/bin/sh`` waits for a start
  script on stdin (between two lines of a token of the job's own), then runs it: it sets
  the job's environment (and nothing else) and execs the job's command, which keeps the
  rest of stdin. Any command fits.

Either fits only a job of the same runner in the same sandbox (grant paths, network,
limits); the job then gets the held process's working directory as its own. A job that
would run otherwise, or that comes to a held process that died, starts cold, as before.

Every job still runs in a process and a sandbox of its own, started for it alone: nothing
of an earlier job is left in it, and its environment holds nothing of the running job's. A
sandboxed job that runs while it waits cannot reach it (other PID and mount namespaces, a
network namespace of its own unless the grant shares the host's, and a directory that is
root's until its job comes), and none of its own job's code runs until the running job has
ended (one job at a time per pool process). Unsandboxed jobs run as the worker.

The held process is a recorded process group like any job's (label :data:`LABEL`): should
its pool process die, its keeper ends it and every reaper removes it and its directory.
"""

from __future__ import annotations

import atexit
import os
import re
import secrets
import shlex
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from horus.proc.groups import SCRATCH_PREFIX
from horus.proc.launch import Launch
from horus.proc.sandbox import Sandbox
from horus.runner import BASE_PATH, WarmStart

#: the marker label of a held process (not an attempt's: reapers record no exit for it)
LABEL = "warm"
#: what an interpreter reads from its environment as it starts: a job that sets one of them
#: otherwise than a held process had it starts cold
STARTUP_VARIABLES = ("LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ")
#: the held process of an ``exec`` start: a shell that reads its start script (the lines
#: between the first line and the next line equal to it) and runs it
EXEC_SCRIPT = """\
IFS= read -r end || exit 126
s=
while IFS= read -r line; do
  [ "$line" = "$end" ] && { eval "$s"; exit 126; }
  s="$s$line
"
done
exit 126
"""
#: the variable names a start file can set (a job with another starts cold)
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: variables a shell sets itself where the job's environment has them (as the keeper's shell
#: does on a cold start): exported with the waiting shell's own value
SHELL_SET = ("PWD", "IFS", "PPID")


@dataclass(frozen=True)
class Held:
    """One held process: what it was started for, and the process."""

    kind: WarmStart
    #: what it runs (a call's command; the shell of an exec start)
    argv: tuple[str, ...]
    sandbox: Sandbox | None
    #: the variables it was started with
    env: tuple[tuple[str, str], ...]
    workdir: Path
    launch: Launch
    #: the pool process that holds it (a forked process does not own its parent's)
    owner: int

    def fits(self, kind: WarmStart, argv: Sequence[str], env: Mapping[str, str]) -> bool:
        """True if a job would run ``argv`` with ``env`` as this one would (its sandbox is
        this one's: :func:`claim` made sure)."""
        if kind != self.kind or not argv:
            return False
        if kind == "call":
            return tuple(argv) == self.argv and startup_of(env) == startup_of(dict(self.env))
        return all(NAME.fullmatch(name) for name in env)

    def request(self, argv: Sequence[str], env: Mapping[str, str], stdin: bytes) -> bytes:
        """What the held process reads to run ``argv`` with ``env``, then ``stdin``."""
        if self.kind == "call":
            return stdin
        lines = ["unset " + " ".join(name for name, _ in self.env)]
        lines += [
            f"export {name}" if name in SHELL_SET else f"export {name}={shlex.quote(value)}"
            for name, value in env.items()
        ]
        lines.append("exec " + " ".join(shlex.quote(arg) for arg in argv))
        end = f"horus-start-{secrets.token_hex(16)}"
        return "\n".join([end, *lines, end, ""]).encode("utf-8", "surrogateescape") + stdin

    def discard(self) -> None:
        """End the held process and remove its directory."""
        self.launch.finish()
        shutil.rmtree(self.workdir, ignore_errors=True)


def startup_of(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The variables of ``env`` an interpreter reads as it starts."""
    return tuple((name, env[name]) for name in STARTUP_VARIABLES if name in env)


def own_env(kind: WarmStart, env: Mapping[str, str], workdir: Path) -> dict[str, str]:
    """The environment a process of ``kind`` starts with, held or cold, for a job whose
    environment is ``env``: a call's interpreter, only what it reads as it starts (the job's
    environment comes with its request, so that the modules it preloads see the same
    either way); a held shell, nothing of the job's (not even its PATH: the programs that
    start a held process are never a job's)."""
    own = {"PATH": BASE_PATH, "HOME": str(workdir), "TMPDIR": str(workdir)}
    return {**own, **dict(startup_of(env))} if kind == "call" else own


#: what this process holds, by runner (at most one each)
_held: dict[str, Held] = {}


def _take(runner_id: str) -> Held | None:
    """This process's held process of ``runner_id``, no longer held (a forked process
    finds its parent's, which it does not own, and leaves it)."""
    held = _held.pop(runner_id, None)
    return held if held is not None and held.owner == os.getpid() else None


def claim(runner_id: str, sandbox: Sandbox | None) -> Held | None:
    """The held process of ``runner_id`` in ``sandbox``, now the caller's (its working
    directory becomes the attempt's), or None when this process holds none such; one in
    another sandbox (another grant) is ended."""
    held = _take(runner_id)
    if held is not None and held.sandbox != sandbox:
        held.discard()
        return None
    return held


def hold(
    runner_id: str,
    kind: WarmStart,
    argv: Sequence[str],
    env: Mapping[str, str],
    sandbox: Sandbox | None,
    groups_dir: Path | None,
) -> None:
    """Start the next process of ``runner_id`` held (replacing one held before): for a
    ``call``, ``argv`` with the startup variables of ``env``; for an ``exec``, the shell
    that will exec the job's command. Its own environment is minimal."""
    earlier = _take(runner_id)
    if earlier is not None:
        earlier.discard()
    workdir = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{LABEL}-"))
    own = own_env(kind, env, workdir)
    if kind == "exec":
        argv = ["/bin/sh", "-c", EXEC_SCRIPT, "horus-held"]
    try:
        launch = Launch(
            argv,
            env=own,
            cwd=workdir,
            output_cap=0,
            groups_dir=groups_dir,
            label=LABEL,
            scratch=workdir,
            sandbox=sandbox,
            held=True,
        )
    except OSError:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    _held[runner_id] = Held(
        kind, tuple(argv), sandbox, tuple(own.items()), workdir, launch, os.getpid()
    )


@atexit.register
def release_all() -> None:
    """End what this process holds (at its exit, and when a worker stops)."""
    for runner_id in list(_held):
        held = _take(runner_id)
        if held is not None:
            held.discard()
