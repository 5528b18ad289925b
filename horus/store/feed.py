"""The job feed: one line per job start and end on the channel ``horus:events``, for
``horus up`` to print (a subscriber of the ``started`` and ``ended`` events)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from horus.events import Event, Subscriber
from horus.store import keys
from horus.store.records import Store


class JobFeed(Subscriber):
    """Publishes each job start and end."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _publish(self, event: Event, status: str) -> None:
        line = {
            "id": event.job_id,
            "runner": event.runner_id,
            "attempt": event.attempt,
            "status": status,
            "ending": event.get("ending"),
            "duration": event.get("duration"),
        }
        with self.store.reach():
            self.store.redis.publish(keys.EVENTS, json.dumps(line))

    def started(self, event: Event) -> None:
        """A job started."""
        self._publish(event, "running")

    def ended(self, event: Event) -> None:
        """A job ended."""
        self._publish(event, str(event.get("status", "")))


def follow(store: Store, stop: Any) -> Iterator[dict[str, Any]]:
    """The feed's lines as they come, until ``stop`` (an Event) is set."""
    pubsub = store.redis.pubsub(ignore_subscribe_messages=True)
    try:
        with store.reach():
            pubsub.subscribe(keys.EVENTS)
        while not stop.is_set():
            with store.reach():
                message = pubsub.get_message(timeout=0.5)
            if message and isinstance(message.get("data"), str):
                yield json.loads(message["data"])
    finally:
        pubsub.close()
