"""Sending a job's message: the one place that knows the shape of a Horus task message.

The client publishes new jobs; the worker publishes a job again for a retry due at once,
the sweeper for a due retry, a recovered attempt or a vanished message, and a stopping
worker for the jobs it hands back. Every message carries the whole signed job as JSON text.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import kombu.exceptions
from celery import Celery
from kombu import Producer
from kombu.exceptions import OperationalError

from horus.config import redact
from horus.errors import BrokerUnavailable
from horus.job import Job
from horus.routing import queue_for, task_for

log = logging.getLogger(__name__)

#: what kombu raises when a publish batch's round trip fails (kombu 5.7, not in its stubs)
BATCH_FAILED: type[Exception] = kombu.exceptions.BatchPublishError  # type: ignore[attr-defined]


#: how long a publish (or a queue's declaration) tries to reach the broker: about 1.5 s
RETRY_POLICY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1}


def publish(
    app: Celery, job: Job, producer: Producer | None = None, declared: bool = False
) -> None:
    """Publish ``job`` to its runner's queue; :class:`BrokerUnavailable` if it cannot.
    ``producer`` (one of ``app.producer_or_acquire()``) lets many jobs share one connection;
    ``declared``: :func:`declare` made the queue known on it already."""
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
            declare=[] if declared else None,  # None: Celery declares the queue (if new)
            retry=True,
            retry_policy=RETRY_POLICY,
        )
    except OperationalError as exc:
        raise _unreachable(app, exc) from None


def declare(app: Celery, producer: Producer, jobs: Sequence[Job]) -> None:
    """Declare the queues of ``jobs`` on ``producer``'s connection, each once (kombu skips
    one it declared there before): what Celery would do for every message, at a tenth of
    a bulk submission's CPU. On RabbitMQ a queue must exist before its first message (the
    default exchange drops what no queue takes)."""
    for name in dict.fromkeys(queue_for(job.runner_id) for job in jobs):
        try:
            producer.maybe_declare(app.amqp.queues[name], retry=True, **RETRY_POLICY)
        except OperationalError as exc:
            raise _unreachable(app, exc) from None


def publish_many(app: Celery, jobs: Sequence[Job]) -> tuple[int, BrokerUnavailable | None]:
    """Publish ``jobs`` in order over one broker connection: how many were sent, and why
    the rest were not (None when all were). The jobs must be recorded already, as being
    sent (``Lifecycle.create_many(..., sending=True)``).

    On Redis the messages go in one pipelined round trip as the batch ends (kombu's publish
    batch), once the broker answered a PING: a broker that is away sends nothing and fails
    the batch for certain, as for one message. Should the round trip itself fail, some
    messages may have arrived and some not: all count as sent, since their jobs stay
    recorded and the sweeper publishes again any whose message does not arrive (a second
    copy of one that did is dropped as a replay). On RabbitMQ each message is published,
    and confirmed, in turn."""
    sent = 0
    try:
        with app.producer_or_acquire() as producer:
            declare(app, producer, jobs)
            # a batched message is sent only as the batch ends: until then none counts
            counted = not producer.supports_batch_publish
            with producer.batch(max_size=len(jobs) + 1):  # one flush, at the end
                for job in jobs:
                    publish(app, job, producer, declared=True)
                    sent += counted
            sent = len(jobs)
    except BrokerUnavailable as exc:
        return sent, exc
    except BATCH_FAILED as exc:
        log.warning(
            "could not confirm that %d messages reached the broker (%s); their jobs stay "
            "recorded, and the sweeper publishes again any message that did not arrive",
            len(jobs),
            exc.__cause__ or exc,
        )
        return len(jobs), None
    except OperationalError as exc:  # taking or giving back the connection
        return sent, _unreachable(app, exc)
    return sent, None


def _unreachable(app: Celery, exc: Exception) -> BrokerUnavailable:
    return BrokerUnavailable(redact(str(app.conf.broker_url)), str(exc))
