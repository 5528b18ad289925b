"""A third-party runner, installed only through this folder's dist-info entry point."""

from __future__ import annotations

from typing import Any

from horus.job import JobStatus
from horus.process import Outcome
from horus.runner import RunContext, Runner


class EchoRunner(Runner):
    """Echoes the payload back, reversed, without starting any process."""

    name = "echo"
    description = "third-party test runner: returns the payload reversed"

    def validate(self, payload: str, params: dict[str, Any]) -> None:
        """Anything goes."""

    def run(self, ctx: RunContext) -> Outcome:
        """Reverse the payload."""
        return Outcome(status=JobStatus.COMPLETED, output=ctx.job.payload[::-1], exit_code=0)
