"""The jobs whose worker process died: how they ended is recorded before anything else.

A job's marker (see :mod:`horus.proc.groups`) carries the label :func:`label` writes and
:func:`parse` reads, here and nowhere else: ``<job id> <attempt>``. One reaping pass
(:func:`reap`), the same in the sweeper and in the worker's main process, records the exits
the keepers wrote (a job that exited 0 just before its worker process died completed, and
must not run again), ends what is left of the orphaned groups, and records again the exits
written meanwhile.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

from horus.errors import HorusError
from horus.proc import groups
from horus.store.lifecycle import Lifecycle

log = logging.getLogger(__name__)


def label(job_id: str, attempt: int) -> str:
    """The label of an attempt's process group marker."""
    return f"{job_id} {attempt}"


def parse(text: str) -> tuple[str, int] | None:
    """The job id and attempt of a marker's label, or None for one that is not an attempt's."""
    job_id, _, attempt = text.partition(" ")
    return (job_id, int(attempt)) if job_id and attempt.isdigit() else None


def record_exits(groups_dir: Path, lifecycle: Lifecycle) -> int:
    """Record each orphaned attempt's exit (one that exited 0 is noted on its record, so the
    sweeper completes the job instead of running it again); an exit that cannot be recorded
    while the store is away waits for the next pass. Returns how many were recorded."""
    recorded = 0
    for found in groups.orphan_exits(groups_dir):
        attempt = parse(found.label)
        if found.code == 0 and attempt is not None:
            try:
                lifecycle.note_exit(*attempt, 0)
            except HorusError as exc:
                log.warning("%s: could not note its exit yet: %s", found.label, exc)
                continue
        if attempt is not None:  # not a process held for a job yet (horus.execution.warm)
            log.warning("attempt %s exited %d as its worker process died", found.label, found.code)
        groups.settle(found)
        recorded += 1
    return recorded


class Reaped(NamedTuple):
    killed: int
    #: an orphan's exit still waits to be recorded: no lease may be taken back meanwhile
    waiting: bool


def reap(groups_dir: Path, lifecycle: Lifecycle) -> Reaped:
    """One pass over the jobs whose worker process died, as every reaper runs it."""
    record_exits(groups_dir, lifecycle)
    killed = groups.kill_recorded_groups(groups_dir, orphans_only=True)
    record_exits(groups_dir, lifecycle)
    return Reaped(killed, groups.unrecorded(groups_dir))
