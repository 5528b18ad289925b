"""The ``shell`` runner: the payload is a shell script (seed 004's ``echo hello``)."""

from __future__ import annotations

from typing import Any

from horus.process import Outcome
from horus.runner import RunContext, Runner

SHELLS = {"sh": "/bin/sh", "bash": "/bin/bash"}


class ShellRunner(Runner):
    """Runs the payload with ``/bin/sh`` (or ``bash`` with ``--param shell=bash``).

    Exit code 0 is completed, any other is failed; stdout is the output, stderr the error.
    """

    name = "shell"
    description = "runs the payload as a shell script (param: shell=sh|bash)"

    def validate(self, payload: str, params: dict[str, Any]) -> None:
        """Only the ``shell`` parameter is understood."""
        unknown = set(params) - {"shell"}
        if unknown:
            raise ValueError(
                f"shell runner takes no params {sorted(unknown)}; pass values as --env instead"
            )
        if str(params.get("shell", "sh")) not in SHELLS:
            raise ValueError(f"param shell must be one of {sorted(SHELLS)}")
        if not payload.strip():
            raise ValueError("payload is an empty script; give the commands to run")

    def run(self, ctx: RunContext) -> Outcome:
        """Write the script into the job's workdir and run it there."""
        script = ctx.workdir / "job.sh"
        script.write_text(ctx.job.payload, encoding="utf-8")
        shell = SHELLS[str(ctx.job.params.get("shell", "sh"))]
        return ctx.run_process([shell, str(script)])
