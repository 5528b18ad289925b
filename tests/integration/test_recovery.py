"""Nothing lost, with real workers: a dead worker's job runs again elsewhere, only once at a
time; failures are retried with backoff and each attempt is in the history; a poison job
stops after max_attempts; SIGTERM lets jobs finish, then hands back the rest; a cancelled
job stays cancelled; a vanished message is published again.

These tests use the ``chaos`` runner (the shell runner on a queue of its own, from
tests/plugins) with workers of their own and short leases, and run a sweeper in-process.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kombu.transport import redis as kombu_redis

from horus import config
from horus.client import Client
from horus.config import Timing
from horus.job import Job, JobStatus
from horus.messaging.app import make_app
from horus.messaging.publish import BATCH_FAILED
from horus.proc.keeper import DIE_WITH_WORKER
from horus.services.sweeper import Sweeper
from horus.store import workers
from horus.store.lifecycle import Lifecycle
from horus.store.records import Store
from horus.subscribers import default_bus
from horus.trust.signing import CancelRequest
from tests.harness import WorkerProcess, attach_cancel, pid_alive, plugin_env, run_horus, wait_until

app = make_app(config.load())
pytestmark = pytest.mark.integration

TIMING = Timing(
    lease=2.0, sweep_interval=0.2, retry_base=1.0, republish_after=3.0, shutdown_grace=1.0
)
ENV = {
    **plugin_env(),
    "HORUS_LEASE": str(TIMING.lease),
    "HORUS_RETRY_BASE": str(TIMING.retry_base),
    "HORUS_SHUTDOWN_GRACE": str(TIMING.shutdown_grace),
}


@pytest.fixture
def sweeper(embedded_redis: object) -> Iterator[Sweeper]:
    """A sweeper with the short timings, sweeping in a thread of this process."""
    store = Store(replace(config.load(), timing=TIMING))
    sweeper = Sweeper(Lifecycle(store, default_bus(store)), app)
    stop = threading.Event()
    thread = threading.Thread(target=sweeper.run, args=(stop,), daemon=True)
    thread.start()
    yield sweeper
    stop.set()
    thread.join(5)


@pytest.fixture
def chaos_workers() -> Iterator[list[WorkerProcess]]:
    """Workers of the chaos runner the test starts; all stopped afterwards."""
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


def chaos_worker(started: list[WorkerProcess]) -> WorkerProcess:
    worker = WorkerProcess(["chaos"], 1, ENV).start()
    started.append(worker)
    return worker


#: sets $pool to the job's worker process (the parent of the job's keeper, its $PPID)
POOL = "read -r _ _ _ pool _ < /proc/$PPID/stat; "
#: the tests that use POOL need the keeper, which needs setpriv
needs_keeper = pytest.mark.skipif(not DIE_WITH_WORKER, reason="no setpriv (util-linux) here")


def chaos(payload: str, **fields: object) -> Job:
    return Job.model_validate({"runner_id": "chaos", "payload": payload, **fields})


def enqueue_chaos(payload: str) -> str:
    """Submit a chaos job from a client that has the chaos runner installed, as one can
    while no worker serving it is alive; returns its id."""
    done = run_horus("enqueue", "chaos", payload, env={**os.environ, **ENV})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def effect_then_death(ledger: Path, victim: str) -> Job:
    """A job that stops ``victim`` (``$pool``, its pool process, or ``-$worker``, its whole
    worker), writes its effect, exits 0, and leaves a helper that SIGKILLs the victim once
    the job's keeper has exited: its worker dies just after the job exited."""
    return chaos(
        f"pwd > {ledger}.workdir; "
        + POOL
        + "keeper=$PPID; read -r _ _ _ _ worker _ < /proc/$pool/stat; "
        f"kill -STOP {victim}; echo effect-$HORUS_ATTEMPT >> {ledger}; "
        '( while [ "$(cut -d" " -f3 /proc/$keeper/stat)" != Z ]; do sleep 0.01; done; '
        f"kill -9 {victim} ) >/dev/null 2>&1 & exit 0",
        max_attempts=3,
    )


