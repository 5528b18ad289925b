"""The one retry decision: how an attempt's end changes its job, whoever records it.

Three things can end an attempt:

- **its own ending** (the worker records it): a job that failed or timed out runs again
  while ``tries < max_attempts`` (seed 003: attempt 2 one ``retry_base`` after the failure,
  attempt 3 two, doubling, at most ``retry_cap``); completed, cancelled and a failure after
  an honoured cancel are final;
- **its worker's death** before the job exited (the sweeper reclaims it): that is not the
  job's own failure, so it runs again at once, not counted against ``max_attempts``, up to
  ``lost_limit`` times in all (a poison job that kills every worker still stops). A job whose
  process had exited 0 before its worker died completed;
- **a graceful hand-back** by a stopping worker: pending again, not counted.

:func:`decide` returns the :class:`Verdict`; the end script (``lua/end.lua``) applies it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from horus.job import JobStatus

Cause = Literal["ended", "lost", "handed back"]
#: attempts lost with their worker after which a job fails (``HORUS_LOST_LIMIT``)
LOST_LIMIT = 3


@dataclass(frozen=True)
class Verdict:
    """What becomes of a job whose attempt ended."""

    #: the job's status next: a terminal one, or ``pending`` to start again at ``due``
    to: JobStatus
    #: epoch seconds the next attempt may start (``pending`` only)
    due: float = 0.0
    #: added to the record's ``tries`` (-1: this attempt does not count)
    tries: int = 0
    #: added to the record's ``lost``
    lost: int = 0
    #: why, for the history and the error of a job that stops here
    reason: str = ""

    @property
    def again(self) -> bool:
        """True when the job runs again."""
        return self.to is JobStatus.PENDING


def delay(tries: int, base: float, cap: float) -> float:
    """Seconds from the end of try ``tries`` to the start of the next (seed 003): ``base``
    after the first, ``2 * base`` after the second, doubling, at most ``cap``."""
    return float(min(cap, base * 2 ** max(0, tries - 1)))


def decide(
    cause: Cause,
    status: JobStatus,
    *,
    tries: int,
    max_attempts: int,
    lost: int = 0,
    lost_limit: int = LOST_LIMIT,
    cancelled: bool = False,
    now: float,
    base: float,
    cap: float,
    due: float = 0.0,
) -> Verdict:
    """The verdict on an attempt that ended by ``cause`` in ``status`` (for ``lost``: the
    status its process reached, ``completed`` if it had exited 0, else ``running``), the
    job having used ``tries`` of ``max_attempts`` and been lost ``lost`` times before."""
    if cause == "handed back":
        return Verdict(JobStatus.PENDING, due=due, tries=-1, reason="its worker stopped")
    if cause == "lost":
        if status is JobStatus.COMPLETED:
            return Verdict(JobStatus.COMPLETED, reason="it had exited 0 before its worker died")
        if lost + 1 < lost_limit:
            return Verdict(
                JobStatus.PENDING, due=now, tries=-1, lost=1, reason="lost with its worker"
            )
        return Verdict(
            JobStatus.FAILED,
            lost=1,
            reason=f"lost with its worker {lost + 1} times (the limit is {lost_limit}); a job "
            "that kills its worker stops here",
        )
    if status in (JobStatus.FAILED, JobStatus.TIMEOUT) and not cancelled and tries < max_attempts:
        return Verdict(
            JobStatus.PENDING,
            due=now + delay(tries, base, cap),
            reason=f"{status.value}; attempt {tries + 1} of {max_attempts} follows",
        )
    return Verdict(status)
