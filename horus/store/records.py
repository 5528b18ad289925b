"""Job records as the store holds them, and every read of them: one record, one status,
the indexes that list them, the waits for an end, and the bookkeeping sets the sweeper reads.

Writes that change a job's status live in :mod:`horus.store.lifecycle`, and nowhere else.
Records expire after the retention period; index entries older than it are trimmed as new
jobs arrive.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

from horus.config import Settings, redact
from horus.errors import BrokerUnavailable, JobNotFound
from horus.job import Job, JobResult, JobStatus
from horus.store import keys

#: seconds a waiter sleeps at most between two reads, should a publish be missed
RECHECK = 1.0


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class Record:
    """A job as the store holds it."""

    job: Job
    status: JobStatus
    worker: str | None
    started_at: datetime | None
    completed_at: datetime | None
    attempt: int
    result: JobResult | None
    cancel_requested: bool
    #: attempts that counted against max_attempts
    tries: int = 0
    #: every attempt that ended, oldest first: attempt, status, worker, at, ...
    history: tuple[dict[str, Any], ...] = ()
    #: when a pending job that failed before will be tried again (epoch seconds)
    retry_at: float | None = None
    #: ``<attempt>:<exit code>`` once a running attempt's process exited
    exited: str | None = None
    #: attempts lost with their worker before they exited (counted apart from ``tries``)
    lost: int = 0
    #: the result exactly as stored, and its worker's signature (see :mod:`horus.trust.attest`)
    result_text: str | None = None
    result_sig: str | None = None

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> Record:
        """Rebuild a record from the hash fields."""
        return cls(
            job=Job.model_validate_json(data["job"]),
            status=JobStatus(data["status"]),
            worker=data.get("worker") or None,
            started_at=_dt(data.get("started_at")),
            completed_at=_dt(data.get("completed_at")),
            attempt=int(data.get("attempt") or 0),
            result=JobResult.model_validate_json(data["result"]) if data.get("result") else None,
            cancel_requested=bool(data.get("cancel")),
            tries=int(data.get("tries") or 0),
            history=tuple(json.loads(data["history"])) if data.get("history") else (),
            retry_at=float(data["retry_at"]) if data.get("retry_at") else None,
            exited=data.get("exited") or None,
            lost=int(data.get("lost") or 0),
            result_text=data.get("result") or None,
            result_sig=data.get("result_sig") or None,
        )

    def summary(self) -> dict[str, Any]:
        """The record as JSON-safe data, for `--json` output."""
        return {
            "id": self.job.id,
            "runner_id": self.job.runner_id,
            "status": self.status.value,
            "caller_id": self.job.caller_id,
            "context_id": self.job.context_id,
            "tags": list(self.job.tags),
            "created_at": self.job.created_at.isoformat(),
            "worker": self.worker,
            "started_at": self.started_at and self.started_at.isoformat(),
            "completed_at": self.completed_at and self.completed_at.isoformat(),
            "attempt": self.attempt,
            "tries": self.tries,
            "lost": self.lost,
            "retry_at": self.retry_at,
            "history": list(self.history),
        }


class Store:
    """Reads job records; every method is one round trip to Redis (``find`` pages)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.store_url
        self.redis: redis.Redis[str] = redis.Redis.from_url(
            self.url,
            decode_responses=True,
            socket_connect_timeout=3,
            socket_timeout=10,
            health_check_interval=30,
        )

    @contextmanager
    def reach(self) -> Iterator[None]:
        """Turn connection failures into :class:`BrokerUnavailable`."""
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise BrokerUnavailable(redact(self.url), str(exc).split("\n")[0]) from None

    def ping(self) -> None:
        """Check the store answers."""
        with self.reach():
            self.redis.ping()

    def get(self, job_id: str) -> Record:
        """The record of one job, or :class:`JobNotFound`."""
        with self.reach():
            data = self.redis.hgetall(keys.job(job_id))
        if not data:
            raise JobNotFound(job_id)
        return Record.from_hash(data)

    def status(self, job_id: str) -> JobStatus:
        """The status of one job, reading one field."""
        with self.reach():
            value = self.redis.hget(keys.job(job_id), "status")
        if value is None:
            raise JobNotFound(job_id)
        return JobStatus(value)

    def wait_finished(self, job_id: str, timeout: float | None = None) -> JobResult:
        """Block until the job ended and return its result.

        Woken by the publish of the transition that ends the job, so the result arrives as
        soon as it is written; the record is read again at least every :data:`RECHECK` s.
        """
        end = None if timeout is None else time.monotonic() + timeout
        with self.reach():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(keys.done(job_id))  # before reading: none missed
                while True:
                    result = self.get(job_id).result
                    if result is not None:
                        return result
                    left = None if end is None else end - time.monotonic()
                    if left is not None and left <= 0:
                        raise TimeoutError(f"job {job_id} did not finish within {timeout} s")
                    pubsub.get_message(timeout=RECHECK if left is None else min(left, RECHECK))
            finally:
                pubsub.close()

    def find(
        self,
        *,
        status: JobStatus | None = None,
        runner_id: str | None = None,
        context_id: str | None = None,
        limit: int = 50,
    ) -> list[Record]:
        """Newest jobs first, filtered through the indexes; never scans the key space."""
        indexes = [keys.INDEX_ALL]
        if status:
            indexes.append(keys.status_index(status.value))
        if runner_id:
            indexes.append(keys.runner_index(runner_id))
        if context_id:
            indexes.append(keys.context_index(context_id))
        with self.reach():
            pipe = self.redis.pipeline(transaction=False)
            for index in indexes:
                pipe.zcard(index)
            sizes = pipe.execute()
            # Walk the smallest index, newest first; the other filters are checked on the
            # records themselves, so the cost follows the most selective filter.
            driver = min(zip(sizes, indexes, strict=True))[1]
            found: list[Record] = []
            expired: list[str] = []
            start, page = 0, max(limit, 100)
            while len(found) < limit:
                ids = self.redis.zrevrange(driver, start, start + page - 1)
                if not ids:
                    break
                start += page
                pipe = self.redis.pipeline(transaction=False)
                for job_id in ids:
                    pipe.hgetall(keys.job(job_id))
                for job_id, data in zip(ids, pipe.execute(), strict=True):
                    if not data:
                        expired.append(job_id)
                        continue
                    if (
                        (status and data["status"] != status.value)
                        or (runner_id and data["runner_id"] != runner_id)
                        or (context_id and data["context_id"] != context_id)
                    ):
                        continue
                    found.append(Record.from_hash(data))
                    if len(found) == limit:
                        break
            if expired:  # index entries whose record expired: one round trip, after paging
                self.redis.zrem(driver, *expired)
        return found

    def fence(self, job_id: str) -> tuple[str | None, int, str | None]:
        """The job's status, attempt number and cancel request, in one read."""
        with self.reach():
            status, attempt, cancel = self.redis.hmget(
                keys.job(job_id), ["status", "attempt", "cancel"]
            )
        return status, int(attempt or 0), cancel or None

    def _due(self, key: str, before: float, limit: int) -> list[str]:
        with self.reach():
            return list(self.redis.zrangebyscore(key, "-inf", before, 0, limit))

    def expired_leases(self, now: float, limit: int = 500) -> list[str]:
        """Running jobs whose lease ended before ``now``."""
        return self._due(keys.LEASES, now, limit)

    def due_retries(self, now: float, limit: int = 500) -> list[str]:
        """Pending jobs whose retry is due."""
        return self._due(keys.RETRIES, now, limit)

    def stale_queued(self, before: float, limit: int = 500) -> list[str]:
        """Pending jobs whose message was last published before ``before``."""
        return self._due(keys.QUEUED, before, limit)

    def held(self, worker: str) -> list[str]:
        """The jobs ``worker`` is running."""
        with self.reach():
            return sorted(self.redis.smembers(keys.held(worker)))
