"""The Celery task of each runner a worker serves (``horus.<runner>``): a thin shell around
:func:`horus.execution.attempt.deliver` that tells Celery, and so Flower, how the delivery
ended, in words a person reads:

- completed: the task succeeds; Flower shows the status and the job's output;
- failed, timed out: the task fails with :class:`~horus.errors.JobFailed`, whose text is
  the job's status, exit code and last error line;
- to run again: the task is marked for retry (Horus, not Celery, sends the next attempt);
- cancelled (while it ran, or before it started): the task is revoked;
- dropped (a replay, an attempt that lost its job): nothing more is reported.

Celery keeps no result (``task_ignore_result``): the job record is the result.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from celery.exceptions import Ignore, Retry

from horus.errors import JobFailed
from horus.execution.attempt import Delivered, deliver
from horus.execution.context import WorkerContext
from horus.job import MAX_TIMEOUT, JobResult
from horus.routing import task_for

#: characters of a job's output Flower shows
SHOWN = 1000


class Shown:
    """A completed job as Flower shows it: its status line and the start of its output."""

    def __init__(self, result: JobResult) -> None:
        self.result = result

    def __repr__(self) -> str:
        head = f"{self.result.status.value} (exit {self.result.exit_code})"
        return f"{head}\n{self.result.output[:SHOWN]}".rstrip("\n")


def report(task: Task[Any, Any], delivered: Delivered) -> Shown:
    """Tell Celery how the delivery ended (see the module's docstring)."""
    result = delivered.result
    if delivered.report == "completed" and result is not None:
        return Shown(result)
    if delivered.report == "retried" and result is not None:
        raise Retry(delivered.reason, JobFailed(result.model_dump(mode="json")))
    if delivered.report == "cancelled":
        if not task.app.conf.worker_send_task_events:
            raise Ignore()
        task.send_event(
            "task-revoked",
            terminated=True,
            signum=None,
            expired=False,
            exception="cancelled by a signed request",
        )
        raise Ignore()
    if delivered.report == "failed" and result is not None:
        raise JobFailed(result.model_dump(mode="json"))
    raise Ignore()


#: seconds past the longest job timeout after which Celery kills a pool process whose job
#: did not end (its launcher failed to stop it): never an honest job's limit
BACKSTOP_MARGIN = 600


def register(app: Celery, ctx: WorkerContext) -> None:
    """Add the task of each runner ``ctx`` serves to ``app`` (before the worker starts)."""

    def execute(self: Task[Any, Any], *args: Any, **kwargs: Any) -> Shown:
        worker = str(self.request.hostname or "worker")
        return report(self, deliver(ctx, str(self.request.id), args, kwargs, worker))

    for runner_id in ctx.runners:
        app.task(
            name=task_for(runner_id),
            bind=True,
            shared=False,
            ignore_result=True,
            throws=(JobFailed, Retry),
            Request="horus.messaging.transport:Request",
            # a backstop only: the job's own (signed) timeout ends it well before
            time_limit=MAX_TIMEOUT + BACKSTOP_MARGIN,
        )(execute)
