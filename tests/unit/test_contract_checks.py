"""The contract checks of :mod:`horus.testing` catch the runners that break the contract,
each with what to fix (the runners here are deliberately broken and not registered)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from horus import Example, JobStatus, Outcome, RunContext, Runner
from horus.testing.contract import (
    ContractViolation,
    NotApplicable,
    check_cancel_honoured,
    check_described,
    check_example_accepted,
    check_example_completes,
    check_invalid_refused,
    check_registered,
    check_runner,
    check_timeout_honoured,
    check_undeclared_param_refused,
    check_validate_never_crashes,
)


class Fine(Runner):
    name = "fine"
    description = "returns its payload"
    example: ClassVar[Example | None] = Example("hi")

    def run(self, ctx: RunContext) -> Outcome:
        ctx.output.write("stdout", ctx.job.payload.encode())
        return Outcome(status=JobStatus.COMPLETED, output=ctx.job.payload)


class Lax(BaseModel):
    """Drops what it does not declare, silently (pydantic's default)."""

    size: int = 1


class IgnoresUnknownParams(Fine):
    Params = Lax


class Crashes(Fine):
    def run(self, ctx: RunContext) -> Outcome:
        raise KeyError("boom")


class Quiet(Fine):
    def run(self, ctx: RunContext) -> Outcome:
        return Outcome(status=JobStatus.COMPLETED, output="not written live")


class IgnoresDeadline(Fine):
    slow_example = Example("slow")


class ValidateCrashes(Fine):
    invalid_example = Example("x")

    def validate(self, payload: str, params: Any) -> None:
        raise TypeError("a bug")


class Undescribed(Fine):
    description = ""


@pytest.mark.parametrize(
    ("check", "cls", "fix"),
    [
        (check_undeclared_param_refused, IgnoresUnknownParams, "extra='forbid'"),
        (check_example_completes, Crashes, "an exception escaped run()"),
        (check_example_completes, Quiet, "was not written to ctx.output"),
        (check_timeout_honoured, IgnoresDeadline, "stop at ctx.deadline"),
        (check_cancel_honoured, IgnoresDeadline, "ended completed"),
        (check_validate_never_crashes, ValidateCrashes, "raise ValueError(reason)"),
        (check_invalid_refused, ValidateCrashes, "raise ValueError(reason)"),
        (check_described, Undescribed, "set one line"),
        (check_registered, Fine, 'entry-points."horus.runners"'),
    ],
)
def test_a_broken_runner_fails_its_check_with_the_fix(
    check: Any, cls: type[Runner], fix: str
) -> None:
    with pytest.raises(ContractViolation, match="runner 'fine'") as info:
        check(cls)
    assert fix in str(info.value)


def test_a_runner_with_no_example_is_told_to_declare_one() -> None:
    class NoExample(Fine):
        example = None

    with pytest.raises(ContractViolation, match=r"declares no example; set example ="):
        check_example_accepted(NoExample)


def test_a_check_whose_example_is_not_declared_does_not_apply() -> None:
    with pytest.raises(NotApplicable, match="declares no slow_example"):
        check_timeout_honoured(Fine)


def test_check_runner_lists_every_broken_rule_and_what_did_not_apply() -> None:
    with pytest.raises(ContractViolation) as info:
        check_runner(Crashes)
    lines = str(info.value).splitlines()
    assert [line.split(":")[0] for line in lines] == ["check_registered", "check_example_completes"]
