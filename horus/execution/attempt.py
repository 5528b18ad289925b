"""One delivery of a job's message, from admission to the end of its attempt.

The delivery is admitted (:mod:`horus.execution.admission`) or refused; an admitted job
starts a new attempt (which only one delivery can do: a replay finds the record ended and
is dropped), has its secrets opened, runs under its guard through its runner, and its
result goes to the one end-of-job path of :mod:`horus.store.lifecycle` with the verdict of
:mod:`horus.store.retry`. Nothing here knows about Celery: :class:`Delivered` tells the
task what to report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from horus.errors import ConfigError, HorusError, NotAllowed, one_line
from horus.execution.admission import Admission, Refusal, admit
from horus.execution.context import WorkerContext
from horus.execution.guard import Guard
from horus.execution.launcher import persist
from horus.execution.output import Output
from horus.execution.running import run_admitted
from horus.job import Job, JobResult, JobStatus
from horus.messaging.publish import publish
from horus.runner import Outcome
from horus.store import retry
from horus.store.lifecycle import REFUSED, Started, entry
from horus.trust import attest, sealing, signing
from horus.trust.signing import CancelRequest

log = logging.getLogger(__name__)

#: what the task reports: the job completed, failed (for good), will run again, was
#: cancelled, or this delivery was dropped (a replay, a lost attempt)
Report = Literal["completed", "failed", "retried", "cancelled", "dropped"]


@dataclass(frozen=True)
class Delivered:
    """How one delivery ended, for the task to report."""

    report: Report
    result: JobResult | None = None
    reason: str = ""


def _now() -> datetime:
    return datetime.now(UTC)


def _refusal_fields(
    ctx: WorkerContext, job_id: str, reason: str, attempt: int = 1
) -> tuple[JobResult, dict[str, str]]:
    now = _now()
    result = JobResult(
        job_id=job_id,
        status=JobStatus.FAILED,
        error=reason,
        started_at=now,
        completed_at=now,
        attempt=attempt,
    )
    return result, attest.result_fields(result, now.isoformat(), ctx.result_key)


def _carries_its_record(ctx: WorkerContext, refusal: Refusal) -> bool:
    """True when the refused message carries the very job its record holds: only then may
    the refusal change that record (anyone who can publish could otherwise fail another
    user's pending job by sending garbage under its id)."""
    if refusal.job is None:
        return False
    try:
        return ctx.store.get(refusal.job_id).job == refusal.job
    except HorusError:  # no record (the message did not come through a client)
        return False


def _refuse(ctx: WorkerContext, refusal: Refusal) -> Delivered:
    """A job the worker will not run: audited, and failed with the reason if its record is
    pending and holds the job the message carried."""
    log.warning("refused job %s: %s", refusal.job_id, refusal.message)
    bus = ctx.lifecycle.bus
    bus.emit(
        "refused",
        refusal.job_id,
        refusal.runner_id,
        reason=refusal.message,
        kind=refusal.kind,
        signers=refusal.signers,
    )
    result, fields = _refusal_fields(ctx, refusal.job_id, refusal.message)
    if not _carries_its_record(ctx, refusal):
        return Delivered("failed", result, refusal.message)
    try:
        ctx.lifecycle.close(refusal.job_id, refusal.runner_id, JobStatus.FAILED, fields, REFUSED)
    except HorusError as exc:  # the record went meanwhile
        log.warning("no record for refused job %s: %s", refusal.job_id, exc)
    return Delivered("failed", result, refusal.message)


def _drop(
    ctx: WorkerContext, job: Job, reason: str, kind: str, signers: tuple[str, ...]
) -> Delivered:
    """A delivery that must not run and must change nothing (another attempt owns the job,
    or it already ended). The message of a job cancelled before it started is reported as
    cancelled, so that Flower shows the task revoked rather than started for ever."""
    log.info("job %s not run: %s", job.id, reason)
    ctx.lifecycle.bus.emit(
        "refused", job.id, job.runner_id, reason=reason, kind=kind, signers=signers
    )
    return Delivered("cancelled" if kind == "cancelled" else "dropped", reason=reason)


def _start(
    ctx: WorkerContext, admission: Admission, worker: str, started: datetime
) -> Started | Delivered:
    job, signers = admission.job, admission.signers
    try:
        signing.check_expiry(job, started)
        expired = ""
    except NotAllowed as exc:
        expired = str(exc)
    lease_until = time.time() + ctx.settings.timing.lease
    begun = ctx.lifecycle.start(
        job, worker, started.isoformat(), lease_until, bool(expired), signers
    )
    if begun.outcome == "ok":
        return begun
    if begun.outcome == "expired":
        return _refuse(ctx, Refusal(job.id, expired, "expired", signers, job))
    if begun.outcome == "missing":
        reason = (
            "the job has no record: it was not submitted through a Horus client; "
            "submit it with `horus enqueue` or Client.submit"
        )
        return _refuse(ctx, Refusal(job.id, reason, "no-record", signers, job))
    if begun.outcome == "early":
        return _drop(
            ctx,
            job,
            "a retry of the job is not due yet; the sweeper sends it when it is",
            "early",
            signers,
        )
    if begun.status == JobStatus.CANCELLED:
        return _drop(ctx, job, "the job was cancelled before it started", "cancelled", signers)
    if begun.status in {s.value for s in JobStatus if s.terminal}:
        reason = (
            f"replay: the job already ended {begun.status}; a job runs once (this is a "
            "second delivery of its message), submit a new job to run it again"
        )
        return _drop(ctx, job, reason, "replay", signers)
    return _drop(
        ctx, job, f"the job is already {begun.status}: another attempt owns it", "running", signers
    )


def _judge_cancel(ctx: WorkerContext, job: Job) -> Callable[[str], bool]:
    """The judge of a job's cancel requests: only one signed by the job's submitter or a
    canceller the policy names stops it; every decision is an event (and audited)."""

    def judge(raw: str) -> bool:
        signers: tuple[str, ...] = ()
        try:
            request = CancelRequest.model_validate_json(raw)
            signers = tuple(s.public_key for s in request.signatures)  # as claimed
            signers = ctx.gate.judge_cancel(job, request)
        except (ValueError, HorusError) as exc:  # pydantic errors are ValueErrors
            reason = one_line(str(exc).splitlines()[0])
            log.warning("ignored a cancel request for job %s: %s", job.id, reason)
            ctx.lifecycle.bus.emit(
                "cancel_requested",
                job.id,
                job.runner_id,
                accepted=False,
                reason=reason,
                signers=signers,
            )
            return False
        ctx.lifecycle.bus.emit(
            "cancel_requested", job.id, job.runner_id, accepted=True, signers=signers
        )
        return True

    return judge


def _open_secrets(ctx: WorkerContext, job: Job) -> dict[str, str]:
    """The job's secrets in clear, or :class:`Refusal` (kind ``secrets``)."""
    if not job.secrets:
        return {}
    try:
        return sealing.unseal(job.secrets, ctx.worker_key, job.id)
    except ConfigError as exc:
        reason = f"this worker cannot open secrets: {exc}"
    except NotAllowed as exc:
        reason = str(exc)
    raise Refusal(job.id, reason, "secrets", job=job)


def _fail_started(
    ctx: WorkerContext, admission: Admission, begun: Started, refusal: Refusal
) -> Delivered:
    """End an attempt that started but must not run (secrets that do not open)."""
    job = admission.job
    ctx.lifecycle.bus.emit(
        "refused",
        job.id,
        job.runner_id,
        begun.attempt,
        reason=refusal.message,
        kind=refusal.kind,
        signers=admission.signers,
    )
    result, fields = _refusal_fields(ctx, job.id, refusal.message, begun.attempt)
    history = entry(begun.attempt, "refused", None, error=refusal.message[:300])
    ctx.lifecycle.end(
        job, begun.attempt, retry.Verdict(JobStatus.FAILED), history, fields, ending=REFUSED
    )
    return Delivered("failed", result, refusal.message)


def deliver(
    ctx: WorkerContext, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any], worker: str
) -> Delivered:
    """Handle one delivery of a job's message on this worker."""
    try:
        admission = admit(task_id, args, kwargs, ctx.gate, ctx.runners)
    except Refusal as refusal:
        return _refuse(ctx, refusal)
    started = _now()
    begun = _start(ctx, admission, worker, started)
    if isinstance(begun, Delivered):
        return begun
    job = admission.job
    try:
        secrets = _open_secrets(ctx, job)
    except Refusal as refusal:
        return _fail_started(ctx, admission, begun, refusal)
    guard = Guard(
        job,
        begun.attempt,
        ctx.store,
        ctx.lifecycle,
        ctx.settings.timing.lease,
        _judge_cancel(ctx, job),
    )
    output = Output(ctx.lifecycle.bus, job, begun.attempt, secrets.values())
    clock = time.monotonic()
    try:
        if guard.cancel_requested(begun.cancel):  # cancelled while it waited for a retry
            outcome = Outcome(status=JobStatus.CANCELLED, error="cancelled before it started")
        else:
            guard.start()
            outcome = run_admitted(ctx, admission, begun.attempt, secrets, guard, output)
    finally:
        guard.close()
    if guard.lost.is_set():
        log.warning("job %s: attempt %d was taken back; not recording it", job.id, begun.attempt)
        return Delivered("dropped", reason="the attempt lost the job")
    result = JobResult(
        job_id=job.id,
        status=outcome.status,
        output=sealing.redact(outcome.output, secrets.values()) or "",
        error=sealing.redact(outcome.error, secrets.values()),
        exit_code=outcome.exit_code,
        started_at=started,
        completed_at=_now(),
        worker=worker,
        attempt=begun.attempt,
        duration=round(time.monotonic() - clock, 6),
        output_truncated=outcome.output_truncated,
    )
    return _end(ctx, job, begun, result, guard.cancelled)


