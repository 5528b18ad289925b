"""Sending a job's message: the one place that knows the shape of a Horus task message.

The client publishes new jobs; the worker publishes a job again for a retry due at once,
the sweeper for a due retry, a recovered attempt or a vanished message, and a stopping
worker for the jobs it hands back. Every message carries the whole signed job as JSON text.
"""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery
from kombu import Producer
from kombu.exceptions import OperationalError

from horus.config import redact
from horus.errors import BrokerUnavailable
from horus.job import Job
from horus.routing import queue_for, task_for


def publish(app: Celery, job: Job, producer: Producer | None = None) -> None:
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
        raise _unreachable(app, exc) from None


def publish_many(app: Celery, jobs: Sequence[Job]) -> tuple[int, BrokerUnavailable | None]:
    """Publish ``jobs`` in order over one broker connection: how many were sent, and why
    the rest were not (None when all were)."""
    sent = 0
    try:
        with app.producer_or_acquire() as producer:
            for job in jobs:
                publish(app, job, producer)
                sent += 1
    except BrokerUnavailable as exc:
        return sent, exc
    except OperationalError as exc:  # taking or giving back the connection
        return sent, _unreachable(app, exc)
    return sent, None


def _unreachable(app: Celery, exc: OperationalError) -> BrokerUnavailable:
    return BrokerUnavailable(redact(str(app.conf.broker_url)), str(exc))
