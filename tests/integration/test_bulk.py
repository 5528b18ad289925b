"""Bulk submission: ``Client.submit_many`` and ``horus enqueue --from-file``, against the
embedded Redis and real worker processes. Each job keeps its own id, record and result; a
bad job is reported in its place and the others go on; nothing is half-written."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
import redis.connection
from celery import Celery

from horus import config
from horus.client import Client
from horus.errors import BrokerUnavailable, JobNotFound
from horus.job import Job, JobStatus
from horus.messaging.publish import publish, publish_many
from horus.routing import queue_for
from horus.services.embedded import EmbeddedRedis
from tests.harness import WorkerProcess, run_horus

pytestmark = pytest.mark.integration


def test_submit_many_runs_each_job_and_reports_each_bad_one_in_its_place(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    jobs: list[Job | dict[str, object]] = [
        {"runner_id": "shell", "payload": "echo one"},
        {"runner_id": "no-such-runner", "payload": "true"},
        {"runner_id": "shell", "payload": "echo two", "timeout": "soon"},
        Job.new("shell", "echo three"),
    ]
    done = client.submit_many(jobs)
    assert [s.id is not None for s in done] == [True, False, False, True]
    assert "no-such-runner" in (done[1].error or "")
    assert "timeout" in (done[2].error or "")
    assert all("\n" not in (s.error or "") for s in done)
    outputs = [client.wait(s.id, 30).output for s in done if s.id is not None]
    assert outputs == ["one\n", "three\n"]


def test_submit_many_in_several_batches_gives_every_job_its_own_id_and_result(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    seen: list[int] = []
    done = client.submit_many(
        ({"runner_id": "shell", "payload": f"echo {n}"} for n in range(7)),
        batch=3,
        progress=seen.append,
    )
    assert sum(seen) == 7
    ids = [s.id for s in done]
    assert None not in ids
    assert len(set(ids)) == 7
    assert [client.wait(i, 30).output for i in ids if i] == [f"{n}\n" for n in range(7)]


def test_a_taken_id_is_refused_in_its_place_and_the_rest_go_on(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    first = Job.new("shell", "echo first")
    client.submit(first)
    done = client.submit_many([first, Job.new("shell", "echo after")])
    assert done[0].id is None
    assert "taken" in (done[0].error or "")
    assert done[1].id is not None
    assert client.wait(done[1].id, 30).output == "after\n"
    assert client.wait(first.id, 30).output == "first\n"  # the first one is untouched


def test_jobs_the_broker_cannot_take_leave_no_record_behind(client: Client) -> None:
    unreachable = Celery("unreachable")
    unreachable.config_from_object("celeryconfig")
    unreachable.conf.update(broker_url="redis://127.0.0.1:1/0")  # nothing listens on port 1
    jobs = [Job.new("shell", "true") for _ in range(3)]
    done = Client(app=unreachable).submit_many(jobs)
    assert all(s.id is None and "cannot reach the broker" in (s.error or "") for s in done)
    for job in jobs:
        with pytest.raises(JobNotFound):
            client.get_job(job.id)


def test_enqueue_from_file_submits_every_good_line_and_names_each_bad_one(
    tmp_path: Path, client: Client, workers: dict[str, WorkerProcess]
) -> None:
    context = f"bulk-{uuid.uuid4().hex[:8]}"
    lines = [
        json.dumps({"runner_id": "shell", "payload": "echo a"}),
        "",
        "{not json",
        "[1, 2]",
        json.dumps({"runner_id": "shell", "payload": "exit 3", "max_attempts": 0}),
        json.dumps({"runner_id": "shell", "payload": "echo b", "context_id": "own"}),
    ]
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    done = run_horus("enqueue", "--from-file", str(path), "--context", context, "--timeout", "20")
    assert done.returncode == 1, done.stderr
    errors = done.stderr.strip().splitlines()
    assert [e.split(":")[0] for e in errors] == ["line 3", "line 4", "line 5"]
    assert "not JSON" in errors[0]
    assert "not a JSON object" in errors[1]
    assert "max_attempts" in errors[2]
    assert "Traceback" not in done.stderr
    ids = done.stdout.split()
    assert len(ids) == 2
    a, b = (client.wait(i, 30) for i in ids)
    assert (a.output, b.output) == ("a\n", "b\n")
    assert client.get_job(ids[0]).job.context_id == context  # the option fills a gap
    assert client.get_job(ids[0]).job.timeout == 20
    assert client.get_job(ids[1]).job.context_id == "own"  # the line's own field wins


def test_enqueue_from_stdin_prints_json_per_line(
    tmp_path: Path, client: Client, workers: dict[str, WorkerProcess]
) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_text(json.dumps({"runner_id": "shell", "payload": "echo s"}) + "\nnope\n")
    done = run_horus("enqueue", "--from-file", "-", "--json", stdin=path)
    assert done.returncode == 1
    shown = [json.loads(line) for line in done.stdout.splitlines()]
    assert shown[0]["line"] == 1
    assert client.wait(shown[0]["id"], 30).status is JobStatus.COMPLETED
    assert shown[1]["line"] == 2
    assert "not JSON" in shown[1]["error"]


@pytest.mark.parametrize(
    "args",
    [("shell", "true", "--from-file", "-"), ("--from-file", "-", "--wait"), ()],
    ids=["runner and file", "wait and file", "nothing"],
)
def test_enqueue_asks_for_either_a_job_or_a_file_in_one_line(args: tuple[str, ...]) -> None:
    done = run_horus("enqueue", *args)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "--from-file" in done.stderr


def test_enqueue_from_file_with_no_platform_names_each_line_and_exits_5(tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_text(json.dumps({"runner_id": "shell", "payload": "true"}) + "\n")
    nowhere = {**os.environ, "HORUS_HOME": str(tmp_path / "no-platform")}
    done = run_horus("enqueue", "--from-file", str(path), env=nowhere)
    assert done.returncode == 5
    assert done.stderr.startswith("line 1: not submitted: cannot reach the broker")
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_broker_gone_after_a_first_batch_takes_no_record_of_the_next(client: Client) -> None:
    """A batch is sent in one round trip once the broker answers: a broker that went away
    since the last batch (its connection and queue known) fails the next batch for certain,
    each job says so and none is recorded, as when one job is submitted."""
    home = Path(tempfile.mkdtemp(prefix="hbk-", dir="/tmp"))
    broker = EmbeddedRedis(home, home / "redis.sock")
    broker.start()
    try:
        app = Celery("elsewhere")
        app.config_from_object("celeryconfig")
        app.conf.update(broker_url=f"redis+socket://{broker.socket}")
        elsewhere = Client(app=app)  # records on the test's store, messages on this broker
        first = elsewhere.submit_many([Job.new("shell", "true") for _ in range(3)])
        assert [s.error for s in first] == [None] * 3
        for sent in first:  # they never run: nothing serves that broker
            client.cancel_job(str(sent.id))
        broker.stop()
        jobs = [Job.new("shell", "true") for _ in range(3)]
        done = elsewhere.submit_many(jobs)
        assert all(s.id is None and "cannot reach the broker" in (s.error or "") for s in done)
        for job in jobs:
            with pytest.raises(JobNotFound):
                client.get_job(job.id)
    finally:
        broker.stop()
        shutil.rmtree(home, ignore_errors=True)


def test_a_batch_of_messages_reaches_redis_in_one_round_trip(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On Redis, publish_many pipelines its messages: 49 jobs, a PING and one write of them
    all (not one per message), and every message on its queue in order."""
    runner = f"bulk{uuid.uuid4().hex[:8]}"  # a queue no worker consumes
    jobs = [client.prepare(Job.new(runner, f"echo {n}")) for n in range(50)]
    writes: list[int] = []
    send = redis.connection.AbstractConnection.send_packed_command

    def counted(self: redis.connection.AbstractConnection, *args: object, **kw: object) -> None:
        writes.append(1)
        send(self, *args, **kw)  # type: ignore[arg-type]

    assert publish_many(client.app, jobs[:1]) == (1, None)  # connected, the queue declared
    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
    assert publish_many(client.app, jobs[1:]) == (49, None)
    monkeypatch.undo()
    queue = queue_for(runner)
    try:
        assert len(writes) == 2, len(writes)
        items = client.store.redis.lrange(queue, 0, -1)
        bodies = [json.loads(item)["headers"]["id"] for item in reversed(items)]
        assert bodies == [job.id for job in jobs]
    finally:
        client.store.redis.delete(queue)


