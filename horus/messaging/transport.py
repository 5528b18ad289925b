"""What keeps one hostile message from stopping a worker, and a batch of messages from
being sent in doubt.

- :class:`Transport`: kombu's Redis transport, except that an item on a queue that is not a
  kombu message (garbage bytes, ``42``, a body that is not base64...) is logged and dropped.
  kombu's own lets the decode error escape and the worker stops ("Unrecoverable error").
  BRPOP has already removed the item, so dropping it loses nothing else. Its publish
  batches (:class:`PublishBatch`) ask for a PONG before they send, so that a broker that
  is away fails a batch for certain, not with its delivery uncertain.
- :class:`Request`: Celery's task request, except that a message whose body or headers do
  not have the task protocol's shape is rejected as an invalid task. Celery's own raises
  ``ValueError`` out of the consumer, the worker stops, and the message, handed back,
  stops every worker that takes it next. Its headers that change how a task runs
  (``timelimit``, ``eta``, ``expires``) are not signed, so they are ignored.

:func:`install` makes ``redis://``, ``rediss://`` and ``redis+socket://`` URLs use the
transport; the ``horus.execute`` task uses the request class; the worker uses
:class:`Consumer`, which drops a message it cannot decode in one line.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery import signals
from celery.exceptions import InvalidTaskError
from celery.worker.consumer import Consumer as CeleryConsumer
from celery.worker.request import Request as CeleryRequest
from kombu.exceptions import OperationalError
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis

log = logging.getLogger(__name__)

#: what a malformed item makes kombu raise while decoding or wrapping it (a body nested
#: thousands of levels deep overflows the JSON decoder's recursion)
_MALFORMED = (ValueError, TypeError, KeyError, AttributeError, RecursionError)
#: kombu 5.7's Redis publish batch (not in kombu's stubs)
_KombuPublishBatch: Any = getattr(kombu_redis, "PublishBatch")  # noqa: B009


class Channel(kombu_redis.Channel):
    """A Redis channel that drops queue items it cannot read as messages, and whose publish
    batches fail for certain when the broker does not answer (:class:`PublishBatch`)."""

    def create_publish_batch(self, max_size: int) -> Any:
        """A :class:`PublishBatch` of this channel."""
        return PublishBatch(self, max_size)

    def _brpop_read(self, **options: Any) -> bool:
        try:
            return bool(super()._brpop_read(**options))  # type: ignore[misc]
        except _MALFORMED as exc:
            log.error("dropped an item that is not a message from a queue: %s", exc)
            return True


class PublishBatch(_KombuPublishBatch):  # type: ignore[misc]
    """kombu's Redis publish batch (one pipelined round trip for many messages), which
    first makes sure the broker answers. Should it not, nothing was sent and the batch
    fails for certain, with :class:`~kombu.exceptions.OperationalError`; only a failure
    after that leaves delivery uncertain (kombu's ``BatchPublishError``)."""

    def flush(self) -> None:
        """Ask the broker for a PONG, then send every buffered message."""
        try:
            self.channel.client.ping()
        except (redis.RedisError, OSError) as exc:
            raise OperationalError(f"the broker does not answer: {exc}") from exc
        super().flush()


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with :class:`Channel`."""

    Channel = Channel


class Request(CeleryRequest):
    """A task request that turns a malformed message into an invalid task, that tells Flower
    its queue, and that nothing outside the signed job steers: the message's ``timelimit``,
    ``eta`` and ``expires`` headers are ignored (the job's own timeout, retry time and
    expiry decide, and the task's backstop time limit stands)."""

    def __init__(self, message: Any, *args: Any, **kwargs: Any) -> None:
        try:
            super().__init__(message, *args, **kwargs)
        except _MALFORMED as exc:
            raise InvalidTaskError(f"malformed task message: {exc!r}"[:300]) from None
        self.time_limits = (None, None)
        self._eta = None
        self._expires = None

    def send_event(self, type: str, **fields: Any) -> None:
        """Send a task event; ``task-started`` also names the queue the job came from.
        Clients send no ``task-sent`` event (it would cost a fanout publish per job), and
        that event is where Flower otherwise learns a task's routing key."""
        if type == "task-started":
            info = self.delivery_info or {}
            fields.setdefault("routing_key", info.get("routing_key"))
            fields.setdefault("exchange", info.get("exchange"))
        super().send_event(type, **fields)


class Consumer(CeleryConsumer):
    """Celery's consumer, except that a message whose body cannot be decoded (however deep
    or large) is logged in one line, dropped, and announced like any rejected task message
    (the ``task_rejected`` signal, which the worker audits), not dumped whole at CRITICAL."""

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        """Drop the message and say so."""
        log.error("dropped a message whose body cannot be decoded: %s", repr(exc)[:200])
        message.ack()
        signals.task_rejected.send(sender=self, message=message, exc=exc)


def install() -> None:
    """Use :class:`Transport` for every Redis broker URL in this process."""
    for alias in ("redis", "rediss"):
        TRANSPORT_ALIASES[alias] = f"{__name__}:Transport"
