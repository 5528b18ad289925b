"""Attempts: starting a job under a lease, renewing it, ending it, and recovering it.

Each start increments the record's ``attempt``: that number is the fencing token. Every
later write of the attempt (renewing its lease, ending it, handing it back) applies only
while the record is ``running`` with that same number, so a worker that lost its lease can
never overwrite what another attempt did. ``tries`` counts the attempts that count against
``max_attempts`` (a graceful hand-back does not).

Keys (besides the record)::

    horus:leases            sorted set: running job -> lease expiry (epoch seconds)
    horus:retries           sorted set: pending job -> when to publish it again
    horus:queued            sorted set: pending job -> when its message was last published
    horus:held:<worker>     set: the jobs a worker is running (handed back at shutdown)

Each operation is one Lua script: one round trip, atomic.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, cast

from horus.errors import HorusError
from horus.store import LUA_STATUS, PREFIX, Store

log = logging.getLogger(__name__)

_LIB = (
    LUA_STATUS
    + """
local function remember(job, entry)
  local h = redis.call('HGET', job, 'history')
  if not h or h == '' then h = '[' .. entry .. ']'
  else h = string.sub(h, 1, -2) .. ',' .. entry .. ']' end
  redis.call('HSET', job, 'history', h)
end
local function release(prefix, id, job)
  redis.call('ZREM', prefix .. 'leases', id)
  local worker = redis.call('HGET', job, 'worker')
  if worker then redis.call('SREM', prefix .. 'held:' .. worker, id) end
end
local function requeue(prefix, id, job, due, retention)
  move(prefix, id, 'running', 'pending', job)
  redis.call('HSET', job, 'retry_at', due)
  redis.call('ZADD', prefix .. 'retries', due, id)
  redis.call('EXPIRE', job, retention)
end
"""
)

_START = (
    _LIB
    + """
-- KEYS: job ; ARGV: prefix, id, worker, started_at, lease_until, now, expired (1/0)
local prefix, id = ARGV[1], ARGV[2]
-- An expired signature stops a first attempt only: a retry is not a replay.
if ARGV[7] == '1' and tonumber(redis.call('HGET', KEYS[1], 'attempt') or '0') == 0 then
  return {'expired'}
end
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing'} end
if status ~= 'pending' then return {'refused', status} end
local due = tonumber(redis.call('HGET', KEYS[1], 'retry_at') or '0')
if due > tonumber(ARGV[6]) + 1 then  -- a second of clock skew between machines is fine
  redis.call('ZADD', prefix .. 'retries', due, id)  -- whatever happens, the retry stays
  return {'early', status}
end
local attempt = redis.call('HINCRBY', KEYS[1], 'attempt', 1)
local tries = redis.call('HINCRBY', KEYS[1], 'tries', 1)
move(prefix, id, 'pending', 'running', KEYS[1])
redis.call('HSET', KEYS[1], 'worker', ARGV[3], 'started_at', ARGV[4], 'lease', ARGV[5])
redis.call('HDEL', KEYS[1], 'retry_at')
redis.call('PERSIST', KEYS[1])  -- a running job's record outlives the retention period
redis.call('ZADD', prefix .. 'leases', ARGV[5], id)
redis.call('SADD', prefix .. 'held:' .. ARGV[3], id)
redis.call('ZREM', prefix .. 'retries', id)
redis.call('ZREM', prefix .. 'queued', id)
return {'ok', tostring(attempt), tostring(tries), redis.call('HGET', KEYS[1], 'cancel') or ''}
"""
)

_RENEW = """
-- KEYS: job ; ARGV: prefix, id, attempt, lease_until
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], 'lease', ARGV[4])
redis.call('ZADD', ARGV[1] .. 'leases', ARGV[4], ARGV[2])
return 1
"""

_END = (
    _LIB
    + """
-- KEYS: job ; ARGV: prefix, id, attempt, to, retention, retry_at, history entry, fields...
local prefix, id, to = ARGV[1], ARGV[2], ARGV[4]
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing'} end
if status ~= 'running' or redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[3] then
  return {'fenced', status}
end
remember(KEYS[1], ARGV[7])
for i = 8, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
release(prefix, id, KEYS[1])
if to == 'pending' then
  requeue(prefix, id, KEYS[1], ARGV[6], tonumber(ARGV[5]))
else
  move(prefix, id, 'running', to, KEYS[1])
  finish(prefix, id, KEYS[1], to, tonumber(ARGV[5]))
end
return {'ok', status}
"""
)

_RECLAIM = (
    _LIB
    + """
-- KEYS: job ; ARGV: prefix, id, attempt, now, retention, retry_at, history entry,
--               failed result, completed_at, completed result (or '')
local prefix, id = ARGV[1], ARGV[2]
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' then
  redis.call('ZREM', prefix .. 'leases', id)
  return {'gone'}
