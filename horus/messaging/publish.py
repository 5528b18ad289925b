"""Sending a job's message: the one place that knows the shape of a Horus task message.

The client publishes new jobs; the worker publishes a job again for a retry due at once,
the sweeper for a due retry, a recovered attempt or a vanished message, and a stopping
worker for the jobs it hands back. Every message carries the whole signed job as JSON text.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError

from horus.config import redact
from horus.errors import BrokerUnavailable
from horus.job import Job
from horus.routing import queue_for, task_for


def publish(app: Celery, job: Job, producer: Any = None) -> None:
    """Publish ``job`` to its runner's queue; :class:`BrokerUnavailable` if it cannot.
    ``producer`` (one of ``app.producer_or_acquire()``) lets many jobs share one connection."""
    summary = f"runner={job.runner_id} payload={job.payload[:80]!r}"
    try:
        app.send_task(
            task_for(job.runner_id),
            args=[job.model_dump_json()],
            task_id=job.id,
            queue=queue_for(job.runner_id),
            routing_key=queue_for(job.runner_id),
            argsrepr=summary,
            kwargsrepr="{}",
            producer=producer,
            retry=True,
            retry_policy={
                "max_retries": 2,
                "interval_start": 0.2,
                "interval_step": 0.5,
                "interval_max": 1,
            },
        )
    except OperationalError as exc:
        raise BrokerUnavailable(redact(str(app.conf.broker_url)), str(exc)) from None
