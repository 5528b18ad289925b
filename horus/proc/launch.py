"""Launching a job's process in its own process group, under its keeper, with a deadline, a
stop flag and an output cap; whatever happens, the whole group (grandchildren included) is
gone afterwards.

:class:`Launch` is a handle with three steps, so that nothing here calls back up: start it,
:meth:`Launch.wait` until the process exits, the deadline passes or the ``stop`` flag is
set (its caller records an exit at once, before anything else), then :meth:`Launch.finish`
ends the group, reaps it and hands back what it wrote.

A launch started ``held`` (a warm start, see :mod:`horus.execution.warm`) runs its process
up to where it reads its stdin, with no job yet: :meth:`Launch.release` gives it one (its
label, its stdin, where its output goes), and only then is it waited for.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from horus.proc import keeper
from horus.proc.groups import exit_file, kill_group, peek_exit, write_marker
from horus.proc.sandbox import Sandbox
from horus.proc.watch import Tee, Watch

#: seconds between two looks at the stop flag while a process runs
CANCEL_POLL = 0.5
#: seconds to read output left in the pipes once the job's group is gone
DRAIN_LIMIT = 5.0
#: the umask of a sandboxed job of a root worker: its files are writable by its group
SHARED_UMASK = 0o002

Stopped = Literal["timeout", "cancelled", "workdir"]


class Flag(Protocol):
    """What tells a running process to stop (a :class:`threading.Event` is one)."""

    def is_set(self) -> bool:
        """True once the process must stop."""


@dataclass(frozen=True)
class Ran:
    """How a launched process ended and what it wrote."""

    exit_code: int | None
    #: why it was stopped, if it was
    stopped: Stopped | None
    output: str
    error: str | None
    truncated: bool


def size_of(directory: Path) -> int:
    """The bytes the files under ``directory`` take (what cannot be read counts nothing)."""
    total = 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue
    return total


class Launch:
    """One started process group: wait for it, then finish it."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        cwd: Path,
        output_cap: int,
        stdin: bytes | None = None,
        groups_dir: Path | None = None,
        label: str = "",
        scratch: Path | None = None,
        tee: Tee | None = None,
        sandbox: Sandbox | None = None,
        workdir_limit: int | None = None,
        held: bool = False,
    ) -> None:
        """Start ``argv``. With ``groups_dir``, its process group is recorded there while it
        runs (see :mod:`horus.proc.groups`) with ``label`` and ``scratch``, a directory of
        the attempt's own that a reaper removes should this process die first. What it
        writes goes to ``tee`` as it comes, and its first ``output_cap`` bytes are kept.
        With ``sandbox`` it runs in that sandbox (see :mod:`horus.proc.sandbox`); with
        ``workdir_limit`` it is stopped once ``cwd`` holds more bytes than that. ``held``:
        it starts, but its stdin stays open and unwritten until :meth:`release`."""
        kept = bool(keeper.DIE_WITH_WORKER)
        self.groups_dir = groups_dir
        self.scratch = scratch
        self.sandbox = sandbox
        if sandbox is not None and not held:  # a held one's is the job's once released
            sandbox.prepare(cwd)
        self.proc = subprocess.Popen(
            keeper.wrap(argv, groups_dir, sandbox, cwd),
            env={**env, keeper.PARENT_ENV: str(os.getpid())} if kept else env,
            cwd=cwd,
            stdin=subprocess.PIPE if stdin is not None or kept or held else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            # a sandboxed job runs as a user of its worker process's own: what it writes in
            # a path its grant shares is writable by the sandboxes' common group
            umask=SHARED_UMASK if sandbox is not None and sandbox.uid is not None else -1,
        )
        self.marker = (
            write_marker(groups_dir, self.proc.pid, label, scratch) if groups_dir else None
        )
        self.stopped: Stopped | None = None
        self.cwd, self.workdir_limit = cwd, workdir_limit
        self.watch: Watch | None = None
        if not held:
            self.watch = Watch(
                self.proc, keeper.GO + (stdin or b"") if kept else stdin, output_cap, tee
            )
        elif kept:  # past its keeper now: it starts up to where it reads its stdin
            assert self.proc.stdin is not None
            os.write(self.proc.stdin.fileno(), keeper.GO)

    def release(
        self,
        stdin: bytes,
        output_cap: int,
        *,
        label: str = "",
        tee: Tee | None = None,
        workdir_limit: int | None = None,
    ) -> bool:
        """Give a held process its job: its group is recorded under ``label`` from now on,
        it reads ``stdin``, and :meth:`wait` serves it (as :meth:`__init__` says). False,
        and nothing changed, if it is not held or no longer runs (it must then be finished
        and the job started anew)."""
        if self.watch is not None or self.proc.poll() is not None:
            return False
        if self.groups_dir is not None:  # relabelled first, then looked at again: should it
            # have died meanwhile, its exit stays the held process's, not the job's
            self.marker = write_marker(
                self.groups_dir, self.proc.pid, label, self.scratch, started=False
            )
            if self.proc.poll() is not None or exit_file(self.groups_dir, self.proc.pid).exists():
                return False
        if self.sandbox is not None:
            self.sandbox.prepare(self.cwd)
        self.workdir_limit = workdir_limit
        self.watch = Watch(self.proc, stdin, output_cap, tee)
        return True

    def wait(self, deadline: float, stop: Flag) -> int | None:
        """Serve the process until it exits (its exit code, the process not yet reaped), its
        ``deadline`` (monotonic) passes or ``stop`` is set (None; :attr:`stopped` says why)."""
        assert self.watch is not None, "a held launch is waited for once released"
        while True:
            left = deadline - time.monotonic()
            if self.watch.until_exit(max(0.0, min(left, CANCEL_POLL))):
                return peek_exit(self.proc.pid)
            if time.monotonic() >= deadline:
                self.stopped = "timeout"
                return None
            if stop.is_set():
                self.stopped = "cancelled"
                return None
            if self.workdir_limit is not None and size_of(self.cwd) > self.workdir_limit:
                self.stopped = "workdir"
                return None

    def finish(self, forget: bool = True) -> Ran:
        """End what is left of the group, reap it, read the rest of its output. With
        ``forget`` False (its exit is not recorded yet) the group's marker and exit file
        stay, for a reaper to record the exit from once this process is gone."""
        if self.watch is None:  # held, never released: nothing of a job to hand back
            self.watch = Watch(self.proc, None, 0)
        try:
            kill_group(self.proc.pid, self.proc)
            self.proc.wait()
            self.watch.drain(DRAIN_LIMIT)
        finally:
            self.watch.close()
            if forget and self.groups_dir is not None:
                exit_file(self.groups_dir, self.proc.pid).unlink(missing_ok=True)
            if forget and self.marker is not None:
                self.marker.unlink(missing_ok=True)
        out, err = self.watch.out, self.watch.err
        return Ran(
            exit_code=self.proc.returncode,
            stopped=self.stopped,
            output=out.text(),
            error=err.text() or None,
            truncated=out.truncated or err.truncated,
        )
