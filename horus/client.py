"""The Python client: the only place that sends jobs.

It offers the seed-001 calls (``create_job``, ``start_job``, ``run_job_and_await_result``,
``get_job_status``, ``get_job_result``, ``get_job_output``, ``cancel_job``, ``list_jobs``).
A job is validated with the same function the worker uses, recorded as pending, and only
then published to its runner's queue.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError

from horus import config, registry
from horus.app import app as default_app
from horus.config import Settings, redact
from horus.errors import BrokerUnavailable, InvalidJob, JobStateError, UnknownRunner
from horus.job import Job, JobResult, JobStatus, parse_job
from horus.routing import TASK_NAME, queue_for
from horus.store import Record, Store

#: seconds the worker's hard time limit exceeds a job's own timeout (a backstop only)
HARD_LIMIT_MARGIN = 60


class Client:
    """Submits, inspects and cancels jobs."""

    def __init__(self, settings: Settings | None = None, app: Celery | None = None) -> None:
        self.settings = settings or config.load()
        self.store = Store(self.settings)
        self.app = app or default_app

    # -- submitting -------------------------------------------------------------------

    def known_runners(self) -> frozenset[str]:
        """Runners installed here or served by a live worker."""
        served = {r for w in self.store.live_workers().values() for r in w.get("runners", [])}
        return frozenset(registry.installed().runners) | served

    def check(self, job: Job) -> Job:
        """Refuse a job no worker could run, with the same checks the worker applies."""
        installed = registry.installed()
        runner = installed.runners.get(job.runner_id)
        if runner is None:
            known = self.known_runners()
            if job.runner_id not in known:
                raise UnknownRunner(job.runner_id, sorted(known))
            return job  # served by a live worker elsewhere, which validates it
        registry.validate(runner, job)
        return job

    def _create(self, job: Job | dict[str, Any]) -> Job:
        job = self.check(job if isinstance(job, Job) else parse_job(job))
        if not self.store.create(job):
            raise InvalidJob(f"job id {job.id!r} is taken; leave id unset to get a fresh one")
        return job

    def create_job(self, job: Job | dict[str, Any]) -> str:
        """Validate and record a job as pending without sending it; returns its id."""
        return self._create(job).id

    def start_job(self, job_id: str) -> None:
        """Send a created (pending) job to its runner's queue."""
        record = self.store.get(job_id)
        if record.status is not JobStatus.PENDING:
            raise JobStateError(f"job {job_id} is {record.status}; only a pending job can start")
        self._publish(record.job)

    def submit(self, job: Job | dict[str, Any]) -> str:
        """Create and start a job in one call; returns its id."""
        created = self._create(job)
        try:
            self._publish(created)  # the job just validated and recorded: no re-read
        except BrokerUnavailable:
            self.store.discard(created.id)  # nothing half-written: no record without a message
            raise
        return created.id

    def run_job_and_await_result(
        self, job: Job | dict[str, Any], timeout: float | None = None
    ) -> JobResult:
        """Submit a job and wait for its result (seed 001's one-shot call)."""
        return self.wait(self.submit(job), timeout)

    def _publish(self, job: Job) -> None:
        summary = f"runner={job.runner_id} payload={job.payload[:80]!r}"
        try:
            self.app.send_task(
                TASK_NAME,
                args=[job.model_dump(mode="json")],
                task_id=job.id,
                queue=queue_for(job.runner_id),
                routing_key=queue_for(job.runner_id),
                argsrepr=summary,
                kwargsrepr="{}",
                time_limit=job.timeout + HARD_LIMIT_MARGIN,
                retry=True,
                retry_policy={
                    "max_retries": 2,
                    "interval_start": 0.2,
                    "interval_step": 0.5,
                    "interval_max": 1,
                },
            )
        except OperationalError as exc:
            raise BrokerUnavailable(redact(str(self.app.conf.broker_url)), str(exc)) from None

    # -- inspecting -------------------------------------------------------------------

    def get_job(self, job_id: str) -> Record:
        """The whole record of a job."""
        return self.store.get(job_id)

    def get_job_status(self, job_id: str) -> JobStatus:
        """The job's current status."""
        return self.store.status(job_id)

    def get_job_result(self, job_id: str) -> JobResult | None:
        """The job's result, or None while it has not finished."""
        return self.store.get(job_id).result

    def get_job_output(self, job_id: str) -> str | None:
        """The job's output, or None while it has not finished."""
        result = self.get_job_result(job_id)
        return None if result is None else result.output

    def wait(self, job_id: str, timeout: float | None = None) -> JobResult:
        """Block until the job is finished and return its result (TimeoutError after
        ``timeout`` seconds, if given)."""
        return self.store.wait_finished(job_id, timeout)

    def list_jobs(
        self,
        status: JobStatus | str | None = None,
        runner_id: str | None = None,
        context_id: str | None = None,
        limit: int = 50,
    ) -> list[Record]:
        """Newest jobs first, filtered by status, runner and context."""
        return self.store.find(
            status=JobStatus(status) if status else None,
            runner_id=runner_id,
            context_id=context_id,
            limit=limit,
        )

    # -- controlling ------------------------------------------------------------------

    def cancel_job(self, job_id: str) -> JobStatus:
        """Cancel a job: a pending one never starts, a running one is stopped.

        Returns the status right after the request: ``cancelled`` for a pending job,
        ``running`` for one whose worker is stopping it now.
        """
        now = datetime.now(UTC)
        result = JobResult(
            job_id=job_id,
            status=JobStatus.CANCELLED,
            error="cancelled before it started",
            completed_at=now,
        )
        moved = self.store.transition(
            job_id,
            JobStatus.CANCELLED,
            [JobStatus.PENDING],
            {"completed_at": now.isoformat(), "result": result.model_dump_json(), "cancel": "1"},
        )
        if moved.applied:
            return JobStatus.CANCELLED
        if moved.previous is JobStatus.RUNNING:
            self.store.request_cancel(job_id)
            return JobStatus.RUNNING
        raise JobStateError(f"job {job_id} already ended {moved.previous}; nothing to cancel")

    def runners(self) -> dict[str, dict[str, Any]]:
        """Installed runners and the live workers serving each."""
        installed = registry.installed()
        table: dict[str, dict[str, Any]] = {
            name: {"installed": True, "description": r.description, "workers": []}
            for name, r in installed.runners.items()
        }
        for name, reason in installed.broken.items():
            table[name] = {"installed": False, "description": reason, "workers": []}
        for worker, info in sorted(self.store.live_workers().items()):
            for name in info.get("runners", []):
                table.setdefault(name, {"installed": False, "description": "", "workers": []})
                table[name]["workers"].append(worker)
        return table
