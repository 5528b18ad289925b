"""Starting a worker: its services (:class:`~horus.execution.context.WorkerContext`), the
tasks of the runners it serves, its heartbeat in the job store, the reaper of its dead
processes' jobs, and the hand-back of running jobs when it stops.

When a pool process dies, the reaper records how its job ended (the worker's main process
adopts the job's process) and ends what is left of it within a fraction of a second, before
the sweeper can run the job again. On SIGTERM the worker lets running jobs finish for
``HORUS_SHUTDOWN_GRACE`` seconds, then hands back what is left: each job goes back to
pending (the attempt does not count) and is published again for another worker.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from celery.signals import (
    task_rejected,
    task_unknown,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)

from horus import config
from horus.errors import ConfigError, one_line
from horus.execution import orphans, task, timers, warm
from horus.execution.context import WorkerContext
from horus.job import JobStatus
from horus.messaging.app import make_app
from horus.messaging.publish import publish
from horus.proc.groups import KILL_GRACE, become_subreaper, reap_adopted
from horus.proc.launch import CANCEL_POLL
from horus.routing import queue_for
from horus.store import retry, workers
from horus.store.lifecycle import entry
from horus.store.records import Record
from horus.trust.policy import PolicyFile

log = logging.getLogger(__name__)
#: seconds between two looks for job processes whose pool process died: well within the
#: share of a lease left after its last renewal, so that the exit of a job that ended as its
#: pool process died is recorded before the sweeper may take the job back
REAP_INTERVAL = 0.2


def hand_back(ctx: WorkerContext, name: str, grace: float) -> int:
    """Wait up to ``grace`` seconds for worker ``name``'s jobs to finish, then hand back
    those still running: pending again, published again. Returns how many."""
    end = time.monotonic() + grace
    while ctx.store.held(name) and time.monotonic() < end:
        time.sleep(0.2)
    handed: list[Record] = []
    # Another worker may start it once this one's attempt has surely stopped: it sees the
    # hand-back within CANCEL_POLL and kills its processes within KILL_GRACE.
    due = time.time() + CANCEL_POLL + KILL_GRACE + 1.0
    for job_id in ctx.store.held(name):
        record = ctx.store.get(job_id)
        if record.status is not JobStatus.RUNNING or record.worker != name:
            continue
        started = record.started_at and record.started_at.isoformat()
        note = entry(
            record.attempt, "handed back", name, error="its worker stopped", started=started
        )
        verdict = retry.decide(
            "handed back",
            JobStatus.RUNNING,
            tries=record.tries,
            max_attempts=record.job.max_attempts,
            now=time.time(),
            base=0,
            cap=0,
            due=due,
        )
        if (
            ctx.lifecycle.end(record.job, record.attempt, verdict, note, {}, ending="handed back")
            == "ok"
        ):
            handed.append(record)
            log.warning("handed back job %s: the worker is stopping", job_id)
    if handed:
        time.sleep(max(0.0, due - time.time()))
    for record in handed:  # else the sweeper publishes it when due
        publish(ctx.app, record.job)
        ctx.lifecycle.published(record.job.id, time.time())
    return len(handed)


class Worker:
    """The worker process's own threads: heartbeat, reaper, hand-back."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.stop = threading.Event()

    def _every(self, seconds: float, steps: list[Callable[[], object]], what: str) -> None:
        while not self.stop.wait(seconds):
            for step in steps:
                try:
                    step()
                except Exception as exc:  # one step failing never stops the others
                    log.warning("%s failed: %s", what, exc)

    def ready(self, name: str) -> None:
        """The worker is up: start beating and reaping."""
        info = {"host": socket.gethostname(), "pid": os.getpid()}
        served = sorted(self.ctx.runners)
        beat: list[Callable[[], object]] = [
            lambda: workers.heartbeat(self.ctx.store, name, served, info)
        ]
        beat[0]()
        threading.Thread(
            target=self._every, args=(workers.WORKER_TTL / 3, beat, "heartbeat"), daemon=True
        ).start()
        groups = self.ctx.settings.groups_dir
        reap: list[Callable[[], object]] = [
            lambda: orphans.reap(groups, self.ctx.lifecycle),
            lambda: reap_adopted(groups),
        ]
        threading.Thread(
            target=self._every, args=(REAP_INTERVAL, reap, "reaping orphaned jobs"), daemon=True
        ).start()

    def shutting_down(self, name: str) -> None:
        """SIGTERM: hand back what has not finished within the grace period."""
        grace = self.ctx.settings.timing.shutdown_grace
        threading.Thread(target=hand_back, args=(self.ctx, name, grace), daemon=True).start()

    def shut_down(self, name: str) -> None:
        """The worker stopped: stop beating and leave the registry."""
        self.stop.set()
        try:
            workers.forget(self.ctx.store, name)
        except Exception as exc:
            log.warning("could not unregister worker %s: %s", name, exc)


