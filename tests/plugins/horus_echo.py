"""A third-party runner, installed only through this folder's dist-info entry point.

It is written as an author outside this repository writes one: it imports only from the
public API, ``horus``, and keeps contract version 2 (``tests/contract`` checks it).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from horus import Example, JobStatus, NoParams, Outcome, RunContext, Runner


class EchoParams(BaseModel):
    """The echo runner's parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repeat: int = Field(1, ge=1, le=100, description="how many times to echo the payload")


class EchoRunner(Runner):
    """Echoes the payload back, reversed, without starting any process."""

    name = "echo"
    description = "third-party test runner: returns the payload reversed"
    Params = EchoParams
    example = Example("olleh", {"repeat": 2})

    def validate(self, payload: str, params: EchoParams) -> None:
        """Anything goes."""

    def run(self, ctx: RunContext) -> Outcome:
        """Reverse the payload, writing it live as well."""
        assert isinstance(ctx.params, EchoParams)
        text = ctx.job.payload[::-1] * ctx.params.repeat
        ctx.output.write("stdout", text.encode("utf-8", "surrogatepass"))
        return Outcome(status=JobStatus.COMPLETED, output=text, exit_code=0)


class CallParams(BaseModel):
    """The keyword arguments of the call: any JSON values, by any names."""

    model_config = ConfigDict(extra="allow", frozen=True)


class CallConfig(BaseModel):
    """The call runner's configuration (``[call]`` in ``runners.toml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preload: tuple[str, ...] = ()


class CallRunner(Runner):
    """A library call, as the python runner makes one, on a queue of its own: for tests of
    a worker whose python calls nothing else takes."""

    name = "call"
    description = "third-party test runner: ctx.call(PAYLOAD, params) on the horus.call queue"
    Params = CallParams
    Config = CallConfig
    example = Example("json:dumps", {"obj": [1, 2]})
    slow_example = Example("signal:pause")

    def validate(self, payload: str, params: CallParams) -> None:
        """Anything goes: a call that cannot be made fails the job."""

    def run(self, ctx: RunContext) -> Outcome:
        """Make the call in the job's child interpreter."""
        assert isinstance(ctx.config, CallConfig)
        return ctx.call(ctx.job.payload, ctx.job.params, preload=ctx.config.preload)


class ChaosRunner(Runner):
    """A shell runner on a queue of its own, for tests that kill and stop its workers."""

    name = "chaos"
    description = "third-party test runner: /bin/sh -c PAYLOAD on the horus.chaos queue"
    example = Example("echo chaos")
    slow_example = Example("sleep 30")

    def validate(self, payload: str, params: NoParams) -> None:
        """Anything goes."""

    def run(self, ctx: RunContext) -> Outcome:
        """Run the payload with /bin/sh, with the job's timeout, cancel and environment."""
        return ctx.run_process(["/bin/sh", "-c", ctx.job.payload])
