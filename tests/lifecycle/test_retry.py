"""retry.decide, the one retry decision: the seed 003 schedule, what is final, what a lost
attempt and a hand-back do to the counters."""

from __future__ import annotations

from typing import Any

import pytest

from horus.job import JobStatus
from horus.store.retry import LOST_LIMIT, Cause, Verdict, decide, delay

NOW, BASE, CAP = 1_000_000.0, 60.0, 3600.0


def verdict(cause: Cause, status: JobStatus, **how: Any) -> Verdict:
    how = {"tries": 1, "max_attempts": 3, "now": NOW, "base": BASE, "cap": CAP, **how}
    return decide(cause, status, **how)


@pytest.mark.parametrize(
    ("tries", "wait"),
    [(1, BASE), (2, 2 * BASE), (3, 4 * BASE), (4, 8 * BASE), (6, 32 * BASE), (7, CAP), (30, CAP)],
)
def test_the_next_attempt_follows_after_base_then_twice_as_long_each_time_up_to_the_cap(
    tries: int, wait: float
) -> None:
    """Seed 003: attempt 2 one ``retry_base`` after the failure, attempt 3 two, doubling."""
    assert delay(tries, BASE, CAP) == wait
    failed = verdict("ended", JobStatus.FAILED, tries=tries, max_attempts=100)
    assert failed == Verdict(
        JobStatus.PENDING, due=NOW + wait, reason=f"failed; attempt {tries + 1} of 100 follows"
    )


@pytest.mark.parametrize("status", [JobStatus.FAILED, JobStatus.TIMEOUT])
def test_a_failure_runs_again_while_tries_are_left_and_not_after_the_last(
    status: JobStatus,
) -> None:
    assert verdict("ended", status, tries=2, max_attempts=3).to is JobStatus.PENDING
    assert verdict("ended", status, tries=3, max_attempts=3) == Verdict(status)
    assert verdict("ended", status, tries=1, max_attempts=1) == Verdict(status)


def test_a_failure_after_an_honoured_cancel_is_final() -> None:
    for status in (JobStatus.FAILED, JobStatus.TIMEOUT):
        assert verdict("ended", status, tries=1, max_attempts=5, cancelled=True) == Verdict(status)


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.CANCELLED])
def test_a_completed_or_cancelled_attempt_is_final_whatever_tries_are_left(
    status: JobStatus,
) -> None:
    assert verdict("ended", status, tries=1, max_attempts=5) == Verdict(status)


def test_a_lost_attempt_runs_again_at_once_uncounted_until_the_lost_limit() -> None:
    again = Verdict(JobStatus.PENDING, due=NOW, tries=-1, lost=1, reason="lost with its worker")
    for lost in range(LOST_LIMIT - 1):
        assert verdict("lost", JobStatus.RUNNING, lost=lost, tries=3, max_attempts=3) == again
    last = verdict("lost", JobStatus.RUNNING, lost=LOST_LIMIT - 1)
    assert (last.to, last.tries, last.lost) == (JobStatus.FAILED, 0, 1)
    assert f"{LOST_LIMIT} times" in last.reason


def test_the_lost_limit_is_the_one_given() -> None:
    assert verdict("lost", JobStatus.RUNNING, lost=3, lost_limit=5).to is JobStatus.PENDING
    assert verdict("lost", JobStatus.RUNNING, lost=4, lost_limit=5).to is JobStatus.FAILED
    assert verdict("lost", JobStatus.RUNNING, lost=0, lost_limit=1).to is JobStatus.FAILED


def test_a_job_that_exited_0_before_its_worker_was_lost_completed_even_at_the_limit() -> None:
    for lost in (0, LOST_LIMIT - 1, LOST_LIMIT + 5):
        done = verdict("lost", JobStatus.COMPLETED, lost=lost)
        assert (done.to, done.tries, done.lost) == (JobStatus.COMPLETED, 0, 0)


def test_a_hand_back_runs_again_when_due_and_does_not_count() -> None:
    back = verdict("handed back", JobStatus.RUNNING, tries=3, max_attempts=3, due=NOW + 5)
    assert (back.to, back.due, back.tries, back.lost) == (JobStatus.PENDING, NOW + 5, -1, 0)
    assert back.again