def _end(
    ctx: WorkerContext, job: Job, begun: Started, result: JobResult, cancelled: bool
) -> Delivered:
    """Record how the attempt ended, as the retry decision says."""
    timing = ctx.settings.timing
    verdict = retry.decide(
        "ended",
        result.status,
        tries=begun.tries,
        max_attempts=job.max_attempts,
        cancelled=cancelled,
        now=time.time(),
        base=timing.retry_base,
        cap=timing.retry_cap,
    )
    first_error = (result.error or "").strip().splitlines()
    history = entry(
        begun.attempt,
        result.status.value,
        result.worker,
        exit_code=result.exit_code,
        error=first_error[-1][:300] if first_error else None,
        started=result.started_at and result.started_at.isoformat(),
    )
    fields = (
        {} if verdict.again else attest.result_fields(result, _now().isoformat(), ctx.result_key)
    )
    done = persist(
        f"job {job.id}",
        lambda: ctx.lifecycle.end(
            job,
            begun.attempt,
            verdict,
            history,
            fields,
            ending=result.status.value,
            duration=result.duration,
        ),
    )
    if done != "ok":
        log.warning(
            "job %s: attempt %d no longer owns the job; its result is dropped",
            job.id,
            begun.attempt,
        )
        return Delivered("dropped", reason="the attempt no longer owns the job")
    if verdict.again:
        log.info("job %s attempt %d %s; %s", job.id, begun.attempt, result.status, verdict.reason)
        if verdict.due <= time.time():  # due now: no need to wait for the sweeper
            try:
                publish(ctx.app, job)
                ctx.lifecycle.published(job.id, time.time())
            except HorusError as exc:  # the sweeper sends it
                log.warning("job %s: could not send its retry yet: %s", job.id, exc)
        return Delivered("retried", result, verdict.reason)
    if result.status is JobStatus.COMPLETED:
        return Delivered("completed", result)
    if result.status is JobStatus.CANCELLED:
        return Delivered("cancelled", result)
    return Delivered("failed", result)
