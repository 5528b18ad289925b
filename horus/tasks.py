"""The one Celery task that executes every job.

A message can come from anywhere, so before any runner code the worker parses the job
strictly, verifies its signatures and expiry, checks the policy and the runner, and moves
its record from pending to running, which only one delivery can do: a replay finds the
record ended and is refused. Every decision goes to the audit trail. The JobResult is the
task's return value (completed) or the argument of :class:`JobFailed` (anything else), so
Celery's result backend and Flower hold it, and failed jobs show as failures there.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import traceback
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

from celery import Task
from celery.exceptions import Ignore
from nacl.signing import SigningKey

from horus import config, registry, sealing, worker
from horus.app import app
from horus.audit import Audit
from horus.errors import (
    ConfigError,
    HorusError,
    InvalidJob,
    JobFailed,
    JobNotFound,
    NotAllowed,
    one_line,
)
from horus.job import Job, JobResult, JobStatus, parse_job
from horus.process import Outcome
from horus.routing import TASK_NAME
from horus.runner import RunContext, Runner
from horus.signing import CancelRequest
from horus.store import Store
from horus.trust import Gate

log = logging.getLogger(__name__)


@cache
def store() -> Store:
    """The job store of this process."""
    return Store(config.load())


@cache
def gate() -> Gate:
    """The checks of this process (it re-reads the policy file when it changes)."""
    return Gate(store().settings)


@cache
def audit() -> Audit:
    """The audit trail this worker writes to."""
    return Audit(store())


@cache
def worker_key() -> SigningKey:
    """The key this worker opens secrets with (read once)."""
    return gate().worker_key()


def _now() -> datetime:
    return datetime.now(UTC)


def _refuse(
    job_id: str, reason: str, signers: tuple[str, ...] = (), runner_id: str = ""
) -> NoReturn:
    """Record a job the worker will not run as failed, with the reason, and stop."""
    reason = one_line(reason)
    log.warning("refused job %s: %s", job_id, reason)
    try:
        audit().record(job_id, "run", "refused", reason, signers, runner_id)
    except HorusError as exc:
        log.error("could not audit the refusal of job %s: %s", job_id, exc)
    now = _now()
    result = JobResult(
        job_id=job_id, status=JobStatus.FAILED, error=reason, started_at=now, completed_at=now
    )
    try:
        store().transition(
            job_id,
            JobStatus.FAILED,
            [JobStatus.PENDING],
            {"completed_at": now.isoformat(), "result": result.model_dump_json()},
        )
    except HorusError as exc:  # no record: the message did not come through a client
        log.warning("no record for refused job %s: %s", job_id, exc)
    raise JobFailed(result.model_dump(mode="json"))


def _admit(
    task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Job, Runner, tuple[str, ...]]:
    """Validate, verify and authorize the message into a job this worker may run, or
    refuse it; returns the job, its runner and who signed it."""
    job_id = str(task.request.id)
    if len(args) != 1 or kwargs or not isinstance(args[0], str):
        # the client sends exactly one argument: the job as JSON text
        _refuse(job_id, "the message is not a Horus job; submit jobs with `horus enqueue`")
    message = args[0]
    try:
        job = parse_job(message)
    except InvalidJob as exc:
        _refuse(job_id, str(exc))
    if job.id != job_id:
        _refuse(job_id, f"the message's task id {job_id} is not the job's id {job.id}")
    try:
        signers = gate().judge(job).signers
    except NotAllowed as exc:
        _refuse(job.id, str(exc), tuple(s.public_key for s in job.signatures), job.runner_id)
    served = worker.served()
    runner = registry.installed().runners.get(job.runner_id)
    if runner is None or (served and job.runner_id not in served):
        _refuse(
            job.id,
            f"this worker has no runner {job.runner_id!r}; start a worker with "
            f"`horus worker --runner {job.runner_id}`",
            signers,
            job.runner_id,
        )
    try:
        registry.validate(runner, job)
    except InvalidJob as exc:
        _refuse(job.id, str(exc), signers, job.runner_id)
    return job, runner, signers


def _start(job: Job, signers: tuple[str, ...], worker_name: str, started: datetime) -> None:
    """Move the record from pending to running, or refuse/drop this delivery."""
    try:
        moved = store().transition(
            job.id,
            JobStatus.RUNNING,
            [JobStatus.PENDING],
            {"worker": worker_name, "started_at": started.isoformat(), "attempt": "1"},
        )
    except JobNotFound:
        _refuse(
            job.id,
            "the job has no record: it was not submitted through a Horus client; "
            "submit it with `horus enqueue` or Client.submit",
            signers,
            job.runner_id,
        )
    if moved.applied:
        audit().record(job.id, "run", "accepted", "", signers, job.runner_id)
        return
    if moved.previous is JobStatus.CANCELLED:
        reason = "the job was cancelled before it started"
    elif moved.previous is not None and moved.previous.terminal:
        reason = (
            f"replay: the job already ended {moved.previous}; a job runs once, "
            "submit a new job to run it again"
        )
    else:
        reason = f"the job is already {moved.previous} on another worker"
    log.info("job %s not run: %s", job.id, reason)
    audit().record(job.id, "run", "refused", reason, signers, job.runner_id)
    raise Ignore()


class CancelCheck:
    """Answers "was this job cancelled?" for the runner, honouring only a cancel request
    signed by the job's submitter or a canceller the policy names."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.judged: dict[str, bool] = {}

    def __call__(self) -> bool:
        raw = store().cancel_request(self.job.id)
        if raw is None:
            return False
        if raw not in self.judged:
            self.judged[raw] = self._judge(raw)
        return self.judged[raw]

    def _judge(self, raw: str) -> bool:
        signers: tuple[str, ...] = ()
        try:
            request = CancelRequest.model_validate_json(raw)
            signers = tuple(s.public_key for s in request.signatures)
            signers = gate().judge_cancel(self.job, request)
        except (ValueError, HorusError) as exc:  # pydantic errors are ValueErrors
            reason = str(exc).splitlines()[0]
            log.warning("ignored a cancel request for job %s: %s", self.job.id, reason)
            audit().record(self.job.id, "cancel", "refused", reason, signers, self.job.runner_id)
            return False
        audit().record(self.job.id, "cancel", "accepted", "", signers, self.job.runner_id)
        return True


