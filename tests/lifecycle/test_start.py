"""start.lua: an attempt starts only from pending, never early, never on an expired first
signature, and each start is a new attempt number (the fence) and one more try."""

from __future__ import annotations

import time

import pytest

from horus.job import JobStatus
from horus.store import keys
from horus.store.lifecycle import Lifecycle
from horus.store.records import Store
from horus.store.retry import Verdict
from tests.lifecycle.jobs import (
    WORKER,
    created,
    end,
    handed_back,
    in_status,
    make_job,
    start,
    started,
    state,
)

NOT_PENDING = [
    JobStatus.RUNNING,
    JobStatus.COMPLETED,
    JobStatus.FAILED,
    JobStatus.TIMEOUT,
    JobStatus.CANCELLED,
]


@pytest.mark.parametrize("status", NOT_PENDING, ids=[s.value for s in NOT_PENDING])
def test_a_job_that_is_not_pending_refuses_to_start_and_stays_as_it_was(
    store: Store, life: Lifecycle, runner_id: str, status: JobStatus
) -> None:
    job = in_status(life, runner_id, status)
    before = state(store, job)
    begun = start(life, job, "w-late")
    assert (begun.outcome, begun.status) == ("refused", status.value)
    assert state(store, job) == before


def test_a_job_with_no_record_does_not_start_and_says_it_is_missing(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = make_job(runner_id)
    assert start(life, job).outcome == "missing"
    assert not store.redis.exists(keys.job(job.id))
    assert store.redis.zscore(keys.LEASES, job.id) is None


def test_a_start_runs_the_job_under_a_lease_held_by_its_worker(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = created(life, runner_id)
    life.published(job.id, time.time())
    lease = time.time() + 60
    begun = started(life, job, lease_until=lease)
    assert (begun.outcome, begun.status, begun.attempt, begun.tries) == ("ok", "running", 1, 1)
    after = state(store, job)
    assert after["record"]["status"] == "running"
    assert after["record"]["worker"] == WORKER
    assert after["lease"] == pytest.approx(lease)
    assert after["held"] is True
    assert after["queued"] is None  # its message started: nothing to publish again
    assert after["expires"] is False  # a running job's record outlives the retention
    assert after["indexes"]["pending"] is None
    assert after["indexes"]["running"] is not None


def test_each_start_is_a_new_attempt_number_and_one_more_try(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = created(life, runner_id)
    first = started(life, job)
    assert (first.attempt, first.tries) == (1, 1)
    assert end(life, job, 1, Verdict(JobStatus.PENDING, due=time.time())) == "ok"
    second = started(life, job)
    assert (second.attempt, second.tries) == (2, 2)
    handed_back(life, job, 2)  # does not count: tries 1 again
    third = started(life, job)
    assert (third.attempt, third.tries) == (3, 2)
    record = store.get(job.id)
    assert (record.attempt, record.tries) == (3, 2)


def test_a_start_clears_the_exit_note_and_the_retry_time_of_the_attempt_before(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = created(life, runner_id)
    started(life, job)
    assert life.note_exit(job.id, 1, 1) is True
    assert end(life, job, 1, Verdict(JobStatus.PENDING, due=time.time())) == "ok"
    started(life, job)
    record = store.get(job.id)
    assert (record.exited, record.retry_at) == (None, None)


def test_a_retry_that_is_not_due_refuses_to_start_and_its_retry_is_kept(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = created(life, runner_id)
    started(life, job)
    due = time.time() + 60
    assert end(life, job, 1, Verdict(JobStatus.PENDING, due=due)) == "ok"
    # a sweeper whose clock runs ahead publishes it now and drops the retry it served
    life.published(job.id, due)
    assert store.redis.zscore(keys.RETRIES, job.id) is None
    before = state(store, job)
    begun = start(life, job)
    assert (begun.outcome, begun.status) == ("early", "pending")
    after = state(store, job)
    assert after["retry"] == pytest.approx(due)  # the retry stays, whatever happened to it
    assert {**after, "retry": None} == before


def test_a_retry_due_within_a_second_starts_a_clock_skew_is_no_reason_to_wait(
    life: Lifecycle, runner_id: str
) -> None:
    job = created(life, runner_id)
    started(life, job)
    assert end(life, job, 1, Verdict(JobStatus.PENDING, due=time.time() + 0.5)) == "ok"
    assert start(life, job).outcome == "ok"


def test_an_expired_signature_stops_a_first_attempt_and_changes_nothing(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = created(life, runner_id)
    before = state(store, job)
    assert start(life, job, expired=True).outcome == "expired"
    assert state(store, job) == before


def test_an_expired_signature_does_not_stop_a_retry_a_retry_is_not_a_replay(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = created(life, runner_id)
    started(life, job)
    assert end(life, job, 1, Verdict(JobStatus.PENDING, due=time.time())) == "ok"
    begun = start(life, job, expired=True)
    assert (begun.outcome, begun.attempt) == ("ok", 2)
