"""The ``shell`` runner: the payload is a shell script (seed 004's ``echo hello``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from horus import Example, Outcome, RunContext, Runner

SHELLS = {"sh": "/bin/sh", "bash": "/bin/bash"}


class ShellParams(BaseModel):
    """The shell runner's parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shell: Literal["sh", "bash"] = Field("sh", description="the shell that runs the script")


class ShellRunner(Runner):
    """Runs the payload with ``/bin/sh`` (or ``bash`` with ``--param shell=bash``).

    Exit code 0 is completed, any other is failed; stdout is the output, stderr the error.
    """

    name = "shell"
    description = "runs the payload as a shell script (param: shell=sh|bash)"
    Params = ShellParams
    example = Example("echo hello")
    slow_example = Example("sleep 30")
    invalid_example = Example("  \n")

    def validate(self, payload: str, params: ShellParams) -> None:
        """The script must hold a command."""
        if not payload.strip():
            raise ValueError("payload is an empty script; give the commands to run")

    def run(self, ctx: RunContext) -> Outcome:
        """Write the script into the job's workdir and run it there."""
        script = ctx.workdir / "job.sh"
        script.write_text(ctx.job.payload, encoding="utf-8")
        assert isinstance(ctx.params, ShellParams)
        return ctx.run_process([SHELLS[ctx.params.shell], str(script)])
