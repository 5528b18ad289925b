"""The recovery sweep: nothing stays stuck and nothing is lost.

Every ``sweep_interval`` seconds it:

1. records how the jobs on this machine whose worker process died ended (a job that exited
   0 just before is completed, not run again), and ends what is left of their processes
   (before their job can run again elsewhere);
2. takes back running jobs whose lease expired (their worker died or lost the store): back
   to pending for another attempt, or failed once ``max_attempts`` attempts were used;
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

from horus.attempts import Attempts, backoff, entry
from horus.errors import JobNotFound
from horus.groups import reap_orphans
from horus.job import JobResult, JobStatus
from horus.publish import publish
from horus.store import Store

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

    def __init__(self, store: Store, app: Celery, settled: bool = False) -> None:
        self.store = store
        self.app = app
        self.attempts = Attempts(store)
        self.timing = store.settings.timing
        #: when this sweeper last found the store answering after not reaching it (or
        #: started): leases are not taken back for one lease period after that, so workers
        #: that lost the store too can renew or record their jobs first
        self.reachable_since = 0.0 if settled else time.time()

    def sweep(self) -> Sweep:
        """One pass over expired leases, due retries and stale messages."""
        done = Sweep()
        # How the jobs of dead workers here ended is recorded before any lease is taken back.
        reaped = reap_orphans(self.store.settings.groups_dir, self.attempts.note_orphan_exit)
        done.reaped = reaped.killed
        now = time.time()
        settled = now - self.reachable_since >= self.timing.lease and not reaped.waiting
        for job_id in self.attempts.expired_leases(now) if settled else []:
            outcome = self._reclaim(job_id)
            done.recovered += outcome in ("retry", "completed")
            done.failed += outcome == "failed"
        for job_id in self.attempts.due_retries(time.time()):
            done.retried += self._republish(job_id)
        stale = self.attempts.stale_queued(time.time() - self.timing.republish_after)
        served = self._served() if stale else set()
        for job_id in stale:
            done.republished += self._republish(job_id, served)
        return done

    def _served(self) -> set[str]:
        """The runners that live workers serve."""
        workers = self.store.live_workers().values()
        return {str(runner) for info in workers for runner in info.get("runners", [])}

    def _reclaim(self, job_id: str) -> str:
        try:
            record = self.store.get(job_id)
        except JobNotFound:
            self.attempts.forget(job_id)  # the record expired: drop its bookkeeping
            return "gone"
        if record.status is not JobStatus.RUNNING:
            self.attempts.forget(job_id, keep_queued=True)
            return "gone"
        now = datetime.now(UTC)
        reason = (
            f"its worker {record.worker} stopped renewing the lease of attempt "
            f"{record.attempt} (it died or lost the broker)"
        )
        failed = JobResult(
            job_id=job_id,
            status=JobStatus.FAILED,
            error=f"{reason}; no attempts left of {record.job.max_attempts}",
            started_at=record.started_at,
            completed_at=now,
            worker=record.worker,
            attempt=record.attempt,
        )
        completed = ""
        if record.exited == f"{record.attempt}:0":  # it ran to its end; only the recording was lost
            reason = f"its worker {record.worker} died after the job exited 0"
            completed = JobResult(
                job_id=job_id,
                status=JobStatus.COMPLETED,
                error=f"[horus: {reason}; its output was lost with the worker]",
                exit_code=0,
                started_at=record.started_at,
                completed_at=now,
                worker=record.worker,
                attempt=record.attempt,
            ).model_dump_json()
        delay = backoff(record.tries, self.timing.retry_base, self.timing.retry_cap)
        outcome = self.attempts.reclaim(
            job_id,
            record.attempt,
            entry(
                record.attempt,
                "lost",
                record.worker,
                error=reason,
                started=record.started_at and record.started_at.isoformat(),
            ),
            failed.model_dump_json(),
            now.isoformat(),
            time.time() + delay,
            completed,
        )
        if outcome in ("retry", "failed", "completed"):
            log.warning("job %s: %s; %s", job_id, reason, outcome)
        return outcome

    def _republish(self, job_id: str, served: set[str] | None = None) -> bool:
        """Publish a pending job's message again; with ``served``, only if a live worker
        serves its runner (else it is looked at again ``republish_after`` from now)."""
        try:
            record = self.store.get(job_id)
        except JobNotFound:
            self.attempts.forget(job_id)
            return False
        if record.status is not JobStatus.PENDING:
            self.attempts.forget(job_id)
            return False
        if served is not None and record.job.runner_id not in served:
            self.attempts.postpone(job_id, time.time())  # nobody could take a copy now
            return False
        publish(self.app, record.job)
        self.attempts.published(job_id, time.time())
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
