"""The worker's side of the runner contract's :class:`~horus.runner.Launcher`: a job's
processes run under their keeper in a recorded process group (:mod:`horus.proc`), stop at
the job's deadline or when its guard says so, and have their exit noted on the job's record
the moment they exit, before they are reaped.

The exit a keeper wrote to disk (next to the group's marker) goes only once the record has
it: while the store is away the note is tried again (:func:`persist`), and should this
worker process die meanwhile (a platform stopped while its store was down), the marker and
the exit file are still there for a reaper to record the exit from before any lease is
taken back (:mod:`horus.execution.orphans`), so a job that ran to its end is not run again.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from horus.errors import HorusError
from horus.execution import orphans
from horus.execution import warm as warm_starts
from horus.execution.isolation import Isolation
from horus.job import JobStatus
from horus.proc.launch import Flag, Launch, Ran
from horus.proc.watch import Tee
from horus.runner import Outcome, WarmStart
from horus.store.lifecycle import Lifecycle

log = logging.getLogger(__name__)
TIMEOUT_HINT = "raise --timeout if it needs longer"
WORKDIR_FULL = "outgrew the workdir_mb limit of its grant; write less or ask for more"
#: the signals that the kernel sends a process at one of its rlimits, and what they mean
LIMIT_SIGNALS: dict[int, str] = {
    signal.SIGXCPU.value: "it used up the cpu_seconds limit of its grant",
    signal.SIGXFSZ.value: "it wrote a file over the file_mb limit of its grant",
}
#: seconds a worker keeps trying to record how an attempt ended while the store is away
PERSIST_FOR = 60.0
T = TypeVar("T")


def persist(what: str, write: Callable[[], T]) -> T:
    """Run a store write of an attempt that already ran, through a store outage of up to
    :data:`PERSIST_FOR` seconds: its outcome must not be lost and the job run again."""
    end = time.monotonic() + PERSIST_FOR
    while True:
        try:
            return write()
        except HorusError as exc:
            if time.monotonic() > end:
                raise
            log.warning("%s: the store is away (%s); trying again", what, exc)
            time.sleep(0.5)


def outcome_of(ran: Ran) -> Outcome:
    """The runner's outcome of a process that ran: exit 0 completed, any other failed,
    stopped at the deadline timeout, stopped by its flag cancelled."""
    error = ran.error
    if ran.stopped == "timeout":
        error = f"{error or ''}\n[horus: killed at the job's timeout; {TIMEOUT_HINT}]"
    elif ran.stopped == "cancelled":
        error = (error or "") + "\n[horus: cancelled while running]"
    elif ran.stopped == "workdir":
        error = (error or "") + f"\n[horus: killed: its working directory {WORKDIR_FULL}]"
    elif ran.exit_code is not None and ran.exit_code - 128 in LIMIT_SIGNALS:
        error = (error or "") + f"\n[horus: killed: {LIMIT_SIGNALS[ran.exit_code - 128]}]"
    if ran.stopped == "timeout":
        status = JobStatus.TIMEOUT
    elif ran.stopped == "cancelled":
        status = JobStatus.CANCELLED
    else:
        status = JobStatus.COMPLETED if ran.exit_code == 0 else JobStatus.FAILED
    return Outcome(
        status=status,
        output=ran.output,
        error=error.lstrip("\n") if error else None,
        exit_code=ran.exit_code,
        output_truncated=ran.truncated,
    )


class AttemptLauncher:
    """Runs the processes of one attempt of one job."""

    def __init__(
        self,
        job_id: str,
        attempt: int,
        lifecycle: Lifecycle | None,
        stop: Flag,
        *,
        groups_dir: Path | None = None,
        scratch: Path | None = None,
        tee: Tee | None = None,
        runner_id: str = "",
        isolation: Isolation | None = None,
        held: warm_starts.Held | None = None,
        hold_next: bool = False,
    ) -> None:
        """``held``: the held process this attempt claimed (see
        :mod:`horus.execution.warm`), whose working directory is the attempt's;
        ``hold_next``: once its first process runs, start the next job's, held."""
        self.job_id = job_id
        self.runner_id = runner_id
        self.attempt = attempt
        self.lifecycle = lifecycle
        self.stop = stop
        self.groups_dir = groups_dir
        self.scratch = scratch
        self.tee = tee
        self.isolation = isolation or Isolation(None)
        self.held = held
        self.hold_next = hold_next

    def run(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        cwd: Path,
        deadline: float,
        stdin: bytes | None,
        warm: WarmStart | None = None,
    ) -> Outcome:
        """Run ``argv`` to its end, its deadline or its stop; ``warm``: in the held process
        if it fits (see :mod:`horus.execution.warm`)."""
        launch = self._released(warm, argv, env, cwd, stdin or b"") if warm else None
        if launch is None:
            launch = Launch(
                argv,
                env=warm_starts.own_env(warm, env, cwd) if warm == "call" else env,
                cwd=cwd,
                output_cap=self.isolation.output_cap,
                stdin=stdin,
                groups_dir=self.groups_dir,
                label=orphans.label(self.job_id, self.attempt),
                scratch=self.scratch,
                tee=self.tee,
                sandbox=self.isolation.sandbox,
                workdir_limit=self.isolation.workdir_bytes,
            )
        # The exit the keeper writes to disk goes only once it is accounted for: noted on
        # the record, or the process stopped here (timeout, cancel). Should this process be
        # stopped meanwhile (SIGTERM raises SystemExit in a pool process), it stays.
        accounted = False
        try:
            if warm is not None and self.hold_next:
                self.hold_next = False  # one a job, made while its first process runs
                self._hold(warm, argv, env)
            code = launch.wait(deadline, self.stop)
            # noted before reaping: see horus.execution.orphans
            accounted = code is None or self._note(code)
        finally:
            ran = launch.finish(forget=accounted)
        return outcome_of(ran)

    def _released(
        self, kind: WarmStart, argv: Sequence[str], env: dict[str, str], cwd: Path, stdin: bytes
    ) -> Launch | None:
        """The held process, given this run, if it fits it; None to start it cold."""
        held, self.held = self.held, None
        if held is None:
            return None
        fits = held.workdir == cwd and held.fits(kind, argv, env)
        try:
            request = held.request(argv, env, stdin) if fits else b""
        except ValueError:  # text that cannot be written (a cold start says why)
            fits = False
        if fits and held.launch.release(
            request,
            self.isolation.output_cap,
            label=orphans.label(self.job_id, self.attempt),
            tee=self.tee,
            workdir_limit=self.isolation.workdir_bytes,
        ):
            return held.launch
        held.launch.finish()  # its directory is the attempt's: it stays
        return None

    def _hold(self, kind: WarmStart, argv: Sequence[str], env: dict[str, str]) -> None:
        """Start the next job's process, held, as this one was started."""
        try:
            warm_starts.hold(
                self.runner_id, kind, argv, env, self.isolation.sandbox, self.groups_dir
            )
        except Exception as exc:  # the next job then starts cold; this one goes on
            log.warning("could not start the next %s job's process: %s", self.runner_id, exc)

    def close(self) -> None:
        """End a held process this attempt claimed and did not use."""
        held, self.held = self.held, None
        if held is not None:
            held.launch.finish()

    def _note(self, code: int) -> bool:
        """Note the exit on the job's record, through a store outage; False if it could not
        be (the exit stays on disk for a reaper to record once this process is gone)."""
        if self.lifecycle is None:
            return True
        lifecycle = self.lifecycle
        try:
            persist(
                f"job {self.job_id}: its exit",
                lambda: lifecycle.note_exit(self.job_id, self.attempt, code, self.runner_id),
            )
        except HorusError as exc:
            log.warning("job %s: could not note its exit: %s", self.job_id, exc)
            return False
        return True
