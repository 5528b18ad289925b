"""end.lua: the one end of an attempt applies the verdict it is given, whoever records it;
a reclaim applies only once the lease expired and while the exit note is the one the
verdict was made on; a hand-back and a lost attempt do not count as tries."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import redis

from horus.job import JobStatus
from horus.store import keys
from horus.store.lifecycle import Lifecycle
from horus.store.records import Store
from horus.store.retry import Verdict, decide
from tests.lifecycle.jobs import WORKER, created, end, field, result_fields, started, state

TERMINAL = [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.TIMEOUT, JobStatus.CANCELLED]


@pytest.fixture
def done_channel(store: Store) -> Iterator[redis.client.PubSub]:
    pubsub = store.redis.pubsub(ignore_subscribe_messages=True)
    yield pubsub
    pubsub.close()


def first_message(pubsub: redis.client.PubSub, within: float = 2.0) -> str | None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.1)
        if message is not None:
            return str(message["data"])
    return None


@pytest.mark.parametrize("status", TERMINAL, ids=[s.value for s in TERMINAL])
def test_a_terminal_verdict_ends_the_job_and_clears_all_its_bookkeeping(
    store: Store,
    life: Lifecycle,
    runner_id: str,
    done_channel: redis.client.PubSub,
    status: JobStatus,
) -> None:
    job = created(life, runner_id)
    started(life, job)
    # a second message published meanwhile, and a retry entry left behind
    life.published(job.id, time.time())
    store.redis.zadd(keys.RETRIES, {job.id: time.time() + 60})
    done_channel.subscribe(keys.done(job.id))
    fields = result_fields(job, status)
    assert end(life, job, 1, Verdict(status), fields) == "ok"
    after = state(store, job)
    record = after["record"]
    assert record["status"] == status.value
    assert (record["result"], record["completed_at"]) == (fields["result"], fields["completed_at"])
    assert [h["attempt"] for h in json.loads(record["history"])] == [1]
    assert after["indexes"]["running"] is None
    assert after["indexes"][status.value] == pytest.approx(float(record["created_at"]))
    assert 0 < store.redis.ttl(keys.job(job.id)) <= store.settings.retention_seconds
    assert (after["lease"], after["retry"], after["queued"], after["held"]) == (
        None,
        None,
        None,
        False,
    )
    assert first_message(done_channel) == status.value


def test_a_verdict_to_run_again_makes_the_job_pending_with_its_retry_due(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = created(life, runner_id)
    started(life, job)
    due = time.time() + 60
    assert end(life, job, 1, Verdict(JobStatus.PENDING, due=due)) == "ok"
    after = state(store, job)
    record = after["record"]
    assert record["status"] == "pending"
    assert float(record["retry_at"]) == pytest.approx(due)
    assert after["retry"] == pytest.approx(due)
    assert (record["attempt"], record["tries"]) == ("1", "1")  # a failure counts
    assert after["indexes"]["running"] is None
    assert after["indexes"]["pending"] is not None
    assert (after["lease"], after["held"]) == (None, False)
    assert after["expires"] is True
    assert "result" not in record


def test_an_attempt_handed_back_by_its_worker_does_not_count_as_a_try(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = created(life, runner_id)
    started(life, job)
    verdict = decide(
        "handed back", JobStatus.RUNNING, tries=1, max_attempts=3, now=0, base=1, cap=1
    )
    assert end(life, job, 1, verdict) == "ok"
    record = store.get(job.id)
    assert (record.status, record.attempt, record.tries, record.lost) == (
        JobStatus.PENDING,
        1,
        0,
        0,
    )


def test_an_attempt_lost_with_its_worker_counts_as_lost_not_as_a_try(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = created(life, runner_id)
    started(life, job, lease_until=time.time() - 1)
    now = time.time()
    verdict = decide("lost", JobStatus.RUNNING, tries=1, max_attempts=3, now=now, base=1, cap=1)
    assert end(life, job, 1, verdict, reclaim_by=now) == "ok"
    record = store.get(job.id)
    assert (record.status, record.tries, record.lost) == (JobStatus.PENDING, 0, 1)
    assert record.retry_at == pytest.approx(now)  # it runs again at once


def test_a_reclaim_is_refused_while_the_lease_is_alive_and_the_lease_stays_listed(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = created(life, runner_id)
    lease = time.time() + 60  # renewed since the sweeper read the expired lease
    started(life, job, lease_until=lease)
    store.redis.zadd(keys.LEASES, {job.id: time.time() - 5})  # what the sweeper had read
    before = state(store, job)
    verdict = Verdict(JobStatus.PENDING, due=time.time(), tries=-1, lost=1)
    assert end(life, job, 1, verdict, reclaim_by=time.time()) == "alive"
    after = state(store, job)
    assert after["lease"] == pytest.approx(lease)  # listed again under its true expiry
    assert {**after, "lease": before["lease"]} == before


def test_a_reclaim_is_refused_when_the_exit_was_noted_after_the_verdict_was_made(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = created(life, runner_id)
    started(life, job, lease_until=time.time() - 1)
    now = time.time()
    # the sweeper read the record (no exit yet) and decided: lost, run it again ...
    verdict = decide("lost", JobStatus.RUNNING, tries=1, max_attempts=3, now=now, base=1, cap=1)
    # ... while a reaper noted that the job had exited 0
    assert life.note_exit(job.id, 1, 0) is True
    before = state(store, job)
    assert end(life, job, 1, verdict, reclaim_by=now, exit_note="") == "changed"
    assert state(store, job) == before


def test_a_reclaim_on_the_exit_note_it_was_decided_on_applies(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = created(life, runner_id)
    started(life, job, lease_until=time.time() - 1)
    assert life.note_exit(job.id, 1, 0) is True
    now = time.time()
    verdict = decide("lost", JobStatus.COMPLETED, tries=1, max_attempts=3, now=now, base=1, cap=1)
    fields = result_fields(job, JobStatus.COMPLETED)
    assert end(life, job, 1, verdict, fields, reclaim_by=now, exit_note="1:0") == "ok"
    assert store.status(job.id) is JobStatus.COMPLETED
    assert field(store, job, "worker") == WORKER


def test_the_end_of_a_job_whose_record_is_gone_says_missing_and_drops_its_lease(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = created(life, runner_id)
    started(life, job)
    store.redis.delete(keys.job(job.id))  # as if the record had expired
    assert end(life, job, 1, Verdict(JobStatus.COMPLETED)) == "missing"
    assert not store.redis.exists(keys.job(job.id))
    assert store.redis.zscore(keys.LEASES, job.id) is None
