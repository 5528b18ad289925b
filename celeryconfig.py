"""Celery settings for Horus, read from the environment. Imports nothing from horus.

Environment:

- ``HORUS_HOME``: where the embedded Redis keeps its data and socket (default ``~/.horus``).
- ``HORUS_BROKER_URL``: ``redis://...`` or ``amqp://...``; unset means the embedded Redis,
  reached over the unix socket ``$HORUS_HOME/redis.sock``.
- ``HORUS_RESULT_BACKEND``: a ``redis://`` URL for results and job records; unset means the
  broker when the broker is Redis, else the embedded Redis.
- ``HORUS_RETENTION``: seconds that job records and results are kept (default 7 days).
- ``HORUS_VISIBILITY_TIMEOUT``: seconds before Redis hands an unacknowledged message to
  another worker (default 2 h). Horus never runs a job twice because of it: a second
  delivery of a running or finished job is dropped.
"""

from __future__ import annotations

import os
from pathlib import Path

HORUS_HOME = Path(os.environ.get("HORUS_HOME") or Path.home() / ".horus").expanduser()
EMBEDDED_SOCKET = HORUS_HOME / "redis.sock"
EMBEDDED_URL = f"redis+socket://{EMBEDDED_SOCKET}"
RETENTION_SECONDS = int(os.environ.get("HORUS_RETENTION") or 7 * 24 * 3600)


def _default_backend(broker: str) -> str:
    return (
        broker if broker.startswith(("redis://", "rediss://", "redis+socket://")) else EMBEDDED_URL
    )


broker_url = os.environ.get("HORUS_BROKER_URL") or EMBEDDED_URL
result_backend = os.environ.get("HORUS_RESULT_BACKEND") or _default_backend(broker_url)

# JSON only: a pickled message is refused by every worker.
task_serializer = "json"
result_serializer = "json"
event_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

# A started task stays on the broker until it finished; a dead worker's task comes back.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
# A running job keeps running through a broker outage: its worker records the end once the
# store is back (cancelling it would run it again from the start).
worker_cancel_long_running_tasks_on_connection_loss = False

# Flower sees every step.
worker_send_task_events = True
task_send_sent_event = True
result_expires = RETENTION_SECONDS

broker_connection_retry_on_startup = True
broker_connection_timeout = 4
broker_transport_options: dict[str, object] = {
    "visibility_timeout": int(os.environ.get("HORUS_VISIBILITY_TIMEOUT") or 2 * 3600)
}
if broker_url.startswith(("amqp://", "amqps://", "pyamqp://")):
    # RabbitMQ: replicated, durable quorum queues, and the broker confirms every publish
    # before the client's call returns.
    task_default_queue_type = "quorum"
    task_create_missing_queue_type = "quorum"
    worker_detect_quorum_queues = True
    broker_transport_options["confirm_publish"] = True
redis_socket_connect_timeout = 4
redis_socket_timeout = 30
worker_hijack_root_logger = True
worker_redirect_stdouts = False
