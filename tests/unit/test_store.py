"""The job store on a real (embedded) Redis: records, status changes, indexes, workers.

The rules of each lifecycle script are held in ``tests/lifecycle/``."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from horus import config
from horus.errors import JobNotFound
from horus.job import Job, JobResult, JobStatus, parse_job
from horus.services.embedded import EmbeddedRedis
from horus.store import keys, workers
from horus.store.lifecycle import Lifecycle, Started, entry
from horus.store.records import RECHECK, Store
from horus.store.retry import Verdict

ACTIVE = [JobStatus.PENDING, JobStatus.RUNNING]


@pytest.fixture
def store(embedded_redis: EmbeddedRedis) -> Store:
    return Store(config.load())


@pytest.fixture
def life(store: Store) -> Lifecycle:
    return Lifecycle(store)


def start(life: Lifecycle, job: Job, worker: str = "w1") -> Started:
    begun = life.start(job, worker, datetime.now(UTC).isoformat(), time.time() + 30, False)
    assert begun.outcome == "ok"
    return begun


def end(
    life: Lifecycle,
    job: Job,
    begun: Started,
    status: JobStatus,
    fields: dict[str, str] | None = None,
) -> str:
    note = entry(begun.attempt, status.value, "w1")
    return life.end(job, begun.attempt, Verdict(status), note, fields or {}, ending=status.value)


def close(life: Lifecycle, job: Job, status: JobStatus) -> str:
    return life.close(job.id, job.runner_id, status, {}, status.value)[0]


@pytest.fixture
def runner_id() -> str:
    """A runner id no other test uses: the Redis is shared with the whole session."""
    return f"t-{uuid.uuid4().hex[:12]}"


def make_job(runner_id: str, **fields: Any) -> Job:
    return parse_job({"runner_id": runner_id, "payload": "echo hi", **fields})


def ids(records: list[Any]) -> list[str]:
    return [r.job.id for r in records]


def test_a_created_job_is_recorded_as_pending(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = make_job(runner_id, context_id="ctx", caller_id="alice")
    assert life.create(job) is True
    record = store.get(job.id)
    assert record.job == job
    assert record.status is JobStatus.PENDING
    assert record.worker is None
    assert record.result is None
    assert record.attempt == 0
    assert record.cancel_requested is False
    assert store.status(job.id) is JobStatus.PENDING


def test_create_returns_false_for_a_taken_id(store: Store, life: Lifecycle, runner_id: str) -> None:
    job = make_job(runner_id)
    assert life.create(job) is True
    other = make_job(runner_id, id=job.id, payload="echo other")
    assert life.create(other) is False
    assert store.get(job.id).job.payload == "echo hi"
    assert ids(store.find(runner_id=runner_id)) == [job.id]


def test_an_unknown_job_is_not_found(store: Store) -> None:
    missing = uuid.uuid4().hex
    with pytest.raises(JobNotFound):
        store.get(missing)
    with pytest.raises(JobNotFound):
        store.status(missing)
    assert Lifecycle(store).close(missing, "shell", JobStatus.CANCELLED, {}, "cancelled")[0] == (
        "missing"
    )


def test_a_start_moves_a_pending_job_to_running_under_attempt_1(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = make_job(runner_id)
    life.create(job)
    begun = start(life, job, "w1")
    assert (begun.attempt, begun.tries) == (1, 1)
    record = store.get(job.id)
    assert record.status is JobStatus.RUNNING
    assert record.worker == "w1"
    assert record.attempt == 1


def test_a_job_closed_while_pending_never_starts_and_keeps_no_worker(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = make_job(runner_id)
    life.create(job)
    assert close(life, job, JobStatus.CANCELLED) == "ok"
    late = life.start(job, "late", datetime.now(UTC).isoformat(), time.time() + 30, False)
    assert (late.outcome, late.status) == ("refused", "cancelled")
    record = store.get(job.id)
    assert record.status is JobStatus.CANCELLED
    assert record.worker is None


def test_a_terminal_transition_moves_the_job_between_status_indexes(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = make_job(runner_id)
    life.create(job)
    assert ids(store.find(status=JobStatus.PENDING, runner_id=runner_id)) == [job.id]
    begun = start(life, job)
    assert store.find(status=JobStatus.PENDING, runner_id=runner_id) == []
    assert ids(store.find(status=JobStatus.RUNNING, runner_id=runner_id)) == [job.id]
    now = datetime.now(UTC)
    result = JobResult(job_id=job.id, status=JobStatus.COMPLETED, output="hi\n", exit_code=0)
    fields = {"completed_at": now.isoformat(), "result": result.model_dump_json()}
    assert end(life, job, begun, JobStatus.COMPLETED, fields) == "ok"
    assert store.find(status=JobStatus.RUNNING, runner_id=runner_id) == []
    (record,) = store.find(status=JobStatus.COMPLETED, runner_id=runner_id)
    assert record.job.id == job.id
    assert record.result == result
    assert record.completed_at == now


def test_find_filters_by_runner(store: Store, life: Lifecycle, runner_id: str) -> None:
    mine = make_job(runner_id)
    theirs = make_job(f"{runner_id}-other")
    life.create(mine)
    life.create(theirs)
    assert ids(store.find(runner_id=runner_id)) == [mine.id]


def test_find_filters_by_context(store: Store, life: Lifecycle, runner_id: str) -> None:
    ctx_a, ctx_b = f"ctx-{uuid.uuid4().hex}", f"ctx-{uuid.uuid4().hex}"
    a1 = make_job(runner_id, context_id=ctx_a)
    b1 = make_job(runner_id, context_id=ctx_b)
    none = make_job(runner_id)
    for job in (a1, b1, none):
        life.create(job)
    assert ids(store.find(context_id=ctx_a)) == [a1.id]
    assert ids(store.find(context_id=ctx_b, runner_id=runner_id)) == [b1.id]
    assert ids(store.find(context_id=ctx_a, runner_id=f"{runner_id}-x")) == []
    assert len(store.find(runner_id=runner_id)) == 3


def test_find_lists_newest_first_and_honours_the_limit(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    base = datetime.now(UTC) - timedelta(minutes=10)
    jobs = [make_job(runner_id, created_at=base + timedelta(seconds=i)) for i in range(5)]
    for job in (jobs[2], jobs[0], jobs[4], jobs[1], jobs[3]):  # order of creation is irrelevant
        life.create(job)
    newest_first = [j.id for j in reversed(jobs)]
    assert ids(store.find(runner_id=runner_id)) == newest_first
    assert ids(store.find(runner_id=runner_id, limit=2)) == newest_first[:2]
    assert ids(store.find(runner_id=runner_id, limit=1)) == newest_first[:1]


def test_find_with_a_status_filter_skips_jobs_in_other_states(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    jobs = [make_job(runner_id) for _ in range(4)]
    for job in jobs:
        life.create(job)
    for job in jobs[:2]:
        close(life, job, JobStatus.FAILED)
    assert set(ids(store.find(status=JobStatus.FAILED, runner_id=runner_id))) == {
        jobs[0].id,
        jobs[1].id,
    }
    assert set(ids(store.find(status=JobStatus.PENDING, runner_id=runner_id))) == {
        jobs[2].id,
        jobs[3].id,
    }


def test_find_skips_a_record_whose_hash_is_gone(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    base = datetime.now(UTC)
    jobs = [make_job(runner_id, created_at=base + timedelta(seconds=i)) for i in range(3)]
    for job in jobs:
        life.create(job)
    store.redis.delete(keys.job(jobs[1].id))  # as if the record expired
    assert ids(store.find(runner_id=runner_id)) == [jobs[2].id, jobs[0].id]
    assert ids(store.find(runner_id=runner_id, limit=2)) == [jobs[2].id, jobs[0].id]
    # the stale index entry was dropped on the way
    assert store.redis.zscore(keys.runner_index(runner_id), jobs[1].id) is None


def test_find_fills_the_limit_past_stale_entries(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    base = datetime.now(UTC)
    jobs = [make_job(runner_id, created_at=base + timedelta(seconds=i)) for i in range(6)]
    for job in jobs:
        life.create(job)
    for job in jobs[3:]:  # the three newest records are gone
        store.redis.delete(keys.job(job.id))
    assert ids(store.find(runner_id=runner_id, limit=2)) == [jobs[2].id, jobs[1].id]


def test_discard_removes_a_pending_record_and_its_index_entries(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    ctx = f"ctx-{uuid.uuid4().hex}"
    job = make_job(runner_id, context_id=ctx)
    life.create(job)
    life.discard(job)
    with pytest.raises(JobNotFound):
        store.get(job.id)
    indexes = (keys.INDEX_ALL, keys.status_index("pending"), keys.runner_index(runner_id))
    for index in (*indexes, keys.context_index(ctx)):
        assert store.redis.zscore(index, job.id) is None, index
    assert store.find(runner_id=runner_id) == []


def test_discard_leaves_a_running_job_alone(store: Store, life: Lifecycle, runner_id: str) -> None:
    job = make_job(runner_id)
    life.create(job)
    start(life, job)
    life.discard(job)
    assert store.status(job.id) is JobStatus.RUNNING
    assert ids(store.find(runner_id=runner_id)) == [job.id]


def test_discard_of_an_unknown_job_does_nothing(store: Store, life: Lifecycle) -> None:
    life.discard(make_job("nobody"))


def test_a_record_expires_within_the_retention_period(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    retention = store.settings.retention_seconds
    job = make_job(runner_id)
    life.create(job)
    assert 0 < store.redis.ttl(keys.job(job.id)) <= retention
    begun = start(life, job)
    assert store.redis.ttl(keys.job(job.id)) == -1  # a running job's record does not expire
    end(life, job, begun, JobStatus.TIMEOUT)
    assert 0 < store.redis.ttl(keys.job(job.id)) <= retention


def test_a_cancel_request_is_kept_on_a_running_jobs_record(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = make_job(runner_id)
    life.create(job)
    start(life, job)
    assert store.get(job.id).cancel_requested is False
    reply = life.close(job.id, runner_id, JobStatus.CANCELLED, {}, "cancelled", '{"job_id": "x"}')
    assert reply == ("requested", JobStatus.RUNNING)
    assert store.redis.hget(keys.job(job.id), "cancel") == '{"job_id": "x"}'
    assert store.get(job.id).cancel_requested is True
    assert store.status(job.id) is JobStatus.RUNNING


def test_a_cancel_request_for_no_record_creates_none(store: Store, life: Lifecycle) -> None:
    reply = life.close("no-such-job", "shell", JobStatus.CANCELLED, {}, "cancelled", "{}")
    assert reply[0] == "missing"
    assert not store.redis.exists(keys.job("no-such-job"))


def test_summary_is_json_safe_and_names_the_job(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = make_job(runner_id, context_id="ctx", tags=["a"])
    life.create(job)
    summary = store.get(job.id).summary()
    assert summary["id"] == job.id
    assert summary["runner_id"] == runner_id
    assert summary["status"] == "pending"
    assert summary["tags"] == ["a"]
    assert summary["started_at"] is None


def test_a_heartbeat_makes_a_worker_live_with_its_runners(store: Store) -> None:
    name = f"w-{uuid.uuid4().hex}"
    workers.heartbeat(store, name, ["shell", "python"], {"host": "h", "pid": 42})
    assert workers.live(store)[name] == {"runners": ["shell", "python"], "host": "h", "pid": 42}
    workers.heartbeat(store, name, ["shell"], {"host": "h", "pid": 42})
    assert workers.live(store)[name]["runners"] == ["shell"]


def test_a_forgotten_worker_is_no_longer_live(store: Store) -> None:
    name = f"w-{uuid.uuid4().hex}"
    workers.heartbeat(store, name, ["shell"], {})
    workers.forget(store, name)
    assert name not in workers.live(store)


def test_a_worker_whose_heartbeat_expired_is_not_live(store: Store) -> None:
    name = f"w-{uuid.uuid4().hex}"
    workers.heartbeat(store, name, ["shell"], {})
    store.redis.delete(keys.worker(name))  # as if its heartbeat key expired
    assert name not in workers.live(store)


def test_ping_answers_on_a_running_store(store: Store, life: Lifecycle) -> None:
    store.ping()


def finish(life: Lifecycle, job: Job, status: JobStatus = JobStatus.COMPLETED) -> None:
    begun = start(life, job)
    result = JobResult(job_id=job.id, status=status, output="done\n")
    end(life, job, begun, status, {"result": result.model_dump_json()})


def test_a_waiter_gets_the_result_of_a_job_that_already_ended(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = make_job(runner_id)
    life.create(job)
    finish(life, job, JobStatus.FAILED)
    assert store.wait_finished(job.id, timeout=5).status is JobStatus.FAILED


def test_a_waiter_is_woken_by_the_transition_not_by_its_recheck(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = make_job(runner_id)
    life.create(job)
    timer = threading.Timer(0.1, finish, args=(life, job))
    timer.start()
    began = time.monotonic()
    try:
        assert store.wait_finished(job.id, timeout=10).output == "done\n"
    finally:
        timer.join()
    assert time.monotonic() - began < RECHECK  # the publish woke it, not the backstop


def test_waiting_on_a_job_that_does_not_end_times_out(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = make_job(runner_id)
    life.create(job)
    with pytest.raises(TimeoutError, match=r"did not finish within 0\.3 s"):
        store.wait_finished(job.id, timeout=0.3)
