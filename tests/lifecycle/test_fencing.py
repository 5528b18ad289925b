"""The fence: every write an attempt makes after its start (end, renew, exit note,
hand-back) applies only while the record is running under that attempt's number. A stale
attempt (attempt N once N+1 started, or once the job ended or went back to pending) writes
nothing at all."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from horus.job import Job, JobStatus
from horus.store.lifecycle import Lifecycle
from horus.store.records import Store
from horus.store.retry import Verdict
from tests.lifecycle.jobs import (
    completed,
    created,
    end,
    handed_back,
    result_fields,
    started,
    state,
)

#: a stale attempt's write, and what the lifecycle answers when it is refused
Write = Callable[[Lifecycle, Job, int], object]


def _end(life: Lifecycle, job: Job, attempt: int) -> object:
    return end(life, job, attempt, Verdict(JobStatus.FAILED), result_fields(job, JobStatus.FAILED))


def _renew(life: Lifecycle, job: Job, attempt: int) -> object:
    return life.renew(job.id, attempt, time.time() + 900)


def _note_exit(life: Lifecycle, job: Job, attempt: int) -> object:
    return life.note_exit(job.id, attempt, 0)


def _hand_back(life: Lifecycle, job: Job, attempt: int) -> object:
    verdict = Verdict(JobStatus.PENDING, due=time.time(), tries=-1)
    return end(life, job, attempt, verdict)


def _reclaim(life: Lifecycle, job: Job, attempt: int) -> object:
    verdict = Verdict(JobStatus.PENDING, due=time.time(), tries=-1, lost=1)
    return end(life, job, attempt, verdict, reclaim_by=time.time() + 3600)


WRITES: dict[str, tuple[Write, object]] = {
    "end": (_end, "fenced"),
    "renew": (_renew, False),
    "note its exit": (_note_exit, False),
    "hand back": (_hand_back, "fenced"),
    "be reclaimed": (_reclaim, "fenced"),
}


def _after_the_next_started(life: Lifecycle, runner_id: str) -> Job:
    job = created(life, runner_id)
    started(life, job, "w-old")
    handed_back(life, job, 1)
    started(life, job, "w-new")
    return job


def _after_it_completed(life: Lifecycle, runner_id: str) -> Job:
    return completed(life, runner_id)


def _after_it_went_back_to_pending(life: Lifecycle, runner_id: str) -> Job:
    job = created(life, runner_id)
    started(life, job)
    assert end(life, job, 1, Verdict(JobStatus.PENDING, due=time.time() + 60)) == "ok"
    return job


def _after_it_was_cancelled(life: Lifecycle, runner_id: str) -> Job:
    job = created(life, runner_id)
    started(life, job)
    fields = result_fields(job, JobStatus.CANCELLED)
    assert end(life, job, 1, Verdict(JobStatus.CANCELLED), fields) == "ok"
    return job


STALE: dict[str, Callable[[Lifecycle, str], Job]] = {
    "after attempt 2 started": _after_the_next_started,
    "after the job completed": _after_it_completed,
    "after the job went back to pending": _after_it_went_back_to_pending,
    "after the job was cancelled": _after_it_was_cancelled,
}


@pytest.mark.parametrize("when", list(STALE))
@pytest.mark.parametrize("write", list(WRITES))
def test_a_stale_attempt_can_write_nothing(
    store: Store, life: Lifecycle, runner_id: str, write: str, when: str
) -> None:
    job = STALE[when](life, runner_id)
    before = state(store, job)
    do, refused = WRITES[write]
    assert do(life, job, 1) == refused
    assert state(store, job) == before


def test_the_running_attempt_itself_can_renew_and_note_its_exit(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    """The other side of the fence: the owner's writes do apply."""
    job = created(life, runner_id)
    started(life, job)
    until = time.time() + 900
    assert life.renew(job.id, 1, until) is True
    assert store.get(job.id).exited is None
    assert life.note_exit(job.id, 1, 3) is True
    after = state(store, job)
    assert after["lease"] == pytest.approx(until)
    assert float(after["record"]["lease"]) == pytest.approx(until)
    assert after["record"]["exited"] == "1:3"


def test_an_attempt_number_that_never_ran_owns_nothing(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = created(life, runner_id)
    started(life, job)
    before = state(store, job)
    for attempt in (0, 2):
        for write, (do, refused) in WRITES.items():
            assert do(life, job, attempt) == refused, write
    assert state(store, job) == before
