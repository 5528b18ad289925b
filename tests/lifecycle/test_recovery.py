"""The rules that live beside the scripts: the sweeper takes no lease back while an orphan's
exit waits to be recorded; a redelivered message of a finished job never runs; the guard
stops an attempt whose record no longer shows it running under its number."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from horus.client import Client
from horus.errors import BrokerUnavailable
from horus.execution.attempt import deliver
from horus.execution.context import WorkerContext
from horus.execution.guard import Guard
from horus.execution.launcher import AttemptLauncher
from horus.job import Job, JobStatus
from horus.messaging.app import make_app
from horus.proc import groups, keeper
from horus.services.sweeper import Sweeper
from horus.store.lifecycle import Lifecycle
from horus.store.records import Store
from tests.lifecycle.jobs import created, handed_back, started, state

# -- the sweeper ----------------------------------------------------------------------


@pytest.fixture
def sweeper_store(store: Store, tmp_path: Path) -> Store:
    """The store as a sweeper on a machine of its own sees it (its own groups directory)."""
    return Store(replace(store.settings, home=tmp_path))


@pytest.fixture
def sweeper(sweeper_store: Store) -> Sweeper:
    return Sweeper(Lifecycle(sweeper_store), make_app(sweeper_store.settings), settled=True)


@pytest.fixture
def leader() -> Iterator[subprocess.Popen[bytes]]:
    """A job's first process, still alive (not a group leader: nothing here may kill the
    test's own process group)."""
    proc = subprocess.Popen(["sleep", "30"])
    yield proc
    proc.kill()
    proc.wait(5)


def dead_pid() -> int:
    gone = subprocess.Popen(["true"])
    gone.wait()
    return gone.pid


def orphan(groups_dir: Path, leader: int, job: Job, attempt: int) -> Path:
    """The marker of ``job``'s attempt whose worker process died, with the exit file its
    keeper opened and has yet to write the code into; returns the exit file."""
    groups_dir.mkdir(parents=True, exist_ok=True)
    head = f"{groups.start_time(leader)} {dead_pid()} 12345 {os.getpid()} {job.id} {attempt}"
    (groups_dir / str(leader)).write_text(head)
    exit_file = groups.exit_file(groups_dir, leader)
    exit_file.write_text("")
    return exit_file


def test_the_sweeper_takes_no_lease_back_while_an_orphans_exit_is_unrecorded(
    store: Store,
    life: Lifecycle,
    runner_id: str,
    sweeper: Sweeper,
    leader: subprocess.Popen[bytes],
) -> None:
    job = created(life, runner_id)
    started(life, job, lease_until=time.time() - 5)  # its worker died: the lease expired
    exit_file = orphan(sweeper.settings.groups_dir, leader.pid, job, 1)
    before = state(store, job)
    sweeper.sweep()
    assert groups.unrecorded(sweeper.settings.groups_dir)
    assert state(store, job) == before  # still running under attempt 1: nothing taken back
    exit_file.write_text("0")  # the keeper wrote it: the job had completed
    sweeper.sweep()
    record = store.get(job.id)
    assert (record.status, record.attempt, record.tries) == (JobStatus.COMPLETED, 1, 1)


def test_the_sweeper_takes_back_an_expired_lease_once_no_exit_waits(
    store: Store, life: Lifecycle, runner_id: str, sweeper: Sweeper
) -> None:
    job = created(life, runner_id)
    started(life, job, lease_until=time.time() - 5)
    assert sweeper.sweep().recovered >= 1
    record = store.get(job.id)
    assert (record.status, record.tries, record.lost) == (JobStatus.PENDING, 0, 1)


class AwayLifecycle(Lifecycle):
    """A worker process's lifecycle while the store is away."""

    def __init__(self) -> None:  # no store to reach
        pass

    def note_exit(self, job_id: str, attempt: int, code: int, runner_id: str = "") -> bool:
        raise BrokerUnavailable("unix:///away.sock", "Connection refused")


def exit_written(groups_dir: Path) -> bool:
    return any(groups_dir.glob("exit-*"))


@pytest.mark.skipif(not keeper.DIE_WITH_WORKER, reason="no keeper without setpriv")
def test_an_exit_made_while_the_store_is_away_is_recorded_after_its_worker_stopped(
    store: Store, life: Lifecycle, runner_id: str, sweeper: Sweeper, tmp_path: Path
) -> None:
    job = created(life, runner_id)
    started(life, job, lease_until=time.time() - 5)  # the lease ran out while it was away
    groups_dir = sweeper.settings.groups_dir

    def worker_process() -> None:  # the job exits 0 while the store is away
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # as a pool process stops
        try:
            launcher = AttemptLauncher(
                job.id, 1, AwayLifecycle(), threading.Event(), groups_dir=groups_dir
            )
            argv, env = ["sh", "-c", "exit 0"], dict(os.environ)
            launcher.run(argv, env=env, cwd=tmp_path, deadline=time.monotonic() + 30, stdin=None)
        finally:
            os._exit(0)

    proc = multiprocessing.get_context("fork").Process(target=worker_process)
    proc.start()
    end = time.monotonic() + 10
    while not exit_written(groups_dir) and time.monotonic() < end:
        time.sleep(0.02)
    time.sleep(1.0)  # it tries to note the exit meanwhile
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGTERM)  # the platform stops, the store still away
    proc.join(10)
    assert groups.unrecorded(groups_dir)  # the exit outlived its worker process
    sweeper.sweep()  # the store is back: the exit is recorded before any lease is taken back
    record = store.get(job.id)
    assert (record.status, record.attempt, record.tries) == (JobStatus.COMPLETED, 1, 1)
    assert not any(groups_dir.iterdir())  # and nothing of it is left


