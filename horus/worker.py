"""Starting a worker: which queues it consumes, its heartbeat in the job store, the reaper
of its dead processes' jobs, and the hand-back of running jobs when it stops.

The heartbeat tells clients which runners live workers serve, so a runner installed only on
worker machines is still known at enqueue, and ``horus runners`` can show who serves what.
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
from pathlib import Path
from typing import Any

import click
from celery.signals import worker_ready, worker_shutdown, worker_shutting_down

from horus import config, registry
from horus.app import app
from horus.attempts import Attempts, entry
from horus.errors import ConfigError
from horus.groups import KILL_GRACE, become_subreaper, reap_adopted, reap_orphans
from horus.job import JobStatus
from horus.policy import PolicyFile
from horus.process import CANCEL_POLL
from horus.publish import publish
from horus.routing import queue_for
from horus.store import WORKER_TTL, Record, Store

log = logging.getLogger(__name__)
#: seconds between two looks for job processes whose pool process died: well within the
#: share of a lease left after its last renewal, so that the exit of a job that ended as its
#: pool process died is recorded before the sweeper may take the job back
REAP_INTERVAL = 0.2
_stop = threading.Event()
_served: list[str] = []


def served() -> list[str]:
    """The runners this worker process serves (empty outside a worker)."""
    return list(_served)


def _beat(name: str, store: Store) -> None:
    info = {"host": socket.gethostname(), "pid": os.getpid()}
    while not _stop.is_set():
        try:
            store.heartbeat(name, _served, info)
        except Exception as exc:  # keep beating through broker outages
            log.warning("heartbeat failed: %s", exc)
        _stop.wait(WORKER_TTL / 3)


def _reap(groups: Path, store: Store) -> None:
    note = Attempts(store).note_orphan_exit
    steps: list[Callable[[], object]] = [
        lambda: reap_orphans(groups, note),
        lambda: reap_adopted(groups),
    ]
    while not _stop.wait(REAP_INTERVAL):
        for step in steps:
            try:
                step()
            except Exception as exc:  # one step failing never stops the others
                log.warning("reaping orphaned jobs failed: %s", exc)


@worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    name = str(getattr(sender, "hostname", "worker"))
    settings = config.load()
    threading.Thread(target=_beat, args=(name, Store(settings)), daemon=True).start()
    groups = settings.groups_dir
    threading.Thread(target=_reap, args=(groups, Store(settings)), daemon=True).start()


def hand_back(name: str, store: Store, grace: float) -> int:
    """Wait up to ``grace`` seconds for worker ``name``'s jobs to finish, then hand back
    those still running: pending again, published again. Returns how many."""
    attempts = Attempts(store)
    end = time.monotonic() + grace
    while attempts.held(name) and time.monotonic() < end:
        time.sleep(0.2)
    handed: list[Record] = []
    due = 0.0
    for job_id in attempts.held(name):
        record = store.get(job_id)
        if record.status is not JobStatus.RUNNING or record.worker != name:
            continue
        started = record.started_at and record.started_at.isoformat()
        note = entry(
            record.attempt, "handed back", name, error="its worker stopped", started=started
        )
        # Another worker may start it once this one's attempt has surely stopped: it sees
        # the hand-back within CANCEL_POLL and kills its processes within KILL_GRACE.
        due = time.time() + CANCEL_POLL + KILL_GRACE + 1.0
        if attempts.hand_back(job_id, record.attempt, note, due):
            handed.append(record)
            log.warning("handed back job %s: the worker is stopping", job_id)
    if handed:
        time.sleep(max(0.0, due - time.time()))
    for record in handed:  # else the sweeper publishes it when due
        publish(app, record.job)
        attempts.published(record.job.id, time.time())
    return len(handed)


@worker_shutting_down.connect
def _hand_back_after_grace(sender: Any = None, **_: Any) -> None:
    settings = config.load()
    threading.Thread(
        target=hand_back,
        args=(str(sender), Store(settings), settings.timing.shutdown_grace),
        daemon=True,
    ).start()


@worker_shutdown.connect
def _stop_heartbeat(sender: Any = None, **_: Any) -> None:
    _stop.set()
    name = str(getattr(sender, "hostname", "worker"))
    try:
        Store(config.load()).forget_worker(name)
    except Exception as exc:
        log.warning("could not unregister worker %s: %s", name, exc)


def _warn_about_trust(settings: config.Settings) -> None:
    """Say at start what would make every job (or every job with secrets) be refused."""
    try:
        PolicyFile(settings.policy_path).current()
    except ConfigError as exc:
        click.echo(f"horus worker: warning: {exc}", err=True)
    if not settings.worker_key_path.exists():
        click.echo(
            f"horus worker: warning: no worker key at {settings.worker_key_path}; jobs with "
            "secrets will be refused (make it with `horus init`)",
            err=True,
        )


def run_worker(runners: list[str], concurrency: int, loglevel: str = "INFO") -> None:
    """Consume the queues of ``runners`` (all installed runners if empty) until stopped."""
    installed = registry.installed()
    names = runners or sorted(installed.runners)
    for name in names:
        installed.get(name)  # refuses an unknown runner, listing the installed ones
    settings = config.load()
    Store(settings).ping()
    _warn_about_trust(settings)
    reap_orphans(settings.groups_dir, Attempts(Store(settings)).note_orphan_exit)
    become_subreaper()  # a dead pool process's job comes to us: we learn how it ended
    _served[:] = names
    queues = ",".join(queue_for(n) for n in names)
    node = f"horus-{'-'.join(names)}-{os.getpid()}@%h"
    app.worker_main(
        [
            "worker",
            "--queues",
            queues,
            "--concurrency",
            str(concurrency),
            "--hostname",
            node,
            "--task-events",
            "--loglevel",
            loglevel,
            "--without-mingle",
            "--without-gossip",
        ]
    )