def _open_secrets(job: Job, signers: tuple[str, ...]) -> dict[str, str]:
    if not job.secrets:
        return {}
    try:
        return sealing.unseal(job.secrets, worker_key())
    except ConfigError as exc:
        reason = f"this worker cannot open secrets: {exc}"
    except NotAllowed as exc:
        reason = str(exc)
    _fail_running(job, reason, signers)


def _fail_running(job: Job, reason: str, signers: tuple[str, ...]) -> NoReturn:
    """End a job that started but cannot run, with the reason."""
    now = _now()
    result = JobResult(
        job_id=job.id, status=JobStatus.FAILED, error=reason, started_at=now, completed_at=now
    )
    audit().record(job.id, "run", "refused", reason, signers, job.runner_id)
    store().transition(
        job.id,
        JobStatus.FAILED,
        [JobStatus.RUNNING],
        {"completed_at": now.isoformat(), "result": result.model_dump_json()},
    )
    raise JobFailed(result.model_dump(mode="json"))


@app.task(name=TASK_NAME, bind=True, throws=(JobFailed,), Request="horus.transport:Request")
def execute(self: Task[Any, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run one job and return its JobResult; raise JobFailed unless it completed."""
    job, runner, signers = _admit(self, args, kwargs)
    worker_name = str(self.request.hostname or "worker")
    started = _now()
    _start(job, signers, worker_name, started)
    secrets = _open_secrets(job, signers)
    workdir = Path(tempfile.mkdtemp(prefix=f"horus-{job.id[:12]}-"))
    clock = time.monotonic()
    try:
        outcome = runner.run(
            RunContext(
                job=job,
                workdir=workdir,
                deadline=clock + job.timeout,
                cancelled=CancelCheck(job),
                groups_dir=store().settings.home / "run" / "groups",
                secrets=secrets,
            )
        )
    except Exception:
        outcome = Outcome(
            status=JobStatus.FAILED,
            error=f"runner {job.runner_id!r} crashed:\n{traceback.format_exc()}",
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    finished = _now()
    result = JobResult(
        job_id=job.id,
        status=outcome.status,
        output=sealing.redact(outcome.output, secrets.values()) or "",
        error=sealing.redact(outcome.error, secrets.values()),
        exit_code=outcome.exit_code,
        started_at=started,
        completed_at=finished,
        worker=worker_name,
        attempt=1,
        duration=round(time.monotonic() - clock, 6),
        output_truncated=outcome.output_truncated,
    )
    store().transition(
        job.id,
        outcome.status,
        [JobStatus.RUNNING],
        {"completed_at": finished.isoformat(), "result": result.model_dump_json()},
    )
    data = result.model_dump(mode="json")
    if outcome.status is not JobStatus.COMPLETED:
        raise JobFailed(data)
    return data
