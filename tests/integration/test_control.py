"""Cancel, list, and messages that did not come through the client."""

from __future__ import annotations

import pickle
import re
import uuid
from pathlib import Path

import pytest
from celery import Celery
from kombu import Connection

from horus import config
from horus.client import Client
from horus.errors import BrokerUnavailable, InvalidJob, JobNotFound, JobStateError
from horus.job import Job, JobStatus
from horus.messaging.app import make_app
from horus.routing import queue_for, task_for
from tests.harness import WorkerProcess, pid_alive, sleep_tag, tagged, wait_until

app = make_app(config.load())
pytestmark = pytest.mark.integration


def test_cancelled_pending_job_never_starts(
    client: Client, workers: dict[str, WorkerProcess], tmp_path: Path
) -> None:
    canary = tmp_path / "ran"
    blocker = client.submit(Job.new("shell", "sleep 1"))
    assert wait_until(lambda: client.get_job_status(blocker) is JobStatus.RUNNING)
    job_id = client.submit(Job.new("shell", f"touch {canary}"))
    assert client.cancel_job(job_id) is JobStatus.CANCELLED
    client.wait(blocker, timeout=30)
    follower = client.run_job_and_await_result(Job.new("shell", "echo after"), timeout=30)
    assert follower.status is JobStatus.COMPLETED  # the cancelled message was consumed
    assert client.get_job_status(job_id) is JobStatus.CANCELLED
    assert not canary.exists()


def test_cancelling_a_running_job_kills_its_processes_and_records_cancelled(
    client: Client, workers: dict[str, WorkerProcess], tmp_path: Path
) -> None:
    tag = sleep_tag()
    job_id = client.submit(Job.new("shell", f"sleep {tag} & wait"))
    assert wait_until(lambda: tagged(tag), timeout=20)
    assert client.cancel_job(job_id) is JobStatus.RUNNING
    result = client.wait(job_id, timeout=5)
    assert result.status is JobStatus.CANCELLED
    assert wait_until(lambda: not tagged(tag), timeout=3)


def test_cancelling_a_finished_job_is_refused(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    result = client.run_job_and_await_result(Job.new("shell", "true"), timeout=30)
    with pytest.raises(JobStateError, match="already ended completed"):
        client.cancel_job(result.job_id)


def test_a_job_id_cannot_be_submitted_twice(client: Client) -> None:
    job = Job.new("shell", "true")
    client.create_job(job)
    with pytest.raises(InvalidJob, match="is taken"):
        client.create_job(job)


def test_list_finds_jobs_by_status_runner_and_context(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    context = f"ctx-{uuid.uuid4().hex[:8]}"
    ok = client.run_job_and_await_result(
        Job.model_validate({"runner_id": "shell", "payload": "true", "context_id": context}), 30
    )
    bad = client.run_job_and_await_result(
        Job.model_validate({"runner_id": "shell", "payload": "false", "context_id": context}), 30
    )
    py = client.run_job_and_await_result(
        Job.model_validate(
            {"runner_id": "python", "payload": "tests.fixtures:run", "context_id": context}
        ),
        30,
    )
    in_context = [r.job.id for r in client.list_jobs(context_id=context)]
    assert in_context == [py.job_id, bad.job_id, ok.job_id]  # newest first
    failed = client.list_jobs(status=JobStatus.FAILED, context_id=context)
    assert [r.job.id for r in failed] == [bad.job_id]
    shell_only = client.list_jobs(runner_id="shell", context_id=context)
    assert {r.job.id for r in shell_only} == {ok.job_id, bad.job_id}
    assert len(client.list_jobs(context_id=context, limit=2)) == 2


def test_a_task_sent_without_the_client_is_refused_and_never_runs(
    client: Client, workers: dict[str, WorkerProcess], tmp_path: Path
) -> None:
    canary = tmp_path / "ran"
    job = Job.new("shell", f"touch {canary}")
    app.send_task(
        task_for("shell"),
        args=[job.model_dump(mode="json")],
        task_id=job.id,
        queue=queue_for("shell"),
    )
    after = client.run_job_and_await_result(Job.new("shell", "echo still-serving"), 30)
    assert after.output == "still-serving\n"
    assert not canary.exists()


def test_pickled_and_garbage_messages_are_refused_and_the_worker_keeps_serving(
    client: Client, workers: dict[str, WorkerProcess], tmp_path: Path
) -> None:
    canary = tmp_path / "ran"
    job_id = client.create_job(Job.new("shell", f"touch {canary}"))
    job = client.get_job(job_id).job
    with Connection(app.conf.broker_url) as conn:
        producer = conn.Producer()
        queue = queue_for("shell")
        producer.publish(
            pickle.dumps(((job.model_dump(mode="json"),), {}, {})),
            routing_key=queue,
            content_type="application/x-python-serialize",
            content_encoding="binary",
            headers={"task": task_for("shell"), "id": job_id, "lang": "py"},
        )
        producer.publish(
            b"\xff\x00garbage",
            routing_key=queue,
            content_type="application/json",
            content_encoding="utf-8",
        )
    after = client.run_job_and_await_result(Job.new("shell", "echo still-serving"), 30)
    assert after.output == "still-serving\n"
    assert not canary.exists()
    assert client.get_job_status(job_id) is JobStatus.PENDING
    assert workers["shell"].proc is not None
    assert pid_alive(workers["shell"].proc.pid)


def test_a_job_the_broker_cannot_take_leaves_no_record_behind(client: Client) -> None:
    unreachable = Celery("unreachable")
    unreachable.config_from_object("celeryconfig")
    unreachable.conf.update(broker_url="redis://127.0.0.1:1/0")  # nothing listens on port 1
    sender = Client(app=unreachable)
    context = f"ctx-{uuid.uuid4().hex[:8]}"
    job = Job.model_validate({"runner_id": "shell", "payload": "true", "context_id": context})
    with pytest.raises(
        BrokerUnavailable, match=re.escape("cannot reach the broker at redis://127.0.0.1:1/0")
    ):
        sender.submit(job)
    with pytest.raises(JobNotFound):
        client.get_job(job.id)
    assert client.list_jobs(context_id=context) == []
    assert job.id not in [r.job.id for r in client.list_jobs(status=JobStatus.PENDING, limit=500)]
