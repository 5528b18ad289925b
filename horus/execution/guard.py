"""What watches a running attempt: one thread renews its lease and looks at its record, and
sets the attempt's ``stop`` flag (which the launcher polls) when the job is cancelled by a
valid request or the attempt lost the job (its lease expired and the sweeper took it back,
or its worker handed it back, or the store was away for too long to know)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from horus.job import Job
from horus.proc.launch import CANCEL_POLL
from horus.store.lifecycle import Lifecycle
from horus.store.records import Store

log = logging.getLogger(__name__)
#: the share of its lease an attempt may go without a renewal before it stops itself
LOSE_AFTER = 0.8


class Guard:
    """The lease and the stop flag of one attempt."""

    def __init__(
        self,
        job: Job,
        attempt: int,
        store: Store,
        lifecycle: Lifecycle,
        lease: float,
        judge: Callable[[str], bool],
    ) -> None:
        self.job = job
        self.attempt = attempt
        self.store = store
        self.lifecycle = lifecycle
        self.lease = lease
        self.judge = judge
        #: set when the runner must stop: cancelled, or the attempt lost the job
        self.stop = threading.Event()
        #: when the lease was last renewed (monotonic)
        self.renewed = time.monotonic()
        #: set once another attempt owns the job, or nothing does
        self.lost = threading.Event()
        #: True once a valid cancel request stopped the job
        self.cancelled = False
        self._judged: dict[str, bool] = {}
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Guard:
        """Start watching (the attempt's processes may start now)."""
        self._thread = threading.Thread(target=self._watch, daemon=True, name="horus-lease")
        self._thread.start()
        return self

    def _lose(self, why: str) -> None:
        log.warning("job %s: attempt %d %s; stopping", self.job.id, self.attempt, why)
        self.lost.set()
        self.stop.set()

    def is_set(self) -> bool:
        """True when the runner must stop (the launcher polls this): cancelled, lost, or no
        renewal for :data:`LOSE_AFTER` of the lease, even while a store call hangs."""
        if not self.stop.is_set() and time.monotonic() - self.renewed > self.lease * LOSE_AFTER:
            self._lose("had no lease renewal for too long")  # the sweeper may take it back soon
        return self.stop.is_set()

    def _watch(self) -> None:
        next_renewal = self.renewed + self.lease / 3
        while not self._closed.wait(CANCEL_POLL):
            now = time.monotonic()
            try:
                if now >= next_renewal:
                    if not self.lifecycle.renew(
                        self.job.id, self.attempt, time.time() + self.lease
                    ):
                        return self._lose("lost its lease")
                    self.renewed, next_renewal = now, now + self.lease / 3
                status, attempt, cancel = self.store.fence(self.job.id)
            except Exception as exc:  # the store is away or failing: try again soon
                log.warning("job %s: could not renew the lease: %s", self.job.id, exc)
                if self.is_set():
                    return None
                continue
            if status != "running" or attempt != self.attempt:
                return self._lose("no longer owns the job")
            if self.cancel_requested(cancel):
                self.stop.set()
                return None

    def cancel_requested(self, cancel: str | None) -> bool:
        """True when ``cancel``, the job's cancel request, is one to honour (each request is
        judged, and audited, once)."""
        if cancel is None:
            return False
        if cancel not in self._judged:
            self._judged[cancel] = self.judge(cancel)
        self.cancelled = self.cancelled or self._judged[cancel]
        return self._judged[cancel]

    def close(self) -> None:
        """Stop watching."""
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