end
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[3] then return {'moved'} end
local lease = tonumber(redis.call('HGET', KEYS[1], 'lease') or '0')
if lease > tonumber(ARGV[4]) then
  redis.call('ZADD', prefix .. 'leases', lease, id)
  return {'alive'}
end
remember(KEYS[1], ARGV[7])
release(prefix, id, KEYS[1])
if ARGV[10] ~= '' then  -- the job had exited 0 before its worker died: it completed
  move(prefix, id, 'running', 'completed', KEYS[1])
  redis.call('HSET', KEYS[1], 'result', ARGV[10], 'completed_at', ARGV[9])
  finish(prefix, id, KEYS[1], 'completed', tonumber(ARGV[5]))
  return {'completed'}
end
local job = cjson.decode(redis.call('HGET', KEYS[1], 'job'))
local tries = tonumber(redis.call('HGET', KEYS[1], 'tries') or '0')
if tries < tonumber(job['max_attempts'] or 1) then
  requeue(prefix, id, KEYS[1], ARGV[6], tonumber(ARGV[5]))
  return {'retry'}
end
move(prefix, id, 'running', 'failed', KEYS[1])
redis.call('HSET', KEYS[1], 'result', ARGV[8], 'completed_at', ARGV[9])
finish(prefix, id, KEYS[1], 'failed', tonumber(ARGV[5]))
return {'failed'}
"""
)

_EXITED = """
-- KEYS: job ; ARGV: prefix, id, attempt, exit code
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], 'exited', ARGV[3] .. ':' .. ARGV[4])
return 1
"""

_PUBLISHED = """
-- KEYS: queued, retries ; ARGV: id, now
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local due = redis.call('ZSCORE', KEYS[2], ARGV[1])
-- only the retry this publish served: a newer one (set after it) stays
if due and tonumber(due) <= tonumber(ARGV[2]) then redis.call('ZREM', KEYS[2], ARGV[1]) end
return 1
"""

_HANDBACK = (
    _LIB
    + """
-- KEYS: job ; ARGV: prefix, id, attempt, due, history entry, retention
local prefix, id = ARGV[1], ARGV[2]
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[3] then return 0 end
remember(KEYS[1], ARGV[5])
release(prefix, id, KEYS[1])
redis.call('HINCRBY', KEYS[1], 'tries', -1)
requeue(prefix, id, KEYS[1], ARGV[4], tonumber(ARGV[6]))
return 1
"""
)


@dataclass(frozen=True)
class Started:
    """What a start found: ``ok`` with the attempt number, or why it did not start."""

    outcome: str
    status: str = ""
    attempt: int = 0
    tries: int = 0
    #: a cancel request the job already carries (made while it waited for a retry)
    cancel: str | None = None


def backoff(tries: int, base: float, cap: float) -> float:
    """Seconds to wait before attempt ``tries + 1`` (seed 003): immediately after the
    first failure, then ``base``, ``2 * base``, doubling, at most ``cap``."""
    if tries <= 1:
        return 0.0
    return float(min(cap, base * 2 ** (tries - 2)))


def entry(attempt: int, status: str, worker: str | None, **more: Any) -> str:
    """One attempt in a job's history, as JSON."""
    return json.dumps(
        {"attempt": attempt, "status": status, "worker": worker, "at": time.time(), **more}
    )


