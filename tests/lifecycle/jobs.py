"""Jobs in every state the lifecycle knows, made through the lifecycle itself, and the
whole of what the store holds about one job (to show a refused write changed nothing)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from horus.job import Job, JobResult, JobStatus, parse_job
from horus.store import keys
from horus.store.lifecycle import Lifecycle, Started, entry
from horus.store.records import Store
from horus.store.retry import Verdict

WORKER = "w-rules"
#: a lease far enough ahead that nothing takes it back during a test
LEASE = 600.0


def make_job(runner_id: str, **fields: Any) -> Job:
    return parse_job({"runner_id": runner_id, "payload": "echo hi", **fields})


def created(life: Lifecycle, runner_id: str, **fields: Any) -> Job:
    job = make_job(runner_id, **fields)
    assert life.create(job) is True
    return job


def start(
    life: Lifecycle,
    job: Job,
    worker: str = WORKER,
    *,
    lease_until: float | None = None,
    expired: bool = False,
) -> Started:
    """Start an attempt of ``job``; whatever the outcome (the caller checks it)."""
    lease = time.time() + LEASE if lease_until is None else lease_until
    return life.start(job, worker, datetime.now(UTC).isoformat(), lease, expired)


def started(life: Lifecycle, job: Job, worker: str = WORKER, **how: Any) -> Started:
    begun = start(life, job, worker, **how)
    assert begun.outcome == "ok", begun
    return begun


def end(
    life: Lifecycle,
    job: Job,
    attempt: int,
    verdict: Verdict,
    fields: dict[str, str] | None = None,
    **how: Any,
) -> str:
    """End ``attempt`` of ``job`` with ``verdict`` (as its worker would, unless ``how``
    says ``reclaim_by``)."""
    history = entry(attempt, verdict.to.value, WORKER)
    return life.end(job, attempt, verdict, history, fields or {}, ending=verdict.to.value, **how)


def result_fields(job: Job, status: JobStatus) -> dict[str, str]:
    now = datetime.now(UTC)
    result = JobResult(job_id=job.id, status=status, output="hi\n", completed_at=now)
    return {"completed_at": now.isoformat(), "result": result.model_dump_json()}


def completed(life: Lifecycle, runner_id: str) -> Job:
    job = created(life, runner_id)
    begun = started(life, job)
    fields = result_fields(job, JobStatus.COMPLETED)
    assert end(life, job, begun.attempt, Verdict(JobStatus.COMPLETED), fields) == "ok"
    return job


def handed_back(life: Lifecycle, job: Job, attempt: int, due: float = 0.0) -> None:
    """Give the running ``attempt`` back, as a stopping worker does (pending, due ``due``)."""
    verdict = Verdict(JobStatus.PENDING, due=due, tries=-1, reason="its worker stopped")
    assert end(life, job, attempt, verdict) == "ok"


def in_status(life: Lifecycle, runner_id: str, status: JobStatus) -> Job:
    """A job that reached ``status`` the way such a job does: cancelled while pending, or
    started and ended there."""
    job = created(life, runner_id)
    if status is JobStatus.CANCELLED:
        fields = result_fields(job, status)
        assert life.close(job.id, runner_id, status, fields, status.value)[0] == "ok"
    elif status is not JobStatus.PENDING:
        begun = started(life, job)
        if status is not JobStatus.RUNNING:
            verdict = Verdict(status)
            assert end(life, job, begun.attempt, verdict, result_fields(job, status)) == "ok"
    return job


def state(store: Store, job: Job) -> dict[str, Any]:
    """Everything the store holds about ``job``: its whole record, whether it expires, and
    its entries in the status indexes and the bookkeeping sets."""
    r = store.redis
    jid = job.id
    worker = r.hget(keys.job(jid), "worker")
    return {
        "record": r.hgetall(keys.job(jid)),
        "expires": r.ttl(keys.job(jid)) > 0,
        "indexes": {s.value: r.zscore(keys.status_index(s.value), jid) for s in JobStatus},
        "lease": r.zscore(keys.LEASES, jid),
        "retry": r.zscore(keys.RETRIES, jid),
        "queued": r.zscore(keys.QUEUED, jid),
        "held": worker is not None and bool(r.sismember(keys.held(worker), jid)),
    }


def field(store: Store, job: Job, name: str) -> str | None:
    return store.redis.hget(keys.job(job.id), name)
