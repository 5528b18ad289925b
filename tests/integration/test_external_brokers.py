"""The same job through an external Redis and through RabbitMQ instead of the embedded one.

These run whenever the service is reachable, and must run in CI (CI=true), where Redis
listens on 127.0.0.1:6379 and RabbitMQ on 127.0.0.1:5672.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from amqp.exceptions import PreconditionFailed
from kombu import Connection

from horus import config
from horus.client import Client
from horus.job import Job
from tests.harness import REPO, WorkerProcess, run_horus, settings_for

pytestmark = pytest.mark.integration

#: database 15 of the machine's Redis, emptied of Horus keys afterwards
EXTERNAL_REDIS = "redis://127.0.0.1:6379/15"
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


def reachable(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def need(port: int, what: str) -> None:
    if reachable(port):
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} must be reachable on 127.0.0.1:{port} in CI")
    pytest.skip(f"{what} is not running on 127.0.0.1:{port}")


def broker_env(broker: str) -> dict[str, str]:
    env = {**os.environ, "HORUS_BROKER_URL": broker}
    if broker.startswith("redis://"):
        env["HORUS_RESULT_BACKEND"] = broker
    else:  # RabbitMQ carries the messages; records and results stay in the embedded Redis
        env["HORUS_RESULT_BACKEND"] = f"redis+socket://{config.load().embedded_socket}"
    return env


def drop_rabbitmq_queue(name: str = "horus.shell") -> None:
    """Delete a queue an earlier run left (it may be a classic one)."""
    with Connection(RABBITMQ) as conn:
        channel: Any = conn.default_channel
        channel.queue_delete(name)


@pytest.fixture(params=[EXTERNAL_REDIS, RABBITMQ], ids=["redis", "rabbitmq"])
def external(request: pytest.FixtureRequest, embedded_redis: object) -> Iterator[dict[str, str]]:
    broker = str(request.param)
    need(6379 if broker.startswith("redis") else 5672, broker.split(":")[0])
    if broker == RABBITMQ:
        drop_rabbitmq_queue()
    env = broker_env(broker)
    worker = WorkerProcess(["shell"], 1, env)
    try:
        worker.start(timeout=60)
        yield env
    finally:
        worker.stop()
        if broker.startswith("redis"):
            server = redis.Redis.from_url(broker)
            keys = list(server.scan_iter("horus:*")) + list(server.scan_iter("celery-task-meta-*"))
            keys += [b"horus.shell", b"_kombu.binding.horus.shell"]
            server.delete(*keys)
        else:
            drop_rabbitmq_queue()


def test_a_job_runs_through_an_external_broker(external: dict[str, str]) -> None:
    done = run_horus("enqueue", "shell", "echo hello", "--wait", env=external)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello\n"
    failed = run_horus("enqueue", "shell", "echo oops >&2; exit 3", "--wait", env=external)
    assert failed.returncode == 1
    assert "oops" in failed.stderr


def test_rabbitmq_queues_are_quorum_queues_and_publishes_are_confirmed(
    embedded_redis: object,
) -> None:
    need(5672, "amqp")
    drop_rabbitmq_queue()
    env = broker_env(RABBITMQ)
    worker = WorkerProcess(["shell"], 1, env)
    try:
        worker.start(timeout=60)
        done = run_horus("enqueue", "shell", "echo quorum", "--wait", env=env)
        assert done.stdout == "quorum\n", done.stderr
        with Connection(RABBITMQ) as conn:
            # Declaring it as a classic queue fails: the worker declared a quorum queue.
            channel: Any = conn.default_channel
            with pytest.raises(PreconditionFailed, match="x-queue-type"):
                channel.queue_declare("horus.shell", durable=True, auto_delete=False)
    finally:
        worker.stop()
        drop_rabbitmq_queue()
    probe = "import celeryconfig as c; print(c.broker_transport_options['confirm_publish'])"
    shown = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=REPO, capture_output=True, text=True
    )
    assert shown.stdout == "True\n", shown.stderr


def test_a_batch_to_a_rabbitmq_queue_no_one_declared_yet_arrives_whole(
    embedded_redis: object,
) -> None:
    """``submit_many`` declares each queue of a batch once, not per message; on RabbitMQ the
    queue must exist before its first message (the default exchange drops what no queue
    takes), so a batch sent before any worker declared it must still arrive whole, in a
    quorum queue, and run."""
    need(5672, "amqp")
    drop_rabbitmq_queue()
    env = broker_env(RABBITMQ)
    client = Client(settings=settings_for(env))
    jobs = [Job.new("shell", f"echo {n}") for n in range(5)]
    done = client.submit_many(jobs)
    assert [s.error for s in done] == [None] * 5
    worker = WorkerProcess(["shell"], 1, env)
    try:
        with Connection(RABBITMQ) as conn:
            channel: Any = conn.default_channel
            assert channel.queue_declare("horus.shell", passive=True).message_count == 5
            with pytest.raises(PreconditionFailed, match="x-queue-type"):
                channel.queue_declare("horus.shell", durable=True, auto_delete=False)
        worker.start(timeout=60)
        assert [client.wait(job.id, 30).output for job in jobs] == [f"{n}\n" for n in range(5)]
    finally:
        worker.stop()
        drop_rabbitmq_queue()