class BackLifecycle(AwayLifecycle):
    """A worker process's lifecycle while the store is away for its first two calls."""

    def __init__(self, life: Lifecycle) -> None:
        self.life, self.calls = life, 0

    def note_exit(self, job_id: str, attempt: int, code: int, runner_id: str = "") -> bool:
        self.calls += 1
        if self.calls <= 2:
            return super().note_exit(job_id, attempt, code, runner_id)
        return self.life.note_exit(job_id, attempt, code, runner_id)


@pytest.mark.skipif(not keeper.DIE_WITH_WORKER, reason="no keeper without setpriv")
def test_an_exit_made_while_the_store_is_away_is_noted_once_it_is_back(
    store: Store, life: Lifecycle, runner_id: str, tmp_path: Path
) -> None:
    job = created(life, runner_id)
    started(life, job)
    groups_dir = tmp_path / "groups"
    back = BackLifecycle(life)
    launcher = AttemptLauncher(job.id, 1, back, threading.Event(), groups_dir=groups_dir)
    argv, env = ["sh", "-c", "exit 0"], dict(os.environ)
    launcher.run(argv, env=env, cwd=tmp_path, deadline=time.monotonic() + 30, stdin=None)
    assert back.calls == 3
    assert store.get(job.id).exited == "1:0"
    assert not any(groups_dir.iterdir())  # noted: nothing is left on disk


# -- a redelivered message ------------------------------------------------------------


@pytest.fixture
def worker(store: Store) -> WorkerContext:
    """A shell worker's services, in this process."""
    return WorkerContext.serving(store.settings, make_app(store.settings), ["shell"])


def test_a_redelivered_message_of_a_finished_job_never_runs(
    store: Store, client: Client, worker: WorkerContext, tmp_path: Path
) -> None:
    ledger = tmp_path / "ran"
    job = client.store.get(
        client.create_job({"runner_id": "shell", "payload": f"echo once >> {ledger}"})
    ).job
    message = (job.model_dump_json(),)
    first = deliver(worker, job.id, message, {}, "w-first")
    assert first.report == "completed"
    before = state(store, job)
    again = deliver(worker, job.id, message, {}, "w-again")
    assert again.report == "dropped"
    assert "replay" in again.reason
    assert ledger.read_text() == "once\n"
    assert state(store, job) == before


# -- the guard ------------------------------------------------------------------------


def guard(store: Store, life: Lifecycle, job: Job, attempt: int, lease: float = 30.0) -> Guard:
    return Guard(job, attempt, store, life, lease, judge=lambda request: True).start()


def stops_within(watch: Guard, seconds: float) -> bool:
    return watch.stop.wait(seconds)


def test_the_guard_stops_an_attempt_once_another_attempt_runs_the_job(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = created(life, runner_id)
    started(life, job, "w-old")
    watch = guard(store, life, job, 1)  # renews only every 10 s: the record tells it first
    try:
        handed_back(life, job, 1)
        started(life, job, "w-new")
        assert stops_within(watch, 3.0)
        assert watch.lost.is_set()
        assert not watch.cancelled
    finally:
        watch.close()


def test_the_guard_stops_an_attempt_whose_job_no_longer_runs(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = created(life, runner_id)
    started(life, job)
    watch = guard(store, life, job, 1)
    try:
        handed_back(life, job, 1)  # pending again, still at attempt 1
        assert stops_within(watch, 3.0)
        assert watch.lost.is_set()
    finally:
        watch.close()


def test_the_guard_lets_the_attempt_that_owns_the_job_run(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = created(life, runner_id)
    started(life, job)
    watch = guard(store, life, job, 1, lease=3.0)  # renewed once a second
    try:
        assert not stops_within(watch, 2.0)
    finally:
        watch.close()


def test_the_guard_stops_an_attempt_whose_job_carries_a_cancel_to_honour(
    store: Store, life: Lifecycle, runner_id: str
) -> None:
    job = created(life, runner_id)
    started(life, job)
    watch = guard(store, life, job, 1)
    try:
        life.close(job.id, runner_id, JobStatus.CANCELLED, {}, "cancelled", '{"a": "request"}')
        assert stops_within(watch, 3.0)
        assert watch.cancelled
        assert not watch.lost.is_set()
    finally:
        watch.close()
