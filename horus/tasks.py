"""The one Celery task that executes every job.

A message can come from anywhere, so the worker validates the job again, checks that its
record exists and is pending, and only then hands it to the runner. The JobResult is the
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

from horus import config, registry
from horus.app import app
from horus.errors import HorusError, InvalidJob, JobFailed, JobNotFound
from horus.job import Job, JobResult, JobStatus, parse_job
from horus.process import Outcome
from horus.routing import TASK_NAME
from horus.runner import RunContext, Runner
from horus.store import Store

log = logging.getLogger(__name__)


@cache
def store() -> Store:
    """The job store of this process."""
    return Store(config.load())


def _now() -> datetime:
    return datetime.now(UTC)


def _refuse(job_id: str, reason: str) -> NoReturn:
    """Record a job the worker will not run as failed, with the reason, and stop."""
    log.warning("refused job %s: %s", job_id, reason)
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


def _admit(task: Task[Any, Any], message: Any) -> tuple[Job, Runner]:
    """Validate the message into a job this worker may run, or refuse it."""
    job_id = str(task.request.id)
    if not isinstance(message, dict):
        _refuse(job_id, "the message is not a job object; submit jobs with `horus enqueue`")
    try:
        job = parse_job(message)
    except InvalidJob as exc:
        _refuse(job_id, str(exc))
    if job.id != job_id:
        _refuse(job_id, f"the message's task id {job_id} is not the job's id {job.id}")
    runner = registry.installed().runners.get(job.runner_id)
    if runner is None:
        _refuse(
            job.id,
            f"this worker has no runner {job.runner_id!r}; start a worker with "
            f"`horus worker --runner {job.runner_id}`",
        )
    try:
        registry.validate(runner, job)
    except InvalidJob as exc:
        _refuse(job.id, str(exc))
    return job, runner


@app.task(name=TASK_NAME, bind=True, throws=(JobFailed,))
def execute(self: Task[Any, Any], message: Any) -> dict[str, Any]:
    """Run one job and return its JobResult; raise JobFailed unless it completed."""
    job, runner = _admit(self, message)
    worker = str(self.request.hostname or "worker")
    started = _now()
    try:
        moved = store().transition(
            job.id,
            JobStatus.RUNNING,
            [JobStatus.PENDING],
            {"worker": worker, "started_at": started.isoformat(), "attempt": "1"},
        )
    except JobNotFound:
        _refuse(
            job.id,
            "the job has no record: it was not submitted through a Horus client; "
            "submit it with `horus enqueue` or Client.submit",
        )
    if not moved.applied:
        # Cancelled before it started, or already handled: never run it.
        log.info("job %s is %s; not running it", job.id, moved.previous)
        raise Ignore()
    workdir = Path(tempfile.mkdtemp(prefix=f"horus-{job.id[:12]}-"))
    clock = time.monotonic()
    try:
        outcome = runner.run(
            RunContext(
                job=job,
                workdir=workdir,
                deadline=clock + job.timeout,
                cancelled=lambda: store().cancel_requested(job.id),
                groups_dir=store().settings.home / "run" / "groups",
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
        output=outcome.output,
        error=outcome.error,
        exit_code=outcome.exit_code,
        started_at=started,
        completed_at=finished,
        worker=worker,
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
