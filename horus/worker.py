"""Starting a worker: which queues it consumes, and its heartbeat in the job store.

The heartbeat tells clients which runners live workers serve, so a runner installed only on
worker machines is still known at enqueue, and ``horus runners`` can show who serves what.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

import click
from celery.signals import worker_ready, worker_shutdown

from horus import config, registry
from horus.app import app
from horus.errors import ConfigError
from horus.policy import PolicyFile
from horus.routing import queue_for
from horus.store import WORKER_TTL, Store

log = logging.getLogger(__name__)
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


@worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    name = str(getattr(sender, "hostname", "worker"))
    threading.Thread(target=_beat, args=(name, Store(config.load())), daemon=True).start()


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
