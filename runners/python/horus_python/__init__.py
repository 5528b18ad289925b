"""The ``python`` runner: the payload names a callable, ``package.module:function``.

The callable runs in a child Python process (its own process group, the job's environment),
so a timeout or cancel can stop it whatever it does. Sync and async callables both work
(seed 003's ``async def run() -> dict``); params are its keyword arguments; its return value,
as JSON, is the output; anything it prints goes to the error stream.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from horus import Example, Outcome, RunContext, Runner

TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class PythonParams(BaseModel):
    """The keyword arguments of the function: any JSON values, by any names."""

    model_config = ConfigDict(extra="allow", frozen=True)


class PythonRunner(Runner):
    """Calls ``package.module:function(**params)`` and returns its JSON result."""

    name = "python"
    description = (
        "calls package.module:function(**params), sync or async; output is its JSON return"
    )
    Params = PythonParams
    example = Example("json:loads", {"s": "[1, 2, 3]"})
    slow_example = Example("signal:pause")
    invalid_example = Example("print('hi')")

    def validate(self, payload: str, params: PythonParams) -> None:
        """The payload must look like ``package.module:function``."""
        if not TARGET.match(payload.strip()):
            raise ValueError(
                f"payload {payload[:60]!r} is not a callable path; write package.module:function"
            )

    def run(self, ctx: RunContext) -> Outcome:
        """Call the function in the job's own child interpreter."""
        return ctx.call(ctx.job.payload, ctx.job.params)
