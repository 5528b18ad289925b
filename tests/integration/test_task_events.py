"""Celery's task events (what Flower shows) cost three fanout publishes per job: a worker
sends them only when ``HORUS_TASK_EVENTS`` says someone watches, and a client never does."""

from __future__ import annotations

import base64
import json
import time

import redis

from horus import config
from horus.client import Client
from horus.job import Job, JobStatus
from horus.services.embedded import EmbeddedRedis
from tests.harness import WorkerProcess, plugin_env


def task_events_of_one_job(client: Client, env: dict[str, str]) -> list[str]:
    """The Celery task event types that a worker started with ``env`` publishes while it
    runs one job submitted by ``client``. The job is for the test runner ``echo``, which no
    other worker of the session serves, and only events of this worker's node count."""
    bus = redis.Redis(unix_socket_path=str(config.load().embedded_socket))
    watch = bus.pubsub(ignore_subscribe_messages=True)
    watch.psubscribe("*celeryev*")
    seen: list[str] = []
    worker = WorkerProcess(["echo"], 1, {**plugin_env(), **env}).start()
    assert worker.proc is not None
    node = f"-{worker.proc.pid}@"
    try:
        job_id = client.submit(Job.new("echo", "hi"))
        assert client.wait(job_id, timeout=60).status is JobStatus.COMPLETED
        end = time.monotonic() + 1.5  # the worker flushes its events within a second
        while time.monotonic() < end:
            message = watch.get_message(timeout=0.1)
            if message is None:
                continue
            envelope = json.loads(message["data"])
            body = envelope["body"]
            if envelope.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            events = json.loads(body)  # a worker sends its task events in batches
            for event in events if isinstance(events, list) else [events]:
                if str(event.get("type", "")).startswith("task-") and node in str(
                    event.get("hostname", "")
                ):
                    seen.append(event["type"])
    finally:
        worker.stop()
        watch.close()
    return seen


def test_a_worker_sends_no_task_events_unless_asked(
    embedded_redis: EmbeddedRedis, client: Client
) -> None:
    assert task_events_of_one_job(client, {"HORUS_TASK_EVENTS": "0"}) == []
    # the control: a worker asked for them (as under `horus up`, for Flower) sends them
    seen = task_events_of_one_job(client, {"HORUS_TASK_EVENTS": "1"})
    assert {"task-received", "task-started", "task-succeeded"} <= set(seen)