def test_jobs_recorded_before_their_one_redis_went_away_stay_submitted_for_the_sweeper(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Records and messages on one Redis that stops between the two: the records cannot be
    withdrawn, so they stay (made as sending) and each job is reported with its id, one at
    a time or in a batch; once Redis is back (its append-only file kept them) the sweeper
    finds their messages due, and sends them. Reporting them as not submitted would have
    the caller submit them again: a second copy of each job."""
    home = Path(tempfile.mkdtemp(prefix="hgo-", dir="/tmp"))
    broker = EmbeddedRedis(home, home / "redis.sock")
    broker.start()
    try:
        url = f"redis+socket://{broker.socket}"
        settings = dataclasses.replace(config.load(), broker_url=url, result_backend=url)
        alone = Client(settings=settings)
        alone.submit(Job.new("shell", "true"))  # connected, the queue declared

        def stopped_first(app: Celery, job: Job) -> None:
            broker.stop()
            publish(app, job)

        def all_stopped_first(
            app: Celery, jobs: Sequence[Job]
        ) -> tuple[int, BrokerUnavailable | None]:
            broker.stop()
            return publish_many(app, jobs)

        monkeypatch.setattr("horus.client.publish", stopped_first)
        one = alone.submit(Job.new("shell", "echo one"))
        broker.start()
        monkeypatch.setattr("horus.client.publish_many", all_stopped_first)
        many = alone.submit_many([Job.new("shell", f"echo {n}") for n in range(3)])
        broker.start()
        assert [s.error for s in many] == [None] * 3
        ids = [one, *(str(s.id) for s in many)]
        assert [alone.get_job(i).status for i in ids] == [JobStatus.PENDING] * 4
        assert set(ids) <= set(alone.store.stale_queued(time.time() + 1))
    finally:
        broker.stop()
        shutil.rmtree(home, ignore_errors=True)
