"""Only signed requests move a job or a worker: nothing sent through the broker without the
job's signature stops a worker, kills or revokes a job, changes how a job runs, crashes a
worker or changes a job's record."""

from __future__ import annotations

import json
import time
import uuid

from horus.client import Client
from horus.job import Job, JobStatus, parse_job
from horus.routing import queue_for
from horus.store.audit import Audit
from horus.trust import keys, signing
from tests.harness import WorkerProcess, pid_alive, wait_until
from tests.integration.test_hostile_input import assert_serves, envelope
from tests.security.conftest import SETTINGS


def test_remote_control_cannot_stop_a_worker(client: Client, own_worker: WorkerProcess) -> None:
    client.app.control.broadcast("shutdown")
    client.app.control.pool_shrink(1)
    time.sleep(3)
    assert own_worker.proc is not None
    assert pid_alive(own_worker.proc.pid)
    assert_serves(client, own_worker)


def test_remote_control_cannot_kill_or_revoke_a_job(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    running = client.submit(Job.new("shell", "sleep 2; echo survived"))
    queued = client.submit(Job.new("shell", "echo queued"))  # behind it (concurrency 1)
    assert wait_until(lambda: client.get_job_status(running) is JobStatus.RUNNING, 20)
    client.app.control.revoke(running, terminate=True, signal="SIGKILL")
    client.app.control.revoke(queued)
    assert client.wait(running, timeout=30).output == "survived\n"
    assert client.wait(queued, timeout=30).output == "queued\n"


def signed(payload: str) -> Job:
    job = parse_job({"runner_id": "echo", "payload": payload})
    return signing.sign(job, keys.load(SETTINGS.key_path))


def test_unsigned_headers_do_not_change_how_a_job_runs(
    client: Client, own_worker: WorkerProcess
) -> None:
    """``timelimit`` of 1 s, an ``eta`` an hour away, ``expires`` in the past: the signed job
    runs now, to its end."""
    job = signed("sredaeh")
    assert client.lifecycle.create(job)
    body = json.dumps([[job.model_dump_json()], {}, {}]).encode()
    message = json.loads(envelope(body, job.id, queue_for("echo")))
    message["headers"].update(
        {
            "timelimit": [1, 1],
            "eta": "2099-01-01T00:00:00+00:00",
            "expires": "2000-01-01T00:00:00+00:00",
            "retries": 99,
        }
    )
    client.store.redis.lpush(queue_for("echo"), json.dumps(message))
    result = client.wait(job.id, timeout=30)
    assert (result.status, result.output) == (JobStatus.COMPLETED, "headers")
    assert result.attempt == 1


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_a_message_nested_50000_deep_is_dropped_and_the_worker_keeps_serving(
    client: Client, own_worker: WorkerProcess
) -> None:
    queue = queue_for("echo")
    ids = []
    for _ in range(7):
        task_id = uuid.uuid4().hex
        ids.append(task_id)
        client.store.redis.lpush(queue, envelope(deep(50_000).encode(), task_id, queue))
        message = json.loads(envelope(b"[]", task_id, queue))
        client.store.redis.lpush(queue, json.dumps(message)[:-1] + ', "x": ' + deep(50_000) + "}")
    assert_serves(client, own_worker)
    log = own_worker.log.read_text()
    assert "Restarting" not in log
    assert "CRITICAL" not in log
    audit = Audit(client.store)
    for task_id in ids:  # each drop has its audit entry
        assert wait_until(lambda t=task_id: audit.entries(t), timeout=5)
        assert "cannot read" in audit.entries(task_id)[0].reason


def test_a_message_without_the_signed_job_never_changes_its_record(
    client: Client, own_worker: WorkerProcess
) -> None:
    job = signed("tsil")
    assert client.lifecycle.create(job)
    queue = queue_for("echo")
    for args in (["not a job"], [], [json.dumps({"id": job.id})], [job.model_dump_json(), 1]):
        body = json.dumps([args, {}, {}]).encode()
        client.store.redis.lpush(queue, envelope(body, job.id, queue))
    assert_serves(client, own_worker)
    assert client.get_job_status(job.id) is JobStatus.PENDING
    # the signed job's own message still runs it
    body = json.dumps([[job.model_dump_json()], {}, {}]).encode()
    client.store.redis.lpush(queue, envelope(body, job.id, queue))
    assert client.wait(job.id, timeout=30).output == "list"
