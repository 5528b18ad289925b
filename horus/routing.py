"""Where a job goes: pure names, no I/O. Each runner has its own queue and its own task
name, so Flower and its metrics tell the runners apart."""

from __future__ import annotations

QUEUE_PREFIX = "horus."


def queue_for(runner_id: str) -> str:
    """The queue a runner's workers consume: ``horus.<runner_id>``."""
    return f"{QUEUE_PREFIX}{runner_id}"


def task_for(runner_id: str) -> str:
    """The Celery task that runs a runner's jobs (what Flower shows): ``horus.<runner_id>``."""
    return f"{QUEUE_PREFIX}{runner_id}"
