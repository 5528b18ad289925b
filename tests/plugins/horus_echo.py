"""A third-party runner, installed only through this folder's dist-info entry point."""

from __future__ import annotations

from typing import Any

from horus.job import JobStatus
from horus.runner import Outcome, RunContext, Runner


class EchoRunner(Runner):
    """Echoes the payload back, reversed, without starting any process."""

    name = "echo"
    description = "third-party test runner: returns the payload reversed"

    def validate(self, payload: str, params: dict[str, Any]) -> None:
        """Anything goes."""

    def run(self, ctx: RunContext) -> Outcome:
        """Reverse the payload."""
        return Outcome(status=JobStatus.COMPLETED, output=ctx.job.payload[::-1], exit_code=0)


class ChaosRunner(Runner):
    """A shell runner on a queue of its own, for tests that kill and stop its workers."""

    name = "chaos"
    description = "third-party test runner: /bin/sh -c PAYLOAD on the horus.chaos queue"

    def validate(self, payload: str, params: dict[str, Any]) -> None:
        """Anything goes."""

    def run(self, ctx: RunContext) -> Outcome:
        """Run the payload with /bin/sh, with the job's timeout, cancel and environment."""
        return ctx.run_process(["/bin/sh", "-c", ctx.job.payload])
