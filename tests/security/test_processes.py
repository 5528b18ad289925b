"""Nothing a job starts outlives it, however detached: not its timeout, not its cancel,
not the death of its worker."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from horus.client import Client
from horus.job import JobStatus, parse_job
from horus.services.embedded import EmbeddedRedis
from tests.harness import WorkerProcess, plugin_env, sleep_tag, tagged, wait_until
from tests.security.conftest import BOXED, OWN_PATH, Attacker

#: a child in a session of its own, and one in a process group of its own (Python's setpgid)
ESCAPE = (
    "setsid sleep {tag} & "
    'python3 -c \'import os, time; os.setpgid(0, 0); os.execvp("sleep", ["sleep", "{tag}"])\' & '
)


@pytest.mark.parametrize(
    ("end", "status"), [("timeout", JobStatus.TIMEOUT), ("cancel", JobStatus.CANCELLED)]
)
def test_no_process_of_a_job_outlives_its_timeout_or_cancel(
    attacker: Attacker, workers: dict[str, WorkerProcess], end: str, status: JobStatus
) -> None:
    tag = sleep_tag()
    timeout = 3 if end == "timeout" else 30
    job_id = attacker.client.submit(attacker.job(ESCAPE.format(tag=tag) + "sleep 60", timeout))
    assert wait_until(lambda: len(tagged(tag)) == 2, timeout=20)  # both escaped and run
    if end == "cancel":
        Client().cancel_job(job_id)  # the local key: a canceller
    assert attacker.client.wait(job_id, timeout=30).status is status
    assert wait_until(lambda: not tagged(tag), timeout=5)


def test_no_process_of_a_job_outlives_a_job_that_exits(
    attacker: Attacker, workers: dict[str, WorkerProcess]
) -> None:
    tag = sleep_tag()
    result = attacker.run(ESCAPE.format(tag=tag) + "sleep 1; echo done")
    assert result.output == "done\n"
    assert wait_until(lambda: not tagged(tag), timeout=5)


@pytest.fixture
def chaos_worker(embedded_redis: EmbeddedRedis) -> Iterator[WorkerProcess]:
    """A worker of the chaos test runner: the test kills it."""
    worker = WorkerProcess(["chaos"], 1, plugin_env()).start()
    try:
        yield worker
    finally:
        worker.stop()


def test_no_process_of_a_job_outlives_its_worker(
    attacker: Attacker, chaos_worker: WorkerProcess
) -> None:
    tag = sleep_tag()
    payload = ESCAPE.format(tag=tag) + "sleep 60"
    job = parse_job({"runner_id": "chaos", "payload": payload, "context_id": BOXED})
    job_id = Client().submit(job)
    assert wait_until(lambda: len(tagged(tag)) == 2, timeout=20)
    assert chaos_worker.proc is not None
    os.killpg(chaos_worker.proc.pid, 9)  # the whole worker, as an OOM kill would
    chaos_worker.proc.wait(10)
    assert wait_until(lambda: not tagged(tag), timeout=5)
    Client().cancel_job(job_id)


#: the programs that start a job's process, and the keeper's sleep
TOOLS = ("setpriv", "env", "bwrap", "unshare", "prlimit", "sleep", "sh")


def test_a_job_that_sets_path_cannot_put_its_programs_in_place_of_those_that_start_jobs(
    attacker: Attacker, workers: dict[str, WorkerProcess], client: Client, tmp_path: Path
) -> None:
    # programs of the job's own, in a path its grant makes writable, first on the PATH its
    # grant lets it set
    planted = tmp_path / "bin"
    planted.mkdir()
    planted.chmod(0o777)
    ran = tmp_path / "ran"
    for name in TOOLS:
        tool = planted / name
        tool.write_text(f'#!/bin/sh\necho {name} >> {ran}\nexec /usr/bin/{name} "$@"\n')
        tool.chmod(0o755)
    env = {"PATH": f"{planted}:/usr/local/bin:/usr/bin:/bin"}
    for _ in range(3):  # cold, then warm starts: the next job's process is made meanwhile
        result = attacker.run("true", context_id=OWN_PATH, env_vars=env)
        assert result.status is JobStatus.COMPLETED, result.error
    for _ in range(2):  # and the jobs after it, another caller's
        job_id = client.submit(parse_job({"runner_id": "shell", "payload": "true"}))
        assert client.wait(job_id, timeout=30).status is JobStatus.COMPLETED
    assert not ran.exists(), ran.read_text()
