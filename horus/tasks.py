"""The one Celery task that executes every job.

A message can come from anywhere, so before any runner code the worker parses the job
strictly, verifies its signatures and expiry, checks the policy and the runner, and moves
its record from pending to running, which only one delivery can do: a replay finds the
record ended and is refused. Every decision goes to the audit trail. The JobResult is the
task's return value (completed) or the argument of :class:`JobFailed` (anything else), so
Celery's result backend and Flower hold it, and failed jobs show as failures there.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

from celery import Task
from celery.exceptions import Ignore
from nacl.signing import SigningKey

from horus import config, registry, sealing, signing, worker
from horus.app import app
from horus.attempts import Attempts, Started, backoff, entry
from horus.audit import Action, Audit, Verdict
from horus.errors import (
    ConfigError,
    HorusError,
    InvalidJob,
    JobFailed,
    NotAllowed,
    one_line,
)
from horus.groups import SCRATCH_PREFIX
from horus.guard import Guard
from horus.job import Job, JobResult, JobStatus, parse_job
from horus.process import Outcome
from horus.publish import publish
from horus.routing import TASK_NAME
from horus.runner import RunContext, Runner
from horus.signing import CancelRequest
from horus.store import Store
from horus.trust import Gate

log = logging.getLogger(__name__)
#: seconds a worker keeps trying to record how an attempt ended while the store is away
PERSIST_FOR = 60.0


@cache
def store() -> Store:
    """The job store of this process."""
    return Store(config.load())


@cache
def gate() -> Gate:
    """The checks of this process (it re-reads the policy file when it changes)."""
    return Gate(store().settings)


@cache
def attempts() -> Attempts:
    """Attempt bookkeeping (leases, fencing) on this process's store."""
    return Attempts(store())


@cache
def audit() -> Audit:
    """The audit trail this worker writes to."""
    return Audit(store())


@cache
def worker_key() -> SigningKey:
    """The key this worker opens secrets with (read once)."""
    return gate().worker_key()


def _audit(
    job_id: str,
    action: Action,
    decision: Verdict,
    reason: str,
    signers: tuple[str, ...],
    runner_id: str,
) -> None:
    """Record a decision in the audit trail; an audit that fails is logged, and never
    changes what happens to the job."""
    try:
        audit().record(job_id, action, decision, reason, signers, runner_id)
    except Exception as exc:
        log.error("could not audit %s %s of job %s: %s", decision, action, job_id, exc)


def _now() -> datetime:
    return datetime.now(UTC)


def _refusal(job_id: str, reason: str, attempt: int = 1) -> tuple[JobResult, dict[str, str]]:
    """The result of a job refused (or stopped before its runner) for ``reason``, and the
    record fields that hold it."""
    now = _now()
    result = JobResult(
        job_id=job_id,
        status=JobStatus.FAILED,
        error=reason,
        started_at=now,
        completed_at=now,
        attempt=attempt,
    )
    return result, {"completed_at": now.isoformat(), "result": result.model_dump_json()}


def _refuse(
    job_id: str, reason: str, signers: tuple[str, ...] = (), runner_id: str = ""
) -> NoReturn:
    """Record a job the worker will not run as failed, with the reason, and stop."""
    reason = one_line(reason)
    log.warning("refused job %s: %s", job_id, reason)
    _audit(job_id, "run", "refused", reason, signers, runner_id)
    result, fields = _refusal(job_id, reason)
    try:
        store().transition(job_id, JobStatus.FAILED, [JobStatus.PENDING], fields)
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
        signers = gate().judge(job, check_expiry=False).signers
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