def kill_hard(worker: WorkerProcess) -> None:
    """SIGKILL the worker's whole process group, as a crash or an OOM kill would."""
    assert worker.proc is not None
    os.killpg(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait(10)


def test_a_dead_workers_job_runs_again_elsewhere_and_only_once(
    client: Client,
    sweeper: Sweeper,
    chaos_workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    ledger, pids = tmp_path / "ledger", tmp_path / "pids"
    first = chaos_worker(chaos_workers)
    job_id = client.submit(
        chaos(
            f"sleep 30 & echo $! >> {pids}; wait; echo done-$HORUS_ATTEMPT >> {ledger}",
            max_attempts=3,
        )
    )
    assert wait_until(pids.exists, timeout=20)
    orphan = int(pids.read_text())
    kill_hard(first)
    assert wait_until(lambda: not pid_alive(orphan), timeout=5)  # reaped before any rerun
    chaos_worker(chaos_workers)
    assert wait_until(lambda: client.get_job(job_id).attempt == 2, timeout=20)
    record = client.get_job(job_id)
    assert record.history[0]["status"] == "lost"
    assert record.status is JobStatus.RUNNING
    assert client.cancel_job(job_id) is JobStatus.RUNNING  # end the 30 s sleep quickly
    assert client.wait(job_id, timeout=10).status is JobStatus.CANCELLED
    assert not ledger.exists()  # neither attempt got to its effect


def test_a_failing_job_is_retried_with_backoff_and_each_attempt_recorded(
    client: Client, sweeper: Sweeper, chaos_workers: list[WorkerProcess], tmp_path: Path
) -> None:
    chaos_worker(chaos_workers)
    times = tmp_path / "times"
    job_id = client.submit(chaos(f"date +%s.%N >> {times}; exit 7", max_attempts=3))
    result = client.wait(job_id, timeout=30)
    assert (result.status, result.exit_code, result.attempt) == (JobStatus.FAILED, 7, 3)
    record = client.get_job(job_id)
    assert [h["status"] for h in record.history] == ["failed", "failed", "failed"]
    assert [h["exit_code"] for h in record.history] == [7, 7, 7]
    started = [float(t) for t in times.read_text().split()]
    # seed 003: attempt 2 one base delay (1 s here) after the failure, attempt 3 two
    assert TIMING.retry_base <= started[1] - started[0] < 2 * TIMING.retry_base
    assert 2 * TIMING.retry_base <= started[2] - started[1] < 4 * TIMING.retry_base


def test_a_job_that_fails_once_completes_on_its_second_attempt(
    client: Client, sweeper: Sweeper, chaos_workers: list[WorkerProcess], tmp_path: Path
) -> None:
    chaos_worker(chaos_workers)
    marker = tmp_path / "tried"
    job = chaos(f"test -f {marker} && echo ok || {{ touch {marker}; exit 1; }}", max_attempts=2)
    result = client.run_job_and_await_result(job, timeout=30)
    assert (result.status, result.output, result.attempt) == (JobStatus.COMPLETED, "ok\n", 2)
    shown = run_horus("status", job.id, "--json")
    assert '"tries": 2' in shown.stdout


@needs_keeper
def test_a_poison_job_stops_after_the_lost_limit_while_others_keep_flowing(
    client: Client, sweeper: Sweeper, chaos_workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """A job lost with its worker runs again though it has one attempt (its worker's death
    is not its own failure), up to the lost limit (3), so a job that kills every worker
    still stops."""
    chaos_worker(chaos_workers)
    chaos_worker(chaos_workers)
    poison = client.submit(chaos(POOL + "kill -9 $pool; sleep 5"))
    others = [client.submit(chaos(f"echo {n}")) for n in range(6)]
    for n, job_id in enumerate(others):
        result = client.wait(job_id, timeout=30)
        assert (result.status, result.output) == (JobStatus.COMPLETED, f"{n}\n")
    result = client.wait(poison, timeout=30)
    assert result.status is JobStatus.FAILED
    assert "lost with its worker 3 times (the limit is 3)" in (result.error or "")
    assert [h["status"] for h in client.get_job(poison).history] == ["lost", "lost", "lost"]


def test_sigterm_lets_a_short_job_finish_and_hands_back_a_long_one(
    client: Client, sweeper: Sweeper, chaos_workers: list[WorkerProcess], tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    stopping = chaos_worker(chaos_workers)
    long_id = client.submit(chaos(f"sleep 4; echo long-$HORUS_ATTEMPT >> {ledger}"))
    assert wait_until(lambda: client.get_job_status(long_id) is JobStatus.RUNNING, timeout=20)
    assert stopping.proc is not None
    stopping.proc.send_signal(signal.SIGTERM)  # the worker's main process, as systemd would
    assert wait_until(lambda: client.get_job_status(long_id) is JobStatus.PENDING, timeout=10)
    stopping.proc.wait(20)
    chaos_worker(chaos_workers)
    result = client.wait(long_id, timeout=30)
    assert (result.status, result.attempt) == (JobStatus.COMPLETED, 2)
    assert ledger.read_text() == "long-2\n"  # the handed-back run never finished
    record = client.get_job(long_id)
    assert [h["status"] for h in record.history] == ["handed back", "completed"]
    assert record.tries == 1  # a hand-back does not use up an attempt

    short = chaos_worker(chaos_workers)
    short_id = client.submit(chaos(f"sleep 0.5; echo short >> {ledger}"))
    assert wait_until(lambda: client.get_job_status(short_id) is JobStatus.RUNNING, timeout=20)
    assert short.proc is not None
    short.proc.send_signal(signal.SIGTERM)
    short.proc.wait(20)
    result = client.wait(short_id, timeout=10)
    assert (result.status, result.attempt) == (JobStatus.COMPLETED, 1)


def test_a_cancelled_pending_job_never_starts_even_across_a_worker_restart(
    client: Client, sweeper: Sweeper, chaos_workers: list[WorkerProcess], tmp_path: Path
) -> None:
    canary = tmp_path / "ran"
    first = chaos_worker(chaos_workers)
    blocker = client.submit(chaos("sleep 3"))  # keeps the only worker busy
    assert wait_until(lambda: client.get_job_status(blocker) is JobStatus.RUNNING, timeout=20)
    job_id = client.submit(chaos(f"touch {canary}"))
    assert client.cancel_job(job_id) is JobStatus.CANCELLED
    kill_hard(first)
    chaos_worker(chaos_workers)
    after = client.run_job_and_await_result(chaos("echo after"), timeout=30)
    assert after.status is JobStatus.COMPLETED  # the cancelled message was consumed first
    assert client.get_job_status(job_id) is JobStatus.CANCELLED
    assert not canary.exists()


def test_a_message_that_vanished_is_published_again(
    client: Client, sweeper: Sweeper, chaos_workers: list[WorkerProcess]
) -> None:
    first = chaos_worker(chaos_workers)
    first.stop()  # nobody consumes horus.chaos for now
    job_id = enqueue_chaos("echo found")
    created = client.create_job(Job(runner_id="shell", payload="echo never"))  # never sent
    assert client.store.redis.delete("horus.chaos") == 1  # the message vanishes
    sent = time.monotonic()
    chaos_worker(chaos_workers)
    result = client.wait(job_id, timeout=30)
    assert (result.status, result.output) == (JobStatus.COMPLETED, "found\n")
    assert time.monotonic() - sent >= TIMING.republish_after - 0.5
    assert client.get_job_status(created) is JobStatus.PENDING  # only start_job sends it


def test_horus_sweeper_once_reports_what_it_did(embedded_redis: object) -> None:
    done = run_horus("sweeper", "--once")
    assert done.returncode == 0, done.stderr
    assert '"recovered":' in done.stdout


def test_a_cancel_left_on_a_job_waiting_for_its_retry_stops_the_retry(
    client: Client, sweeper: Sweeper, chaos_workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """A cancel that reached a running job just as its attempt failed is on the record when
    the retry starts: the retry is cancelled before it runs anything."""
    chaos_worker(chaos_workers)
    runs = tmp_path / "runs"
    job_id = client.submit(chaos(f"echo run >> {runs}; exit 1", max_attempts=3))
    assert wait_until(lambda: client.get_job(job_id).tries == 2, timeout=20)
    assert wait_until(lambda: client.get_job_status(job_id) is JobStatus.PENDING, timeout=20)
    request = CancelRequest.make(job_id, client.keys)
    attach_cancel(client, job_id, request.model_dump_json())  # as the race leaves it
    result = client.wait(job_id, timeout=30)
    assert (result.status, result.attempt) == (JobStatus.CANCELLED, 3)
    assert runs.read_text() == "run\nrun\n"


@needs_keeper
def test_a_job_that_exited_0_as_its_pool_process_died_completes_and_never_runs_again(
    client: Client, sweeper: Sweeper, chaos_workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """The window the pool-kill fault hits: the job wrote its effect and exited 0, and its
    pool process died before it noted that exit. The job stops its pool process, writes its
    effect and exits; a helper of its own kills the stopped pool process once the job's
    keeper has exited too. The worker's main process adopts the keeper and records the
    exit, so the sweeper completes the job instead of running its effect again."""
    chaos_worker(chaos_workers)
    ledger = tmp_path / "ledger"
    job_id = client.submit(effect_then_death(ledger, "$pool"))
    result = client.wait(job_id, timeout=30)
    assert (result.status, result.exit_code, result.attempt) == (JobStatus.COMPLETED, 0, 1)
    assert "output was lost" in (result.error or "")
    time.sleep(2 * TIMING.lease)  # time enough for a wrong recovery to run it again
    assert ledger.read_text() == "effect-1\n"
    assert client.get_job(job_id).attempt == 1
    # the dead pool process's scratch directory went with its job
    workdir = Path(Path(f"{ledger}.workdir").read_text().strip())
    assert workdir.is_relative_to(tempfile.gettempdir())
    assert not workdir.exists()


@needs_keeper
def test_a_job_that_kills_its_pool_process_leaves_no_process_and_no_directory_behind(
    client: Client, sweeper: Sweeper, chaos_workers: list[WorkerProcess], tmp_path: Path
) -> None:
    worker = chaos_worker(chaos_workers)
    pids = tmp_path / "pids"
    job_id = client.submit(
        chaos(f"pwd > {pids}.workdir; {POOL}sleep 60 & echo $! > {pids}; kill -9 $pool; sleep 60")
    )
    result = client.wait(job_id, timeout=60)
    assert result.status is JobStatus.FAILED
    assert "lost with its worker 3 times" in (result.error or "")
    assert not pid_alive(int(pids.read_text()))
    workdir = Path(Path(f"{pids}.workdir").read_text().strip())
    assert workdir.is_relative_to(tempfile.gettempdir())
    assert not workdir.exists()
    assert worker.proc is not None
    assert worker.proc.poll() is None  # the worker lives on, with a new pool process


def test_a_backlog_no_worker_serves_is_not_published_again_and_again(
    client: Client, sweeper: Sweeper, chaos_workers: list[WorkerProcess]
) -> None:
    """Jobs wait in their queue while no worker serves their runner: each keeps one message
    there instead of gaining one every republish period."""
    first = chaos_worker(chaos_workers)
    first.stop()
    for name, info in workers.live(client.store).items():
        if not pid_alive(info["pid"]):  # killed by an earlier test: gone after WORKER_TTL
            workers.forget(client.store, name)
    assert not any("chaos" in w["runners"] for w in workers.live(client.store).values())
    queued = client.store.redis.llen("horus.chaos")
    job_id = enqueue_chaos("echo waited")
    sent = client.store.redis.zscore("horus:queued", job_id) or 0.0
    time.sleep(3 * TIMING.republish_after)
    assert client.store.redis.llen("horus.chaos") == queued + 1
    looked = client.store.redis.zscore("horus:queued", job_id) or 0.0
    assert looked > sent + 2 * TIMING.republish_after  # looked at, each time left alone
    chaos_worker(chaos_workers)
    result = client.wait(job_id, timeout=30)
    assert (result.status, result.output) == (JobStatus.COMPLETED, "waited\n")


@needs_keeper
def test_a_job_that_exited_0_as_its_whole_worker_died_completes_and_never_runs_again(
    client: Client, sweeper: Sweeper, chaos_workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """The same window when every process of the worker dies (the main process too): the
    job stops its whole worker, writes its effect and exits, and a helper SIGKILLs the
    worker's process group once the job's keeper has exited. The keeper wrote the exit
    before it went, so the sweeper completes the job."""
    chaos_worker(chaos_workers)
    ledger = tmp_path / "ledger"
    job_id = client.submit(effect_then_death(ledger, "-$worker"))
    result = client.wait(job_id, timeout=30)
    assert (result.status, result.exit_code, result.attempt) == (JobStatus.COMPLETED, 0, 1)
    chaos_worker(chaos_workers)  # a worker that would run it again, were it recovered
    time.sleep(2 * TIMING.lease)
    assert ledger.read_text() == "effect-1\n"
    assert client.get_job(job_id).attempt == 1


@pytest.mark.parametrize("arrived", [True, False], ids=["reply lost", "nothing sent"])
def test_a_bulk_batch_whose_round_trip_fails_still_runs_each_job_once(
    arrived: bool,
    client: Client,
    sweeper: Sweeper,
    chaos_workers: list[WorkerProcess],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """submit_many's messages go to Redis in one pipelined round trip. When it fails the
    client cannot know which arrived: each job is still submitted once, as its record
    says, and the sweeper publishes again those whose message did not arrive."""
    batches: Any = getattr(kombu_redis, "PublishBatch")  # noqa: B009  (kombu 5.7, no stubs)
    flush = batches.flush

    def failing(batch: object) -> None:
        if arrived:
            flush(batch)  # the messages are on the queue, then the reply is lost
        raise BATCH_FAILED("Redis publish batch failed; delivery is uncertain")

    ledger = tmp_path / "ledger"
    chaos_worker(chaos_workers)
    monkeypatch.setattr(batches, "flush", failing)
    done = client.submit_many([chaos(f"echo {n} >> {ledger}") for n in range(5)])
    monkeypatch.undo()
    assert [s.error for s in done] == [None] * 5
    for submitted in done:
        assert submitted.id is not None
        assert client.wait(submitted.id, timeout=30).status is JobStatus.COMPLETED
    time.sleep(TIMING.republish_after + 1)  # a second copy would have run by now
    assert sorted(ledger.read_text().split()) == [str(n) for n in range(5)]
