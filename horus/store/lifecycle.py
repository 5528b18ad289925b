"""Every write that changes a job's status, and the one end-of-job path.

A job is created ``pending``; an attempt starts it (``running``, under a lease and a new
attempt number: the fencing token); the attempt ends it (a terminal status, or ``pending``
again for another attempt, as :mod:`horus.store.retry` decides). Every later write of an
attempt (renewing its lease, noting its exit, ending it) applies only while the record is
``running`` with that same number, so a worker that lost the job can never overwrite what
another attempt did. A job no attempt holds ends through :meth:`Lifecycle.close` (cancelled
while pending, refused before it ran).

Each operation is one Lua script (``lua/*.lua``): one round trip, atomic. After a write, the
lifecycle tells the event bus what happened (:mod:`horus.events`): ``ended`` is emitted here
and only here, whatever ended the job, and is where what must follow an ending hangs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from horus.events import Bus
from horus.job import Job, JobStatus
from horus.store import keys
from horus.store.records import Store
from horus.store.retry import Verdict
from horus.store.scripts import Scripts

#: the ending of a job that failed because it was refused, or lost with its worker
REFUSED, LOST = "refused", "lost"


@dataclass(frozen=True)
class Started:
    """What a start found: ``ok`` with the attempt number, or why it did not start."""

    outcome: str
    status: str = ""
    attempt: int = 0
    tries: int = 0
    #: a cancel request the job already carries (made while it waited for a retry)
    cancel: str | None = None


def entry(attempt: int, status: str, worker: str | None, **more: Any) -> str:
    """One attempt in a job's history, as JSON."""
    return json.dumps(
        {"attempt": attempt, "status": status, "worker": worker, "at": time.time(), **more}
    )


def _flat(fields: dict[str, str]) -> list[str]:
    return [x for pair in fields.items() for x in pair]