def _start(job: Job, signers: tuple[str, ...], worker_name: str, started: datetime) -> Started:
    """Start a new attempt: the record moves from pending to running under a lease, or this
    delivery is refused (no record, a replay) or dropped (another attempt owns the job)."""
    lease_until = time.time() + store().settings.timing.lease
    try:
        signing.check_expiry(job, started)
        expired = ""
    except NotAllowed as exc:
        expired = str(exc)
    begun = attempts().start(
        job.id, worker_name, started.isoformat(), lease_until, expired=bool(expired)
    )
    if begun.outcome == "expired":
        _refuse(job.id, expired, signers, job.runner_id)
    if begun.outcome == "ok":
        _audit(job.id, "run", "accepted", "", signers, job.runner_id)
        return begun
    if begun.outcome == "missing":
        _refuse(
            job.id,
            "the job has no record: it was not submitted through a Horus client; "
            "submit it with `horus enqueue` or Client.submit",
            signers,
            job.runner_id,
        )
    if begun.outcome == "early":
        reason = "a retry of the job is not due yet; the sweeper sends it when it is"
    elif begun.status == JobStatus.CANCELLED:
        reason = "the job was cancelled before it started"
    elif begun.status in {s.value for s in JobStatus if s.terminal}:
        reason = (
            f"replay: the job already ended {begun.status}; a job runs once (this is a "
            "second delivery of its message), submit a new job to run it again"
        )
    else:
        reason = f"the job is already {begun.status}: another attempt owns it"
    log.info("job %s not run: %s", job.id, reason)
    _audit(job.id, "run", "refused", reason, signers, job.runner_id)
    raise Ignore()


def _honour_cancel(job: Job) -> Callable[[str], bool]:
    """The judge of a job's cancel requests: only one signed by the job's submitter or a
    canceller the policy names stops it; every decision is audited."""

    def judge(raw: str) -> bool:
        signers: tuple[str, ...] = ()
        try:
            request = CancelRequest.model_validate_json(raw)
            signers = tuple(s.public_key for s in request.signatures)  # as claimed
            signers = gate().judge_cancel(job, request)
        except (ValueError, HorusError) as exc:  # pydantic errors are ValueErrors
            reason = one_line(str(exc).splitlines()[0])
            log.warning("ignored a cancel request for job %s: %s", job.id, reason)
            _audit(job.id, "cancel", "refused", reason, signers, job.runner_id)
            return False
        _audit(job.id, "cancel", "accepted", "", signers, job.runner_id)
        return True

    return judge


def _persist(what: str, write: Callable[[], bool]) -> bool:
    """Run a store write of an attempt that already ran, through a store outage of up to
    :data:`PERSIST_FOR` seconds: its outcome must not be lost and the job run again."""
    end = time.monotonic() + PERSIST_FOR
    while True:
        try:
            return write()
        except HorusError as exc:
            if time.monotonic() > end:
                raise
            log.warning("%s: the store is away (%s); trying again", what, exc)
            time.sleep(0.5)


def _end(job: Job, begun: Started, result: JobResult, guard: Guard) -> dict[str, Any]:
    """Record how the attempt ended: done, or back to pending for a retry. Returns the
    result for Celery (completed) or raises JobFailed (anything else)."""
    timing = store().settings.timing
    data = result.model_dump(mode="json")
    first_error = (result.error or "").strip().splitlines()
    history = entry(
        begun.attempt,
        result.status.value,
        result.worker,
        exit_code=result.exit_code,
        error=first_error[-1][:300] if first_error else None,
        started=result.started_at and result.started_at.isoformat(),
    )
    retry = (
        result.status in (JobStatus.FAILED, JobStatus.TIMEOUT)
        and not guard.cancelled
        and begun.tries < job.max_attempts
    )
    if retry:
        delay = backoff(begun.tries, timing.retry_base, timing.retry_cap)
        retry_at = time.time() + delay
        if not _persist(
            f"job {job.id}",
            lambda: attempts().end(job.id, begun.attempt, "pending", history, {}, retry_at),
        ):
            raise Ignore()  # another attempt owns the job now
        log.info(
            "job %s attempt %d %s; retry in %.0f s", job.id, begun.attempt, result.status, delay
        )
        if delay == 0:
            with contextlib.suppress(HorusError):  # else the sweeper sends it
                publish(execute.app, job)
                attempts().published(job.id, time.time())
        raise JobFailed(data)
    fields = {"completed_at": _now().isoformat(), "result": result.model_dump_json()}
    if not _persist(
        f"job {job.id}",
        lambda: attempts().end(job.id, begun.attempt, result.status.value, history, fields),
    ):
        log.warning(
            "job %s: attempt %d no longer owns the job; its result is dropped",
            job.id,
            begun.attempt,
        )
        raise Ignore()
    if result.status is not JobStatus.COMPLETED:
        raise JobFailed(data)
    return data