class Attempts:
    """The attempt operations on the job store."""

    def note_orphan_exit(self, label: str, code: int) -> bool:
        """The ``note`` of :func:`horus.groups.collect_orphans`: an attempt (``label`` is
        ``<job id> <attempt>``) whose worker process died had exited with ``code``; one that
        exited 0 is recorded, so that the sweeper completes the job instead of running it
        again. False while the store cannot be reached."""
        job_id, _, attempt = label.partition(" ")
        if code == 0 and attempt.isdigit():
            try:
                self.exited(job_id, int(attempt), 0)
            except HorusError as exc:
                log.warning("job %s: could not note its exit yet: %s", job_id, exc)
                return False
        log.warning("job %s attempt %s exited %d as its worker process died", job_id, attempt, code)
        return True

    def __init__(self, store: Store) -> None:
        self.store = store
        redis = store.redis
        self._start = redis.register_script(_START)
        self._renew = redis.register_script(_RENEW)
        self._end = redis.register_script(_END)
        self._reclaim = redis.register_script(_RECLAIM)
        self._handback = redis.register_script(_HANDBACK)
        self._exited = redis.register_script(_EXITED)
        self._published = redis.register_script(_PUBLISHED)

    def _call(self, script: Any, job_id: str, *args: object) -> Any:
        with self.store.reach():
            return script(keys=[self.store.key(job_id)], args=[PREFIX, job_id, *map(str, args)])

    def start(
        self, job_id: str, worker: str, started_at: str, lease_until: float, expired: bool
    ) -> Started:
        """Move a pending job to running under a new attempt number and lease; an
        ``expired`` job starts only if it ran before (``expired`` outcome otherwise)."""
        reply = cast(
            list[str],
            self._call(
                self._start, job_id, worker, started_at, lease_until, time.time(), int(expired)
            ),
        )
        if reply[0] == "ok":
            return Started("ok", "running", int(reply[1]), int(reply[2]), reply[3] or None)
        return Started(reply[0], reply[1] if len(reply) > 1 else "")

    def renew(self, job_id: str, attempt: int, lease_until: float) -> bool:
        """Extend the lease of ``attempt``; False once the attempt no longer owns the job."""
        return bool(self._call(self._renew, job_id, attempt, lease_until))

    def end(
        self,
        job_id: str,
        attempt: int,
        to: str,
        history: str,
        fields: dict[str, str],
        retry_at: float = 0.0,
    ) -> bool:
        """End ``attempt``: a terminal status, or ``pending`` to retry at ``retry_at``.
        False when the attempt no longer owns the job (fenced out)."""
        flat = [x for pair in fields.items() for x in pair]
        retention = self.store.settings.retention_seconds
        reply = cast(
            list[str],
            self._call(self._end, job_id, attempt, to, retention, retry_at, history, *flat),
        )
        return reply[0] == "ok"

    def reclaim(
        self,
        job_id: str,
        attempt: int,
        history: str,
        failed: str,
        completed_at: str,
        retry_at: float,
        completed: str = "",
    ) -> str:
        """Take back a running job whose lease expired: ``retry``, ``failed`` (out of
        attempts), ``completed`` (given ``completed``, the result of a job whose process had
        exited 0), or ``alive`` / ``gone`` / ``moved`` when there is nothing to take."""
        retention = self.store.settings.retention_seconds
        reply = cast(
            list[str],
            self._call(
                self._reclaim,
                job_id,
                attempt,
                time.time(),
                retention,
                retry_at,
                history,
                failed,
                completed_at,
                completed,
            ),
        )
        return reply[0]

    def exited(self, job_id: str, attempt: int, code: int) -> None:
        """Note at once that ``attempt``'s process exited with ``code``: should the worker
        die before it records the result, the sweeper knows the job ran to its end."""
        self._call(self._exited, job_id, attempt, code)

    def hand_back(self, job_id: str, attempt: int, history: str, due: float) -> bool:
        """Return a running attempt to pending without counting it (graceful shutdown); it
        may start again from ``due``, once the stopped attempt's processes are gone."""
        retention = self.store.settings.retention_seconds
        return bool(self._call(self._handback, job_id, attempt, due, history, retention))

    def fence(self, job_id: str) -> tuple[str | None, int, str | None]:
        """The job's status, attempt number and cancel request, in one read."""
        with self.store.reach():
            status, attempt, cancel = self.store.redis.hmget(
                self.store.key(job_id), ["status", "attempt", "cancel"]
            )
        return status, int(attempt or 0), cancel or None

    def _due(self, key: str, before: float, limit: int) -> list[str]:
        with self.store.reach():
            return list(self.store.redis.zrangebyscore(key, "-inf", before, 0, limit))

    def expired_leases(self, now: float, limit: int = 500) -> list[str]:
        """Running jobs whose lease ended before ``now``."""
        return self._due(f"{PREFIX}leases", now, limit)

    def due_retries(self, now: float, limit: int = 500) -> list[str]:
        """Pending jobs whose retry is due."""
        return self._due(f"{PREFIX}retries", now, limit)

    def stale_queued(self, before: float, limit: int = 500) -> list[str]:
        """Pending jobs whose message was last published before ``before``."""
        return self._due(f"{PREFIX}queued", before, limit)

    def published(self, job_id: str, at: float) -> None:
        """Note that a message for the job was just published: the sweeper publishes it
        again should it never start; the retry it served (due by ``at``) is done."""
        with self.store.reach():
            self._published(keys=[f"{PREFIX}queued", f"{PREFIX}retries"], args=[job_id, at])

    def postpone(self, job_id: str, at: float) -> None:
        """Look at a pending job's message again ``republish_after`` from ``at``, as if it
        had been published then (its retries are left as they are)."""
        with self.store.reach():
            self.store.redis.zadd(f"{PREFIX}queued", {job_id: at})

    def forget(self, job_id: str, keep_queued: bool = False) -> None:
        """Drop the bookkeeping of a job that ended or whose record expired."""
        keys = ["leases", "retries"] + ([] if keep_queued else ["queued"])
        with self.store.reach():
            pipe = self.store.redis.pipeline(transaction=False)
            for key in keys:
                pipe.zrem(f"{PREFIX}{key}", job_id)
            pipe.execute()

    def held(self, worker: str) -> list[str]:
        """The jobs ``worker`` is running."""
        with self.store.reach():
            return sorted(self.store.redis.smembers(f"{PREFIX}held:{worker}"))
