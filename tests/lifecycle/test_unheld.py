"""The writes on a job no attempt holds: create.lua (never over a taken id), discard.lua
(only a pending record no worker started), close.lua (ends only a pending job; a running
one only gets the cancel request attached)."""

from __future__ import annotations

import time
import uuid

import pytest

from horus.job import JobStatus
from horus.store import keys
from horus.store.lifecycle import Lifecycle
from horus.store.records import Store
from tests.lifecycle.jobs import (
    created,
    handed_back,
    in_status,
    make_job,
    result_fields,
    started,
    state,
)

REQUEST = '{"job_id": "a signed cancel request"}'
NOT_PENDING = [
    JobStatus.RUNNING,
    JobStatus.COMPLETED,
    JobStatus.FAILED,
    JobStatus.TIMEOUT,
    JobStatus.CANCELLED,
]
ENDED = [s for s in NOT_PENDING if s.terminal]


def test_a_created_job_is_pending_indexed_expiring_and_waits_for_its_message(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    ctx = f"ctx-{uuid.uuid4().hex}"
    job = make_job(runner_id, context_id=ctx)
    assert life.create(job, sending=True) is True
    after = state(store, job)
    assert after["record"]["status"] == "pending"
    assert after["record"]["attempt"] == "0"
    assert after["expires"] is True
    assert after["queued"] is not None  # republished should its message vanish
    for index in (keys.INDEX_ALL, keys.runner_index(runner_id), keys.context_index(ctx)):
        assert store.redis.zscore(index, job.id) is not None, index
    assert after["indexes"]["pending"] is not None


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.RUNNING, JobStatus.COMPLETED])
def test_create_refuses_an_id_that_is_taken_and_leaves_its_record_alone(
    store: Store, life: Lifecycle, runner_id: str, status: JobStatus
) -> None:
    job = in_status(life, runner_id, status)
    before = state(store, job)
    other = make_job(runner_id, id=job.id, payload="echo other")
    assert life.create(other, sending=True) is False
    assert state(store, job) == before


def test_discard_removes_a_pending_record_no_worker_started_and_its_index_entries(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    ctx = f"ctx-{uuid.uuid4().hex}"
    job = make_job(runner_id, context_id=ctx)
    assert life.create(job, sending=True) is True
    life.discard(job)
    assert not store.redis.exists(keys.job(job.id))
    indexes = (keys.INDEX_ALL, keys.status_index("pending"), keys.runner_index(runner_id))
    for index in (*indexes, keys.context_index(ctx), keys.QUEUED):
        assert store.redis.zscore(index, job.id) is None, index


@pytest.mark.parametrize("status", NOT_PENDING, ids=[s.value for s in NOT_PENDING])
def test_discard_leaves_a_job_that_is_not_pending_alone(
    store: Store, life: Lifecycle, runner_id: str, status: JobStatus
) -> None:
    job = in_status(life, runner_id, status)
    before = state(store, job)
    life.discard(job)
    assert state(store, job) == before


def test_discard_leaves_a_pending_job_alone_once_a_worker_started_it(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    """Handed back, it is pending again, at attempt 1: its message was sent long ago."""
    job = created(life, runner_id)
    started(life, job)
    handed_back(life, job, 1)
    before = state(store, job)
    life.discard(job)
    assert state(store, job) == before


def test_close_ends_a_pending_job_with_its_fields(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = created(life, runner_id)
    started(life, job)
    handed_back(life, job, 1, due=time.time() + 60)  # waiting for a retry, queued again
    life.published(job.id, time.time() - 1)
    fields = result_fields(job, JobStatus.CANCELLED)
    reply = life.close(job.id, runner_id, JobStatus.CANCELLED, fields, "cancelled", REQUEST)
    assert reply == ("ok", JobStatus.PENDING)
    after = state(store, job)
    assert after["record"]["status"] == "cancelled"
    assert after["record"]["result"] == fields["result"]
    assert after["indexes"]["pending"] is None
    assert after["indexes"]["cancelled"] is not None
    assert (after["retry"], after["queued"]) == (None, None)
    assert 0 < store.redis.ttl(keys.job(job.id)) <= store.settings.retention_seconds


@pytest.mark.parametrize("request_", ["", REQUEST], ids=["without a request", "with a request"])
@pytest.mark.parametrize("status", ENDED, ids=[s.value for s in ENDED])
def test_close_refuses_a_job_that_ended_and_attaches_no_request(
    store: Store, life: Lifecycle, runner_id: str, status: JobStatus, request_: str
) -> None:
    job = in_status(life, runner_id, status)
    before = state(store, job)
    fields = result_fields(job, JobStatus.CANCELLED)
    reply = life.close(job.id, runner_id, JobStatus.CANCELLED, fields, "cancelled", request_)
    assert reply == ("refused", status)
    assert state(store, job) == before


def test_close_without_a_request_refuses_a_running_job(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = in_status(life, runner_id, JobStatus.RUNNING)
    before = state(store, job)
    fields = result_fields(job, JobStatus.FAILED)
    assert life.close(job.id, runner_id, JobStatus.FAILED, fields, "refused") == (
        "refused",
        JobStatus.RUNNING,
    )
    assert state(store, job) == before


def test_close_with_a_request_only_attaches_it_to_a_running_job(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = in_status(life, runner_id, JobStatus.RUNNING)
    before = state(store, job)
    fields = result_fields(job, JobStatus.CANCELLED)
    reply = life.close(job.id, runner_id, JobStatus.CANCELLED, fields, "cancelled", REQUEST)
    assert reply == ("requested", JobStatus.RUNNING)
    after = state(store, job)
    assert after["record"].pop("cancel") == REQUEST
    assert after == before  # still running, under the same attempt and lease


def test_close_of_a_job_with_no_record_says_missing_and_makes_none(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = make_job(runner_id)
    reply = life.close(job.id, runner_id, JobStatus.CANCELLED, {}, "cancelled", REQUEST)
    assert reply == ("missing", None)
    assert not store.redis.exists(keys.job(job.id))


def test_a_published_message_drops_the_retry_it_served_and_keeps_a_newer_one(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = created(life, runner_id)
    started(life, job)
    due = time.time() + 60
    handed_back(life, job, 1, due=due)
    life.published(job.id, due - 30)  # a message of the retry before: this one still waits
    assert store.redis.zscore(keys.RETRIES, job.id) == pytest.approx(due)
    life.published(job.id, due)
    assert store.redis.zscore(keys.RETRIES, job.id) is None
    assert store.redis.zscore(keys.QUEUED, job.id) == pytest.approx(due)