def _fail_started(job: Job, begun: Started, reason: str, signers: tuple[str, ...]) -> NoReturn:
    """End an attempt that started but must not run (expired, secrets that do not open)."""
    reason = one_line(reason)
    _audit(job.id, "run", "refused", reason, signers, job.runner_id)
    result, fields = _refusal(job.id, reason, begun.attempt)
    history = entry(begun.attempt, "refused", None, error=reason[:300])
    attempts().end(job.id, begun.attempt, JobStatus.FAILED.value, history, fields)
    raise JobFailed(result.model_dump(mode="json"))


def _open_secrets(job: Job, begun: Started, signers: tuple[str, ...]) -> dict[str, str]:
    if not job.secrets:
        return {}
    try:
        return sealing.unseal(job.secrets, worker_key())
    except ConfigError as exc:
        reason = f"this worker cannot open secrets: {exc}"
    except NotAllowed as exc:
        reason = str(exc)
    _fail_started(job, begun, reason, signers)


def _note_exit(job_id: str, attempt: int, code: int) -> None:
    try:
        attempts().exited(job_id, attempt, code)
    except HorusError as exc:  # only a help to the sweeper should this worker die now
        log.warning("job %s: could not note its exit: %s", job_id, exc)


def _run(
    job: Job, runner: Runner, ctx_secrets: dict[str, str], guard: Guard, attempt: int
) -> Outcome:
    workdir = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{job.id[:12]}-"))
    try:
        return runner.run(
            RunContext(
                job=job,
                workdir=workdir,
                deadline=time.monotonic() + job.timeout,
                cancelled=guard,
                groups_dir=store().settings.groups_dir,
                secrets=ctx_secrets,
                attempt=attempt,
                exited=lambda code: _note_exit(job.id, attempt, code),
            )
        )
    except Exception:
        return Outcome(
            status=JobStatus.FAILED,
            error=f"runner {job.runner_id!r} crashed:\n{traceback.format_exc()}",
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@app.task(name=TASK_NAME, bind=True, throws=(JobFailed,), Request="horus.transport:Request")
def execute(self: Task[Any, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run one attempt of a job and return its JobResult; raise JobFailed unless it
    completed."""
    job, runner, signers = _admit(self, args, kwargs)
    worker_name = str(self.request.hostname or "worker")
    started = _now()
    begun = _start(job, signers, worker_name, started)
    secrets = _open_secrets(job, begun, signers)
    guard = Guard(
        job, begun.attempt, attempts(), store().settings.timing.lease, _honour_cancel(job)
    )
    clock = time.monotonic()
    try:
        if guard.cancel_requested(begun.cancel):  # cancelled while it waited for a retry
            outcome = Outcome(status=JobStatus.CANCELLED, error="cancelled before it started")
        else:
            outcome = _run(job, runner, secrets, guard, begun.attempt)
    finally:
        guard.close()
    if guard.lost.is_set():
        log.warning("job %s: attempt %d was taken back; not recording it", job.id, begun.attempt)
        raise Ignore()
    result = JobResult(
        job_id=job.id,
        status=outcome.status,
        output=sealing.redact(outcome.output, secrets.values()) or "",
        error=sealing.redact(outcome.error, secrets.values()),
        exit_code=outcome.exit_code,
        started_at=started,
        completed_at=_now(),
        worker=worker_name,
        attempt=begun.attempt,
        duration=round(time.monotonic() - clock, 6),
        output_truncated=outcome.output_truncated,
    )
    return _end(job, begun, result, guard)
