"""The recovery sweep: nothing stays stuck and nothing is lost.

Every ``sweep_interval`` seconds it:

1. records how the jobs on this machine whose worker process died ended (a job that exited
   0 just before is completed, not run again), and ends what is left of their processes
   (before their job can run again elsewhere);
2. takes back running jobs whose lease expired (their worker died or lost the store), as the
   retry decision says (:mod:`horus.store.retry`): a job lost with its worker runs again,
   up to ``HORUS_LOST_LIMIT`` times, and one that had exited 0 completed;
3. publishes pending jobs whose retry is due;
4. publishes again pending jobs whose message was published ``republish_after`` seconds ago
   and never started (the message vanished with a broker, or was lost in flight). A second
   message is harmless: only one delivery can start an attempt. While no live worker serves
   a job's runner, its message waits in the queue and is not published again, so a backlog
   does not pile up copies of itself.

It runs inside ``horus up`` and as its own process (``horus sweeper``); several sweepers
may run at once, every step is atomic.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from celery import Celery

from horus.errors import JobNotFound
from horus.execution import orphans
from horus.job import JobResult, JobStatus
from horus.messaging.publish import publish
from horus.store import retry, workers
from horus.store.lifecycle import LOST, Lifecycle, entry
from horus.store.records import Record
from horus.trust import attest, keys

log = logging.getLogger(__name__)


@dataclass
class Sweep:
    """What one sweep did."""

    reaped: int = 0
    recovered: int = 0
    failed: int = 0
    retried: int = 0
    republished: int = 0


class Sweeper:
    """Runs sweeps on one job store and broker."""

    def __init__(self, lifecycle: Lifecycle, app: Celery, settled: bool = False) -> None:
        self.lifecycle = lifecycle
        self.store = lifecycle.store
        self.app = app
        self.settings = self.store.settings
        self.timing = self.settings.timing
        #: when this sweeper last found the store answering after not reaching it (or
        #: started): leases are not taken back for one lease period after that, so workers
        #: that lost the store too can renew or record their jobs first
        self.reachable_since = 0.0 if settled else time.time()
        #: the worker key, which signs the results the sweeper writes (if this machine has it)
        self.result_key = keys.load_optional(self.settings.worker_key_path)

    def sweep(self) -> Sweep:
        """One pass over expired leases, due retries and stale messages."""
        done = Sweep()
        # How the jobs of dead workers here ended is recorded before any lease is taken back.
        reaped = orphans.reap(self.settings.groups_dir, self.lifecycle)
        done.reaped = reaped.killed
        now = time.time()
        settled = now - self.reachable_since >= self.timing.lease and not reaped.waiting
        for job_id in self.store.expired_leases(now) if settled else []:
            verdict = self._reclaim(job_id)
            done.recovered += verdict is not None and verdict.to is not JobStatus.FAILED
            done.failed += verdict is not None and verdict.to is JobStatus.FAILED
        for job_id in self.store.due_retries(time.time()):
            done.retried += self._republish(job_id)
        stale = self.store.stale_queued(time.time() - self.timing.republish_after)
        served = workers.served(self.store) if stale else set()
        for job_id in stale:
            done.republished += self._republish(job_id, served)
        return done

    def _reclaim(self, job_id: str) -> retry.Verdict | None:
        """Take back a running job whose lease expired; the verdict applied, or None."""
        try:
            record = self.store.get(job_id)
        except JobNotFound:
            self.lifecycle.forget(job_id)  # the record expired: drop its bookkeeping
            return None
        if record.status is not JobStatus.RUNNING:
            self.lifecycle.forget(job_id, keep_queued=True)
            return None
        exited_0 = record.exited == f"{record.attempt}:0"
        now = time.time()
        verdict = retry.decide(
            "lost",
            JobStatus.COMPLETED if exited_0 else JobStatus.RUNNING,
            tries=record.tries,
            max_attempts=record.job.max_attempts,
            lost=record.lost,
            lost_limit=self.settings.lost_limit,
            now=now,
            base=self.timing.retry_base,
            cap=self.timing.retry_cap,
        )
        reason = (
            f"its worker {record.worker} died after the job exited 0"
            if exited_0
            else f"its worker {record.worker} stopped renewing the lease of attempt "
            f"{record.attempt} (it died or lost the broker)"
        )
        history = entry(
            record.attempt,
            LOST,
            record.worker,
            error=reason,
            started=record.started_at and record.started_at.isoformat(),
        )
        outcome = self.lifecycle.end(
            record.job,
            record.attempt,
            verdict,
            history,
            self._fields(record, verdict, reason),
            ending=JobStatus.COMPLETED.value if exited_0 else LOST,
            reclaim_by=now,
            exit_note=record.exited or "",
        )
        if outcome != "ok":
            return None
        log.warning("job %s: %s; %s", job_id, reason, verdict.to.value)
        return verdict

    def _fields(self, record: Record, verdict: retry.Verdict, reason: str) -> dict[str, str]:
        """The result of a reclaimed job that ends here."""
        if verdict.again:
            return {}
        now = datetime.now(UTC)
        completed = verdict.to is JobStatus.COMPLETED
        result = JobResult(
            job_id=record.job.id,
            status=verdict.to,
            error=f"[horus: {reason}; its output was lost with the worker]"
            if completed
            else f"{reason}; {verdict.reason}",
            exit_code=0 if completed else None,
            started_at=record.started_at,
            completed_at=now,
            worker=record.worker,
            attempt=record.attempt,
        )
        return attest.result_fields(result, now.isoformat(), self.result_key)

    def _republish(self, job_id: str, served: set[str] | None = None) -> bool:
        """Publish a pending job's message again; with ``served``, only if a live worker
        serves its runner (else it is looked at again ``republish_after`` from now)."""
        try:
            record = self.store.get(job_id)
        except JobNotFound:
            self.lifecycle.forget(job_id)
            return False
        if record.status is not JobStatus.PENDING:
            self.lifecycle.forget(job_id)
            return False
        if served is not None and record.job.runner_id not in served:
            self.lifecycle.postpone(job_id, time.time())  # nobody could take a copy now
            return False
        publish(self.app, record.job)
        self.lifecycle.published(job_id, time.time())
        return True

    def run(self, stop: threading.Event) -> None:
        """Sweep every ``sweep_interval`` seconds until ``stop`` is set."""
        while not stop.is_set():
            try:
                done = self.sweep()
                if done.recovered or done.failed or done.retried or done.republished:
                    log.info("sweep: %s", done)
            except Exception as exc:  # the broker is away or failing: try again next time
                log.warning("sweep failed: %s", exc)
                self.reachable_since = time.time() + self.timing.sweep_interval
            stop.wait(self.timing.sweep_interval)
