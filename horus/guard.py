"""What watches a running attempt: it renews the attempt's lease, and tells the runner to
stop when the job is cancelled by a valid request or the attempt lost the job (its lease
expired and the sweeper took it back, or its worker handed it back)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from horus.attempts import Attempts
from horus.errors import HorusError
from horus.job import Job

log = logging.getLogger(__name__)
#: the share of its lease an attempt may go without a renewal before it stops itself
LOSE_AFTER = 0.8


class Guard:
    """The ``cancelled`` callback of one attempt, with the thread that renews its lease."""

    def __init__(
        self,
        job: Job,
        attempt: int,
        attempts: Attempts,
        lease: float,
        honour_cancel: Callable[[str], bool],
    ) -> None:
        self.job = job
        self.attempt = attempt
        self.attempts = attempts
        self.lease = lease
        self.honour_cancel = honour_cancel
        #: set once another attempt owns the job, or nothing does
        self.lost = threading.Event()
        #: True once a valid cancel request stopped the job
        self.cancelled = False
        self._judged: dict[str, bool] = {}
        #: when the lease was last renewed (monotonic); past LOSE_AFTER of the lease without
        #: a renewal, the attempt stops on its own, before the sweeper may take the job back
        self.renewed = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, daemon=True, name="horus-lease")
        self._thread.start()

    def _renew(self) -> None:
        pause = self.lease / 3
        while not self._stop.wait(pause):
            try:
                if not self.attempts.renew(self.job.id, self.attempt, time.time() + self.lease):
                    log.warning("job %s: attempt %d lost its lease", self.job.id, self.attempt)
                    self.lost.set()
                    return
                self.renewed = time.monotonic()
                pause = self.lease / 3
            except Exception as exc:  # the store is away or failing: try again soon
                log.warning("job %s: could not renew the lease: %s", self.job.id, exc)
                pause = min(self.lease / 3, 0.5)

    def __call__(self) -> bool:
        """True when the runner must stop: cancelled, or the attempt no longer owns the job."""
        if self.lost.is_set():
            return True
        if time.monotonic() - self.renewed > self.lease * LOSE_AFTER:
            log.warning("job %s: no lease renewal for too long; stopping", self.job.id)
            self.lost.set()  # the sweeper may soon give the job to another worker
            return True
        try:
            status, attempt, cancel = self.attempts.fence(self.job.id)
        except HorusError:
            return False  # keep running while the lease lasts
        if status != "running" or attempt != self.attempt:
            self.lost.set()
            return True
        return self.cancel_requested(cancel)

    def cancel_requested(self, cancel: str | None) -> bool:
        """True when ``cancel``, the job's cancel request, is one to honour (each request is
        judged, and audited, once)."""
        if cancel is None:
            return False
        if cancel not in self._judged:
            self._judged[cancel] = self.honour_cancel(cancel)
        self.cancelled = self.cancelled or self._judged[cancel]
        return self._judged[cancel]

    def close(self) -> None:
        """Stop renewing the lease."""
        self._stop.set()
        self._thread.join(timeout=5)
