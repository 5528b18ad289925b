"""Job records in Redis: the status of every job, its result, and the indexes that list them.

Keys (all under ``horus:``)::

    horus:job:<id>              hash: job (JSON), status, runner_id, context_id, caller_id,
                                created_at, worker, started_at, completed_at, attempt,
                                tries, lease, retry_at, history (JSON), result (JSON),
                                cancel (a signed cancel request, JSON)
    horus:index:all             sorted sets of job ids scored by created_at, one per
    horus:index:status:<s>      status, runner and context: ``horus list`` reads these and
    horus:index:runner:<r>      never scans keys
    horus:index:context:<c>
    horus:done:<id>             pub/sub channel: the terminal status, published by the
                                transition that ends the job (waiters block on it)
    horus:leases, retries,      the attempt bookkeeping of :mod:`horus.attempts`
    queued, held:<worker>
    horus:workers               sorted set of live worker names scored by last heartbeat
    horus:worker:<name>         JSON: the runners a worker serves, its host and pid

Every status change is one Lua script: one round trip, atomic, and refused unless the job is
in a state the change may start from. Records expire after the retention period; index
entries older than it are trimmed as new jobs arrive.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import redis

from horus.config import Settings, redact
from horus.errors import BrokerUnavailable, JobNotFound
from horus.job import Job, JobResult, JobStatus

PREFIX = "horus:"
#: seconds after its last heartbeat that a worker counts as gone
WORKER_TTL = 30
#: seconds a waiter sleeps at most between two reads, should a publish be missed
RECHECK = 1.0

_CREATE = """
-- KEYS: job, all, status, runner, context(optional) ; ARGV: id, created, retention, fields...
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local created, retention = tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], retention)
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[i], created, ARGV[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', created - retention)
end
return 1
"""

#: Lua shared by every script that changes a job's status (here and in horus.attempts):
#: the status index follows the status, and a job that ends keeps its record for the
#: retention period, leaves the retry and republish sets, and wakes its waiters.
LUA_STATUS = """
local function move(prefix, id, from, to, job)
  if from == to then return end
  local score = tonumber(redis.call('HGET', job, 'created_at'))
  redis.call('ZREM', prefix .. 'index:status:' .. from, id)
  redis.call('ZADD', prefix .. 'index:status:' .. to, score, id)
  redis.call('HSET', job, 'status', to)
end
local function finish(prefix, id, job, to, retention)
  redis.call('EXPIRE', job, retention)
  redis.call('ZREM', prefix .. 'retries', id)
  redis.call('ZREM', prefix .. 'queued', id)
  redis.call('PUBLISH', prefix .. 'done:' .. id, to)
end
"""

_TRANSITION = (
    LUA_STATUS
    + """
-- KEYS: job ; ARGV: prefix, id, to, retention, n_from, from..., fields...
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing'} end
local n_from = tonumber(ARGV[5])
local allowed = false
for i = 6, 5 + n_from do if ARGV[i] == status then allowed = true end end
if not allowed then return {'refused', status} end
local to = ARGV[3]
for i = 6 + n_from, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
move(ARGV[1], ARGV[2], status, to, KEYS[1])
if to ~= 'pending' and to ~= 'running' then
  finish(ARGV[1], ARGV[2], KEYS[1], to, tonumber(ARGV[4]))
end
return {'ok', status}
"""
)


_DISCARD = """
-- KEYS: job ; ARGV: prefix, id
if redis.call('HGET', KEYS[1], 'status') ~= 'pending' then return 0 end
if (redis.call('HGET', KEYS[1], 'attempt') or '0') ~= '0' then return 0 end
local runner = redis.call('HGET', KEYS[1], 'runner_id')
local context = redis.call('HGET', KEYS[1], 'context_id')
redis.call('DEL', KEYS[1])
for _, index in ipairs({'all', 'status:pending', 'runner:' .. runner, 'context:' .. context}) do
  redis.call('ZREM', ARGV[1] .. 'index:' .. index, ARGV[2])
end
redis.call('ZREM', ARGV[1] .. 'queued', ARGV[2])
return 1
"""


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
            "retry_at": self.retry_at,
            "history": list(self.history),
        }


@dataclass(frozen=True)
class Transition:
    """What a status change found: whether it applied and the status it found."""

    applied: bool
    previous: JobStatus | None


class Store:
    """Reads and writes job records; every method is one round trip to Redis."""

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
        self._create = self.redis.register_script(_CREATE)
        self._transition = self.redis.register_script(_TRANSITION)
        self._discard = self.redis.register_script(_DISCARD)
        self._request_cancel = self.redis.register_script(
            "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end "
            "redis.call('HSET', KEYS[1], 'cancel', ARGV[1]) return 1"
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

    @staticmethod
    def key(job_id: str) -> str:
        """The hash key of a job record."""
        return f"{PREFIX}job:{job_id}"

    def create(self, job: Job, sending: bool = False) -> bool:
        """Record a new pending job with its indexes; False if the id is already taken.

        ``sending``: its message is about to be published, so the sweeper publishes it again
        should the message vanish (a job only created waits for ``start_job``)."""
        keys = [
            self.key(job.id),
            f"{PREFIX}index:all",
            f"{PREFIX}index:status:pending",
            f"{PREFIX}index:runner:{job.runner_id}",
        ]
        if sending:
            keys.append(f"{PREFIX}queued")
        if job.context_id:
            keys.append(f"{PREFIX}index:context:{job.context_id}")
        fields = {
            "job": job.model_dump_json(),
            "status": JobStatus.PENDING.value,
            "runner_id": job.runner_id,
            "context_id": job.context_id or "",
            "caller_id": job.caller_id or "",
            "created_at": repr(job.created_at.timestamp()),
            "attempt": "0",
        }
        argv: list[str] = [job.id, fields["created_at"], str(self.settings.retention_seconds)]
        for name, value in fields.items():
            argv += [name, value]
        with self.reach():
            return bool(self._create(keys=keys, args=argv))

    def discard(self, job_id: str) -> None:
        """Remove a pending record whose message could not be sent, with its index entries;
        a record some worker already started is left alone."""
        with self.reach():
            self._discard(keys=[self.key(job_id)], args=[PREFIX, job_id])

    def transition(
        self,
        job_id: str,
        to: JobStatus,
        allowed_from: Iterable[JobStatus],
        fields: dict[str, str] | None = None,
    ) -> Transition:
        """Move a job to ``to`` if it is in one of ``allowed_from``; set ``fields`` with it."""
        froms = [s.value for s in allowed_from]
        argv: list[str] = [
            PREFIX,
            job_id,
            to.value,
            str(self.settings.retention_seconds),
            str(len(froms)),
            *froms,
        ]
        for name, value in (fields or {}).items():
            argv += [name, value]
        with self.reach():
            reply = cast(list[str], self._transition(keys=[self.key(job_id)], args=argv))
        if reply[0] == "missing":
            raise JobNotFound(job_id)
        return Transition(applied=reply[0] == "ok", previous=JobStatus(reply[1]))

    def get(self, job_id: str) -> Record:
        """The record of one job, or :class:`JobNotFound`."""
        with self.reach():
            data = self.redis.hgetall(self.key(job_id))
        if not data:
            raise JobNotFound(job_id)
        return Record.from_hash(data)

    def status(self, job_id: str) -> JobStatus:
        """The status of one job, reading one field."""
        with self.reach():
            value = self.redis.hget(self.key(job_id), "status")
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
                pubsub.subscribe(f"{PREFIX}done:{job_id}")  # before reading: none missed
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

    def request_cancel(self, job_id: str, request: str) -> None:
        """Attach a cancel request to a job; the worker running it checks and honours it."""
        with self.reach():
            if not self._request_cancel(keys=[self.key(job_id)], args=[request]):
                raise JobNotFound(job_id)

    def find(
        self,
        *,
        status: JobStatus | None = None,
        runner_id: str | None = None,
        context_id: str | None = None,
        limit: int = 50,
    ) -> list[Record]:
        """Newest jobs first, filtered through the indexes; never scans the key space."""
        indexes = [f"{PREFIX}index:all"]
        if status:
            indexes.append(f"{PREFIX}index:status:{status.value}")
        if runner_id:
            indexes.append(f"{PREFIX}index:runner:{runner_id}")
        if context_id:
            indexes.append(f"{PREFIX}index:context:{context_id}")
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
                    pipe.hgetall(self.key(job_id))
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

    def heartbeat(self, worker: str, runners: list[str], info: dict[str, Any]) -> None:
        """Announce a live worker and the runners it serves."""
        now = time.time()
        with self.reach():
            pipe = self.redis.pipeline(transaction=False)
            pipe.set(
                f"{PREFIX}worker:{worker}", json.dumps({"runners": runners, **info}), ex=WORKER_TTL
            )
            pipe.zadd(f"{PREFIX}workers", {worker: now})
            pipe.zremrangebyscore(f"{PREFIX}workers", "-inf", now - WORKER_TTL)
            pipe.execute()

    def forget_worker(self, worker: str) -> None:
        """Remove a worker that is shutting down."""
        with self.reach():
            self.redis.delete(f"{PREFIX}worker:{worker}")
            self.redis.zrem(f"{PREFIX}workers", worker)

    def live_workers(self) -> dict[str, dict[str, Any]]:
        """Workers seen in the last :data:`WORKER_TTL` seconds, with their runners."""
        with self.reach():
            names = self.redis.zrangebyscore(f"{PREFIX}workers", time.time() - WORKER_TTL, "+inf")
            if not names:
                return {}
            values = self.redis.mget([f"{PREFIX}worker:{n}" for n in names])
        return {n: json.loads(v) for n, v in zip(names, values, strict=True) if v}
