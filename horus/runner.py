"""The runner plugin contract.

A runner is a class registered under the entry-point group ``horus.runners``::

    [project.entry-points."horus.runners"]
    echo = "my_package:EchoRunner"

It has a ``name`` (equal to its entry-point name), a one-line ``description``, a
``validate(payload, params)`` that raises ``ValueError`` with a reason a person can act on,
and a ``run(ctx)`` that returns an :class:`~horus.process.Outcome`. Runners never see the
broker or the job store: the worker records what they return. A runner that starts
processes uses :meth:`RunContext.run_process`, which enforces the timeout and cancellation
on the whole process group.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from horus.job import Job
from horus.process import Outcome, run_process

#: bytes of stdout (and of stderr) a job may leave in its result; the rest is dropped
OUTPUT_CAP = 1024 * 1024
#: the only variables a job inherits; the worker's own environment never reaches a job
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class RunContext:
    """Everything a runner needs to execute one job."""

    job: Job
    workdir: Path
    #: ``time.monotonic()`` value at which the job is out of time
    deadline: float
    #: returns True once somebody cancelled the job
    cancelled: Callable[[], bool]
    output_cap: int = OUTPUT_CAP
    #: where running process groups are recorded, so a supervisor can end orphans
    groups_dir: Path | None = None
    #: the job's secrets, opened by the worker; set in the environment like env_vars
    secrets: Mapping[str, str] = field(default_factory=dict)
    #: which attempt this is (1, 2, ...): the fencing token of this run
    attempt: int = 1
    #: told the exit code as soon as the job's process exits (the worker records it at once)
    exited: Callable[[int], None] | None = None

    def environment(self) -> dict[str, str]:
        """A minimal environment plus the job's own env_vars (which win)."""
        env = {
            "PATH": BASE_PATH,
            "HOME": str(self.workdir),
            "TMPDIR": str(self.workdir),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "HORUS_JOB_ID": self.job.id,
            "HORUS_RUNNER_ID": self.job.runner_id,
            "HORUS_ATTEMPT": str(self.attempt),
        }
        if self.job.caller_id:
            env["HORUS_CALLER_ID"] = self.job.caller_id
        if self.job.context_id:
            env["HORUS_CONTEXT_ID"] = self.job.context_id
        env.update(self.job.env_vars)
        env.update(self.secrets)
        return env

    def run_process(self, argv: Sequence[str], stdin: bytes | None = None) -> Outcome:
        """Run ``argv`` in the job's workdir, own process group and environment."""
        return run_process(
            argv,
            env=self.environment(),
            cwd=self.workdir,
            deadline=self.deadline,
            cancelled=self.cancelled,
            output_cap=self.output_cap,
            stdin=stdin,
            groups_dir=self.groups_dir,
            exited=self.exited,
            label=f"{self.job.id} {self.attempt}",
            scratch=self.workdir,
        )


class Runner(ABC):
    """Base class of every runner plugin."""

    #: the runner id jobs name; equal to the entry-point name
    name: ClassVar[str]
    #: one line shown by `horus runners`
    description: ClassVar[str] = ""

    @abstractmethod
    def validate(self, payload: str, params: dict[str, Any]) -> None:
        """Raise ``ValueError`` naming the problem and the fix if the job cannot run."""

    @abstractmethod
    def run(self, ctx: RunContext) -> Outcome:
        """Execute ``ctx.job`` and report how it ended."""