class Lifecycle:
    """The status writes on one store; events go to ``bus``."""

    def __init__(self, store: Store, bus: Bus | None = None) -> None:
        self.store = store
        self.bus = bus or Bus()
        self.scripts = Scripts(store.redis)
        self.retention = store.settings.retention_seconds

    def _call(self, name: str, job_id: str, *args: object, extra: tuple[str, ...] = ()) -> Any:
        with self.store.reach():
            return self.scripts.call(name, job_id, *args, extra_keys=extra)

    @staticmethod
    def _indexes(job_id: str, runner_id: str, context_id: str | None) -> tuple[str, ...]:
        context = keys.context_index(context_id) if context_id else ""
        return (keys.INDEX_ALL, keys.runner_index(runner_id), context)

    # -- a job no attempt holds --------------------------------------------------------

    def create(self, job: Job, sending: bool = False) -> bool:
        """Record a new pending job with its indexes; False if the id is already taken.

        ``sending``: its message is about to be published, so the sweeper publishes it again
        should the message vanish (a job only created waits for ``start_job``)."""
        args, extra = self._create_args(job, sending)
        return bool(self._call("create", job.id, *args, extra=extra))

    def create_many(self, jobs: Sequence[Job], sending: bool = False) -> list[bool]:
        """:meth:`create` for each of ``jobs``, in one round trip (each job's record is still
        written atomically, by its own script call)."""
        with self.store.reach():
            pipe = self.store.redis.pipeline(transaction=False)
            for job in jobs:
                args, extra = self._create_args(job, sending)
                self.scripts.call("create", job.id, *args, extra_keys=extra, client=pipe)
            return [bool(made) for made in pipe.execute()]

    def _create_args(self, job: Job, sending: bool) -> tuple[tuple[object, ...], tuple[str, ...]]:
        """The arguments and extra keys of the create script for ``job``."""
        created = repr(job.created_at.timestamp())
        fields = {
            "job": job.model_dump_json(),
            "status": JobStatus.PENDING.value,
            "runner_id": job.runner_id,
            "context_id": job.context_id or "",
            "caller_id": job.caller_id or "",
            "created_at": created,
            "attempt": "0",
        }
        extra = self._indexes(job.id, job.runner_id, job.context_id)
        return (job.id, created, self.retention, int(sending), *_flat(fields)), extra

    def discard(self, job: Job) -> None:
        """Remove a pending record whose message could not be sent, with its index entries;
        a record some worker already started is left alone."""
        self._call(
            "discard", job.id, job.id, extra=self._indexes(job.id, job.runner_id, job.context_id)
        )

    def close(
        self,
        job_id: str,
        runner_id: str,
        to: JobStatus,
        fields: dict[str, str],
        ending: str,
        request: str = "",
    ) -> tuple[str, JobStatus | None]:
        """End a pending job ``to`` a terminal status with ``fields`` (``ending``: cancelled
        or refused). With a cancel ``request``, a running job gets the request instead, for
        its worker to judge. Returns ``ok`` / ``requested`` / ``refused`` / ``missing`` and
        the status found."""
        reply = cast(
            list[str],
            self._call("close", job_id, job_id, to.value, self.retention, request, *_flat(fields)),
        )
        found = JobStatus(reply[1]) if len(reply) > 1 else None
        if reply[0] == "ok":
            if ending == JobStatus.CANCELLED.value:
                self.bus.emit("cancel_honoured", job_id, runner_id)
            self.bus.emit("ended", job_id, runner_id, status=to.value, ending=ending)
        return reply[0], found

    # -- an attempt --------------------------------------------------------------------

    def start(
        self,
        job: Job,
        worker: str,
        started_at: str,
        lease_until: float,
        expired: bool,
        signers: tuple[str, ...] = (),
    ) -> Started:
        """Move a pending job to running under a new attempt number and lease; an
        ``expired`` job starts only if it ran before (``expired`` outcome otherwise). A job
        that starts was admitted (``signers`` signed it)."""
        reply = cast(
            list[str],
            self._call(
                "start", job.id, job.id, worker, started_at, lease_until, time.time(), int(expired)
            ),
        )
        if reply[0] != "ok":
            return Started(reply[0], reply[1] if len(reply) > 1 else "")
        begun = Started("ok", "running", int(reply[1]), int(reply[2]), reply[3] or None)
        self.bus.emit("admitted", job.id, job.runner_id, begun.attempt, signers=signers)
        self.bus.emit("started", job.id, job.runner_id, begun.attempt, worker=worker)
        return begun

    def renew(self, job_id: str, attempt: int, lease_until: float) -> bool:
        """Extend the lease of ``attempt``; False once the attempt no longer owns the job."""
        return bool(self._call("renew", job_id, job_id, attempt, lease_until))

    def note_exit(self, job_id: str, attempt: int, code: int, runner_id: str = "") -> bool:
        """Note at once that ``attempt``'s process exited with ``code``: should the worker
        die before it records the result, the sweeper knows the job ran to its end."""
        noted = bool(self._call("exited", job_id, job_id, attempt, code))
        if noted:
            self.bus.emit("exited", job_id, runner_id, attempt, exit_code=code)
        return noted

    def end(
        self,
        job: Job,
        attempt: int,
        verdict: Verdict,
        history: str,
        fields: dict[str, str],
        *,
        ending: str,
        duration: float | None = None,
        reclaim_by: float | None = None,
        exit_note: str = "",
    ) -> str:
        """The one end of an attempt: apply ``verdict`` (from :func:`horus.store.retry.decide`)
        while ``attempt`` owns the job. ``reclaim_by`` (the sweeper's now): only once the
        lease expired by then and while the record's exit note is ``exit_note``. Returns
        ``ok``, or ``fenced`` / ``missing`` / ``alive`` / ``changed`` when nothing changed."""
        reply = cast(
            list[str],
            self._call(
                "end",
                job.id,
                job.id,
                attempt,
                verdict.to.value,
                self.retention,
                verdict.due,
                history,
                verdict.tries,
                verdict.lost,
                "" if reclaim_by is None else reclaim_by,
                exit_note,
                *_flat(fields),
            ),
        )
        if reply[0] == "ok":
            self._ended(job, attempt, verdict, ending, duration, reclaimed=reclaim_by is not None)
        return reply[0]

    def _ended(
        self,
        job: Job,
        attempt: int,
        verdict: Verdict,
        ending: str,
        duration: float | None,
        reclaimed: bool,
    ) -> None:
        emit, jid, rid = self.bus.emit, job.id, job.runner_id
        if reclaimed:
            emit("reclaimed", jid, rid, attempt, reason=verdict.reason, to=verdict.to.value)
        if verdict.again and ending == "handed back":
            emit("handed_back", jid, rid, attempt)
        elif verdict.again:
            emit("retried", jid, rid, attempt, due=verdict.due, reason=verdict.reason)
        else:
            if ending == JobStatus.CANCELLED.value:
                emit("cancel_honoured", jid, rid, attempt)
            emit(
                "ended",
                jid,
                rid,
                attempt,
                status=verdict.to.value,
                ending=ending,
                duration=duration,
            )

    # -- messages ----------------------------------------------------------------------

    def published(self, job_id: str, at: float) -> None:
        """Note that a message for the job was just published: the sweeper publishes it
        again should it never start; the retry it served (due by ``at``) is done."""
        self._call("published", job_id, job_id, at)

    def postpone(self, job_id: str, at: float) -> None:
        """Look at a pending job's message again ``republish_after`` from ``at``, as if it
        had been published then (its retries are left as they are)."""
        with self.store.reach():
            self.store.redis.zadd(keys.QUEUED, {job_id: at})

    def forget(self, job_id: str, keep_queued: bool = False) -> None:
        """Drop the bookkeeping of a job that ended or whose record expired."""
        names = [keys.LEASES, keys.RETRIES] + ([] if keep_queued else [keys.QUEUED])
        with self.store.reach():
            pipe = self.store.redis.pipeline(transaction=False)
            for name in names:
                pipe.zrem(name, job_id)
            pipe.execute()
