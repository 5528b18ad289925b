"""The plain-Celery side of the benchmarks: Celery's own defaults on the same broker and
the same result store as Horus, with the delivery settings any careful deployment sets
(late acks, one message prefetched, JSON), and results stored in Celery's result backend.

The broker and the result backend come from ``RAW_BROKER_URL`` and ``RAW_RESULT_BACKEND``
(set by :mod:`benchmarks.suite`); unset, the system Redis on 127.0.0.1 is used.
"""

from __future__ import annotations

import os
import subprocess

from celery import Celery

BROKER = os.environ.get("RAW_BROKER_URL", "redis://127.0.0.1:6379/0")
app = Celery("raw", set_as_current=False)
app.conf.update(
    broker_url=BROKER,
    result_backend=os.environ.get("RAW_RESULT_BACKEND", BROKER),
    task_ignore_result=False,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)
if BROKER.startswith("amqp"):
    # the same durability as Horus on RabbitMQ: quorum queues, confirmed publishes
    app.conf.update(
        task_default_queue_type="quorum",
        task_create_missing_queue_type="quorum",
        worker_detect_quorum_queues=True,
        broker_transport_options={"confirm_publish": True},
    )


@app.task(name="raw.noop")
def noop() -> str:
    """The in-process no-op task a Horus python job `json:dumps` is set against."""
    return "null"


@app.task(name="raw.run_true")
def run_true() -> int:
    """Run the shell command `true` (as a Horus shell job does) and return its exit code."""
    return subprocess.run("true", shell=True, check=False).returncode
