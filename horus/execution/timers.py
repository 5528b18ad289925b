"""Keeping the worker's event-loop timer to the timers still to fire.

For each job it starts, Celery's prefork pool sets a timer for the task's hard time limit
(Horus's backstop, a day and ten minutes) and cancels it when the job ends. kombu's timer
only marks a cancelled entry: it stays in the timer's heap until its time comes. A worker
that ran 50,000 jobs held 50,000 dead entries (about 500 bytes each, 25 MB), and one
running 50 jobs a second for a day would hold four million. So every
:data:`COMPACT_EVERY` seconds the worker's main process drops the cancelled entries, on the
event loop's own thread (the only one that touches the heap).
"""

from __future__ import annotations

import heapq
import logging
from typing import Any

log = logging.getLogger(__name__)

#: seconds between two passes over the worker's timer heap
COMPACT_EVERY = 30.0


def drop_cancelled(timer: Any) -> int:
    """Remove the cancelled entries of kombu ``timer``'s heap, in place; how many went.
    A timer of another shape is left alone (0)."""
    queue = getattr(timer, "_queue", None)
    if not isinstance(queue, list):
        return 0
    live = [item for item in queue if not getattr(item[2], "canceled", False)]
    dropped = len(queue) - len(live)
    if dropped:
        queue[:] = live  # the same list: the loop iterating the timer holds it
        heapq.heapify(queue)
    return dropped


def keep_compact(hub: Any) -> None:
    """Have the event loop ``hub`` (a kombu Hub) drop its cancelled timers periodically."""
    timer = getattr(hub, "timer", None)
    if timer is None or not isinstance(getattr(timer, "_queue", None), list):
        log.warning("this kombu's event loop has no timer heap to keep compact")
        return
    hub.call_repeatedly(COMPACT_EVERY, drop_cancelled, timer)
