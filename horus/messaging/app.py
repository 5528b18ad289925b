"""The Celery app, built from :class:`~horus.config.Settings` when asked for: importing this
module builds nothing and reads no environment. No business logic lives here."""

from __future__ import annotations

from typing import Any

from celery import Celery

from horus.config import Settings
from horus.messaging import transport

RABBITMQ_SCHEMES = ("amqp://", "amqps://", "pyamqp://")


def celery_settings(settings: Settings) -> dict[str, Any]:
    """The Celery configuration of a Horus process with ``settings``."""
    conf: dict[str, Any] = {
        "broker_url": settings.broker_url,
        # Job records live in the store; Celery keeps no second copy of a result.
        "result_backend": None,
        "task_ignore_result": True,
        # JSON only: a pickled message is refused by every worker.
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        # A started task stays on the broker until it finished; a dead worker's task comes
        # back (the job record decides whether it may run again).
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # A running job keeps running through a broker outage: its worker records the end
        # once the store is back (cancelling it would run it again from the start).
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        # Nobody moves a worker through the broker: Celery's remote control (shutdown,
        # revoke, pool changes) is off, since any broker client could send it unsigned.
        "worker_enable_remote_control": False,
        "worker_consumer": "horus.messaging.transport:Consumer",
        # Flower sees each job from the moment a worker takes it, when workers send task
        # events (three fanout publishes per job: only when someone watches). Clients send
        # none: `horus list --status pending` shows the queue.
        "worker_send_task_events": settings.task_events,
        "task_send_sent_event": False,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 4,
        "broker_transport_options": {"visibility_timeout": settings.visibility_timeout},
        "redis_socket_connect_timeout": 4,
        "redis_socket_timeout": 30,
        "worker_hijack_root_logger": True,
        "worker_redirect_stdouts": False,
    }
    if settings.broker_url.startswith(RABBITMQ_SCHEMES):
        # RabbitMQ: replicated, durable quorum queues, and the broker confirms every publish
        # before the client's call returns.
        conf["task_default_queue_type"] = "quorum"
        conf["task_create_missing_queue_type"] = "quorum"
        conf["worker_detect_quorum_queues"] = True
        conf["broker_transport_options"]["confirm_publish"] = True
    return conf


def make_app(settings: Settings) -> Celery:
    """A Celery app on the broker of ``settings``; tasks are added by the worker's boot."""
    transport.install()  # a garbage item on a Redis queue must not stop a worker
    app = Celery("horus", set_as_current=False)
    app.conf.update(celery_settings(settings))
    return app
