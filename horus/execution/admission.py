"""Admission: a message can come from anywhere, so before any runner code the worker parses
the job strictly, verifies its signatures, checks the policy and the runner, and validates
the job's params. What fails is a :class:`Refusal`, with the reason a person reads and its
kind (for metrics): ``message``, ``invalid``, ``trust``, ``runner``, ``sandbox`` (one this
worker cannot make), and later in the attempt ``expired``, ``no-record``, ``replay``,
``secrets``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from horus import registry
from horus.errors import HorusError, InvalidJob, NotAllowed, one_line
from horus.execution import isolation
from horus.execution.isolation import Isolation, NoSandbox
from horus.job import Job, parse_job
from horus.runner import Runner
from horus.trust.gate import Gate


class Refusal(HorusError):
    """A delivery the worker will not run."""

    def __init__(
        self,
        job_id: str,
        reason: str,
        kind: str,
        signers: tuple[str, ...] = (),
        job: Job | None = None,
    ) -> None:
        super().__init__(job_id, reason, kind)
        self.message = one_line(reason)
        self.job_id, self.kind, self.signers, self.job = job_id, kind, signers, job

    @property
    def runner_id(self) -> str:
        """The runner the refused job named, if it parsed."""
        return self.job.runner_id if self.job is not None else ""


@dataclass(frozen=True)
class Admission:
    """A job this worker may run: its runner, its validated params, who signed it."""

    job: Job
    runner: Runner
    params: BaseModel
    signers: tuple[str, ...]
    #: the sandbox and limits it runs with
    isolation: Isolation


def admit(
    task_id: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    gate: Gate,
    runners: dict[str, Runner],
) -> Admission:
    """Validate, verify and authorize the message into a job one of ``runners`` may run,
    or raise :class:`Refusal`."""
    if len(args) != 1 or kwargs or not isinstance(args[0], str):
        # the client sends exactly one argument: the job as JSON text
        raise Refusal(
            task_id, "the message is not a Horus job; submit jobs with `horus enqueue`", "message"
        )
    try:
        job = parse_job(args[0])
    except InvalidJob as exc:
        raise Refusal(task_id, str(exc), "invalid") from None
    if job.id != task_id:
        raise Refusal(
            task_id, f"the message's task id {task_id} is not the job's id {job.id}", "message"
        )
    try:
        decision = gate.judge(job, check_expiry=False)
    except NotAllowed as exc:
        claimed = tuple(s.public_key for s in job.signatures)
        raise Refusal(job.id, str(exc), "trust", claimed, job) from None
    signers = decision.signers
    runner = runners.get(job.runner_id)
    if runner is None:
        raise Refusal(
            job.id,
            f"this worker has no runner {job.runner_id!r}; start a worker with "
            f"`horus worker --runner {job.runner_id}`",
            "runner",
            signers,
            job,
        )
    try:
        params = registry.validate(runner, job)
    except InvalidJob as exc:
        raise Refusal(job.id, str(exc), "invalid", signers, job) from None
    try:
        isolated = isolation.for_job(decision.grant, gate.settings, job.runner_id)
    except NoSandbox as exc:
        raise Refusal(job.id, str(exc), "sandbox", signers, job) from None
    return Admission(job, runner, params, signers, isolated)
