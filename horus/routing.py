"""Where a job goes: pure names, no I/O."""

from __future__ import annotations

#: the one Celery task that executes every job
TASK_NAME = "horus.execute"
QUEUE_PREFIX = "horus."


def queue_for(runner_id: str) -> str:
    """The queue a runner's workers consume: ``horus.<runner_id>``."""
    return f"{QUEUE_PREFIX}{runner_id}"
