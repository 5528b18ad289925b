"""The ``python`` runner: the payload names a callable, ``package.module:function``.

The callable runs in a child Python process (its own process group, the job's environment),
so a timeout or cancel can stop it whatever it does. Sync and async callables both work
(seed 003's ``async def run() -> dict``); params are its keyword arguments; its return value,
as JSON, is the output; anything it prints goes to the error stream.

Each worker process keeps the next job's interpreter started (a warm start): a job begins
the moment it comes. Modules named in the runner's ``preload`` (its ``[python]`` table of
``runners.toml``) are imported in that interpreter before the job comes, so a job that
imports them does not wait for them.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from horus import Example, Outcome, RunContext, Runner

TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class PythonParams(BaseModel):
    """The keyword arguments of the function: any JSON values, by any names."""

    model_config = ConfigDict(extra="allow", frozen=True)


MODULE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


class PythonConfig(BaseModel):
    """The python runner's configuration (``[python]`` in ``runners.toml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preload: tuple[str, ...] = Field(
        (),
        description='modules imported before each job comes (e.g. ["numpy"]); '
        "a job that imports them starts without waiting for them",
    )

    @field_validator("preload")
    @classmethod
    def _modules(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if not MODULE.match(name):
                raise ValueError(f"{name!r} is not a module name; write package.module")
        return names


class PythonRunner(Runner):
    """Calls ``package.module:function(**params)`` and returns its JSON result."""

    name = "python"
    description = (
        "calls package.module:function(**params), sync or async; output is its JSON return"
    )
    Params = PythonParams
    Config = PythonConfig
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
        assert isinstance(ctx.config, PythonConfig)
        return ctx.call(ctx.job.payload, ctx.job.params, preload=ctx.config.preload)
