"""The platform one fault runs against, imported once ``faults.py`` set the environment:
an embedded Redis, two real workers, a real sweeper, a submitter, and the fault."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.faults import Proxy, summarize
from horus import config
from horus.client import Client
from horus.errors import BrokerUnavailable, InvalidJob, JobStateError
from horus.job import Job, JobStatus
from horus.proc.groups import kill_recorded_groups
from horus.services.embedded import EmbeddedRedis
from horus.services.supervisor import HANDBACK_MARGIN
from horus.store import keys
from horus.store.records import Store
from horus.trust import bootstrap
from tests.harness import REPO, WorkerProcess, end_group, grant_job_files, horus_cmd, job_dir

WORKERS, CONCURRENCY = 2, 2
#: jobs submitted together: one at a time, or (every other group) in one submit_many
GROUP = 5
#: kills the job's worker process (the parent of the job's keeper, which is its $PPID)
POISON = "read -r _ _ _ pool _ < /proc/$PPID/stat; kill -9 $pool; sleep 5"
#: the poison job kills its own pool process: only outside a sandbox can it reach it, so it
#: runs in a context whose grant says so; every other job of a fault run is sandboxed
POISON_GRANT = (
    '[[grants]]\nwho = ["local"]\nrunners = ["shell"]\ncontexts = ["poison"]\nsandbox = "none"\n\n'
)


def pool_process(pid: int, main: int) -> bool:
    """True for a live pool process of the worker whose main process is ``main``: a child in
    its process group (the job processes it adopted run in groups of their own)."""
    try:
        state, _, pgrp = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[:3]
    except (OSError, ValueError):
        return False
    return state != "Z" and int(pgrp) == main


class Platform:
    """Everything one fault run starts, and stops in :meth:`close`."""

    def __init__(self, home: Path, worker_env: dict[str, str], broker: str) -> None:
        self.home = home
        self.worker_env = worker_env
        self.broker = broker
        self.settings = config.load()
        bootstrap.init(self.settings)
        policy = self.settings.policy_path
        policy.write_text(grant_job_files(policy.read_text(), POISON_GRANT))
        self.redis = EmbeddedRedis(home, self.settings.embedded_socket)
        self.redis.start()
        if broker == "rabbitmq":
            self._drop_rabbitmq_queue()
        self.workers = [self._worker() for _ in range(WORKERS)]
        self.sweeper = self._sweeper()
        self.store = Store(self.settings)
        self.client = Client()
        self.ledger = job_dir(f"ledger-{home.name}") / "ledger"  # where jobs may write
        self.kills: list[float] = []
        self.rng = random.Random(7)
        #: when the store is killed: a moment of its own each run, told in the report
        self.seed = int(os.environ.get("HORUS_FAULT_SEED") or time.time_ns() % 2**32)
        self.moments = random.Random(self.seed)
        self.submitted: list[str] = []
        self.done_submitting = threading.Event()

    def _worker(self) -> WorkerProcess:
        return WorkerProcess(["shell"], CONCURRENCY, self.worker_env).start(timeout=60)

    def _sweeper(self) -> subprocess.Popen[bytes]:
        with (self.home / "logs" / "sweeper.log").open("ab") as log:
            return subprocess.Popen(
                horus_cmd("sweeper"),
                env={**os.environ, **self.worker_env},
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @staticmethod
    def _drop_rabbitmq_queue() -> None:
        from kombu import Connection

        from benchmarks.faults import RABBITMQ

        with Connection(RABBITMQ) as conn:
            channel: Any = conn.default_channel
            channel.queue_delete("horus.shell")

    # -- submitting ------------------------------------------------------------------------

    def job(
        self, n: int, payload: str | None = None, attempts: int = 5, context: str | None = None
    ) -> Job:
        """Job ``n``: a short sleep, then its line in the ledger."""
        pause = self.rng.choice(["0.1", "0.2", "0.3", "0.5"])
        effect = f'echo "$HORUS_JOB_ID $HORUS_ATTEMPT $(date +%s.%N)" >> {self.ledger}'
        return Job.model_validate(
            {
                "id": f"fault-{n:06d}-{self.rng.getrandbits(32):08x}",
                "runner_id": "shell",
                "payload": payload or f"sleep {pause}; {effect}",
                "max_attempts": attempts,
                "timeout": 60,
                "context_id": context,
            }
        )

    def submit(self, job: Job) -> None:
        """Submit ``job`` until the platform has it, whatever the broker does meanwhile."""
        for _ in range(600):
            try:
                self.client.submit(job)
                return
            except BrokerUnavailable:
                time.sleep(0.1)
            except InvalidJob as exc:  # "id is taken": recorded by an earlier try
                if "is taken" not in str(exc):
                    raise
                try:
                    self.client.start_job(job.id)  # publish again: a duplicate is harmless
                    return
                except JobStateError:
                    return  # it started already
                except BrokerUnavailable:
                    time.sleep(0.1)
        raise RuntimeError(f"could not submit {job.id}")

    def submit_batch(self, jobs: list[Job]) -> None:
        """Submit ``jobs`` with one ``submit_many`` (one pipelined round trip on Redis) and
        again those the platform did not take, whatever the broker does meanwhile."""
        left = jobs
        for _ in range(600):
            again = []
            for job, submitted in zip(left, self.client.submit_many(left), strict=True):
                if submitted.id is not None:
                    continue
                if submitted.unreached:
                    again.append(job)
                elif "is taken" in (submitted.error or ""):  # recorded by an earlier try
                    self.submit(job)
                else:
                    raise RuntimeError(f"could not submit {job.id}: {submitted.error}")
            if not again:
                return
            left = again
            time.sleep(0.1)
        raise RuntimeError(f"could not submit {len(left)} jobs")

    def submit_all(self, jobs: list[Job], pace: float = 0.0) -> None:
        """Submit ``jobs`` in groups of :data:`GROUP`: one at a time, and every other group
        in one batch, so that faults meet both ways of submitting."""
        for start in range(0, len(jobs), GROUP):
            group = jobs[start : start + GROUP]
            if (start // GROUP) % 2:
                self.submit_batch(group)
            else:
                for job in group:
                    self.submit(job)
            self.submitted.extend(job.id for job in group)
            time.sleep(pace * len(group))  # spread the submissions over the faults
        self.done_submitting.set()

    # -- faults ----------------------------------------------------------------------------

    def kill_pool_child(self) -> None:
        worker = self.rng.choice(self.workers)
        assert worker.proc is not None
        pid = worker.proc.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pool = [int(c) for c in children if pool_process(int(c), pid)]
        if pool:
            os.kill(self.rng.choice(pool), signal.SIGKILL)
            self.kills.append(time.time())

    def kill_worker(self) -> None:
        n = self.rng.randrange(len(self.workers))
        worker = self.workers[n]
        assert worker.proc is not None
        os.killpg(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait(10)
        self.kills.append(time.time())
        self.workers[n] = self._worker()

    def restart_broker(self) -> None:
        assert self.redis.proc is not None
        os.killpg(self.redis.proc.pid, signal.SIGKILL)
        self.redis.proc.wait(10)
        self.kills.append(time.time())
        time.sleep(1.0)
        self.redis.start()

    def kill_store_and_restart(self) -> None:
        """SIGKILL the embedded Redis, then stop and start the platform as ``horus up``
        would: workers first (they finish or hand back their jobs, within the shutdown grace
        and the hand-back margin), the sweeper, what is left of the job groups; then Redis
        from its data directory, the workers and the sweeper again."""
        assert self.redis.proc is not None
        os.killpg(self.redis.proc.pid, signal.SIGKILL)
        self.redis.proc.wait(10)
        self.kills.append(time.time())
        time.sleep(self.moments.uniform(0.0, 1.0))  # someone notices, and stops the platform
        grace = self.settings.timing.shutdown_grace + HANDBACK_MARGIN
        stopping = [
            threading.Thread(target=end_group, args=(w.proc, grace))
            for w in self.workers
            if w.proc is not None
        ]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()
        end_group(self.sweeper, grace=5)
        kill_recorded_groups(self.settings.groups_dir)
        self.redis.start()
        self.workers = [self._worker() for _ in range(WORKERS)]
        self.sweeper = self._sweeper()

    def inject(self, fault: str, short: bool, proxy: Proxy | None, stop: threading.Event) -> None:
        """Inject ``fault`` until ``stop`` is set."""
        if fault == "pool-kill":  # every 3 s on average, never in step with the lease:
            # at a fixed 3 s (the lease) each kill came just as the job lost in the one before
            # was started again, so one job could be killed on every try and hit the lost limit
            while not stop.wait(self.rng.uniform(1.5, 4.5)):
                self.kill_pool_child()
        elif fault == "worker-kill":
            while not stop.wait(8.0 if short else 6.0):
                self.kill_worker()
        elif fault == "broker-restart":
            while len(self.submitted) < 40 and not stop.wait(0.1):
                pass
            if not stop.is_set():
                self.restart_broker()
        elif fault == "store-kill":  # at random moments while jobs run
            for _ in range(1 if short else 4):
                if stop.wait(self.moments.uniform(1.0, 5.0)) or self.done():
                    return
                self.kill_store_and_restart()
        elif fault == "proxy-drop":
            assert proxy is not None
            while not self.done_submitting.is_set() and not stop.wait(self.rng.uniform(0.2, 0.6)):
                if proxy.drop():
                    self.kills.append(time.time())

    # -- a run -----------------------------------------------------------------------------

    def run(self, fault: str, jobs: int, short: bool, proxy: Proxy | None) -> dict[str, Any]:
        started = time.time()
        todo = [self.job(n) for n in range(jobs)]
        poison: set[str] = set()
        note = ""
        if fault == "visibility":  # longer than the 3 s visibility timeout
            for n in range(4):
                todo.insert(n * 10, self.job(jobs + n, f"sleep 6; {todo[0].payload}"))
        if fault == "poison":
            bad = self.job(jobs, POISON, attempts=1, context="poison")  # the lost limit stops it
            todo.insert(5, bad)
            poison.add(bad.id)
        stop = threading.Event()
        injector = threading.Thread(target=self.inject, args=(fault, short, proxy, stop))
        injector.start()
        try:
            self.submit_all(todo, pace=0.02 if fault == "proxy-drop" else 0.0)
            self.wait_all(deadline=time.time() + (300 if short else 900))
        finally:
            stop.set()
            injector.join()
        records = self.records()
        if fault == "store-kill":
            note = f"  seed {self.seed} (HORUS_FAULT_SEED)"
        if poison:
            bad_record = records[next(iter(poison))]
            note = (
                f"  poison: {bad_record.get('status')} after {bad_record.get('attempt')} attempts"
            )
        return summarize(
            fault, self.broker, records, self.ledger, self.kills, started, poison, note
        )

    def done(self) -> bool:
        """True once every job submitted so far ended, and no more are to come."""
        statuses = self.statuses()
        return self.done_submitting.is_set() and all(s and JobStatus(s).terminal for s in statuses)

    def wait_all(self, deadline: float) -> None:
        while time.time() < deadline:
            statuses = self.statuses()
            if all(s and JobStatus(s).terminal for s in statuses):
                return
            time.sleep(0.5)

    def statuses(self) -> list[str | None]:
        try:
            pipe = self.store.redis.pipeline(transaction=False)
            for job_id in self.submitted:
                pipe.hget(keys.job(job_id), "status")
            return list(pipe.execute())
        except Exception:  # the broker restarts
            return [None]

    def records(self) -> dict[str, dict[str, Any]]:
        pipe = self.store.redis.pipeline(transaction=False)
        for job_id in self.submitted:
            pipe.hgetall(keys.job(job_id))
        return dict(zip(self.submitted, pipe.execute(), strict=True))

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        end_group(self.sweeper, grace=5)
        self.redis.stop()
        if self.broker == "rabbitmq":
            self._drop_rabbitmq_queue()
        print(f"fault run kept in {self.home}", file=sys.stderr)