def warnings(ctx: WorkerContext) -> list[str]:
    """What would make every job (or every job with secrets) be refused, said at start."""
    found = []
    try:
        PolicyFile(ctx.settings.policy_path).current()
    except ConfigError as exc:
        found.append(str(exc))
    if not ctx.settings.worker_key_path.exists():
        found.append(
            f"no worker key at {ctx.settings.worker_key_path}; jobs with secrets will be "
            "refused (make it with `horus init`)"
        )
    return found


def prepare(runners: list[str]) -> WorkerContext:
    """The services of a worker for ``runners`` (all installed runners if empty), once the
    store answers; an unknown runner is refused, listing the installed ones."""
    settings = config.load()
    ctx = WorkerContext.serving(settings, make_app(settings), runners)
    ctx.store.ping()
    return ctx


def run_worker(ctx: WorkerContext, concurrency: int, loglevel: str = "INFO") -> None:
    """Consume the queues of the runners ``ctx`` serves until stopped."""
    settings, app = ctx.settings, ctx.app
    orphans.reap(settings.groups_dir, ctx.lifecycle)
    become_subreaper()  # a dead pool process's job comes to us: we learn how it ended
    task.register(app, ctx)
    worker = Worker(ctx)
    hooks: list[tuple[Any, Callable[[str], None]]] = [
        (worker_ready, worker.ready),
        (worker_shutting_down, worker.shutting_down),
        (worker_shutdown, worker.shut_down),
    ]
    for signal, method in hooks:
        signal.connect(_named(method), weak=False)
    worker_ready.connect(_compact_timers, weak=False)
    # a pool process that ends (a stop, a restart) ends the processes it holds for next jobs
    worker_process_shutdown.connect(lambda **_: warm.release_all(), weak=False)
    for dropped in (task_rejected, task_unknown):
        dropped.connect(_audit_dropped(ctx), weak=False)
    queues = ",".join(queue_for(n) for n in ctx.runners)
    node = f"horus-{'-'.join(ctx.runners)}-{os.getpid()}@%h"
    app.worker_main(
        [
            "worker",
            "--queues",
            queues,
            "--concurrency",
            str(concurrency),
            "--hostname",
            node,
            *(["--task-events"] if settings.task_events else []),
            "--loglevel",
            loglevel,
            "--without-mingle",
            "--without-gossip",
        ]
    )


def _audit_dropped(ctx: WorkerContext) -> Callable[..., None]:
    """A handler of Celery's rejected-message signals: the audit gets an entry for each
    message the worker dropped before any job was read from it (malformed, undecodable,
    for a task it does not know). It changes no record."""

    def handler(sender: Any = None, message: Any = None, exc: Any = None, **_: Any) -> None:
        headers = getattr(message, "headers", None)
        task_id = headers.get("id") if isinstance(headers, dict) else None
        reason = one_line(f"dropped a message the worker cannot read: {exc!r}")[:300]
        ctx.lifecycle.bus.emit(
            "refused", one_line(str(task_id or "unknown"))[:100], reason=reason, kind="message"
        )

    return handler


def _compact_timers(sender: Any = None, **_: Any) -> None:
    """Keep the event loop of the worker whose consumer is ``sender`` free of dead timers
    (:mod:`horus.execution.timers`)."""
    hub = getattr(sender, "hub", None)
    if hub is not None:  # none without an event loop (a solo or threads pool)
        timers.keep_compact(hub)


def _named(method: Callable[[str], None]) -> Callable[..., None]:
    """A signal handler that passes the worker's node name to ``method``."""

    def handler(sender: Any = None, **_: Any) -> None:
        method(str(getattr(sender, "hostname", sender) or "worker"))

    return handler
