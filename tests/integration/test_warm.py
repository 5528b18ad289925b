"""Warm starts, with a real worker: a python call begins in an interpreter its worker process
started before the job came, and finds nothing of the job before it."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from horus import config
from horus.client import Client
from horus.execution import warm
from horus.job import JobStatus, parse_job
from horus.proc.groups import Marker, group_alive, markers
from tests.harness import WorkerProcess, plugin_env, wait_until

PROCESS = "tests.fixtures:process"


@pytest.fixture
def warm_worker(embedded_redis: object) -> Iterator[WorkerProcess]:
    """A worker of one pool process for the ``call`` runner (which preloads decimal): the
    test's own, so that it takes every job of the test."""
    table = config.load().home / "runners.toml"
    table.write_text('[call]\npreload = ["decimal"]\n')
    try:
        worker = WorkerProcess(["call"], 1, plugin_env()).start()
    finally:
        table.unlink()  # read at the worker's start; no other worker sees it
    yield worker
    worker.stop()


def call(client: Client, payload: str, **fields: Any) -> tuple[str, dict[str, Any], float]:
    """Run one ``call`` job; its id, its JSON output and the seconds from its submission to
    its result."""
    submitted = time.monotonic()
    job_id = client.submit(parse_job({"runner_id": "call", "payload": payload, **fields}))
    result = client.wait(job_id, timeout=60)
    assert result.status is JobStatus.COMPLETED, result.error
    return job_id, json.loads(result.output), time.monotonic() - submitted


def held_groups(worker: WorkerProcess) -> list[Marker]:
    """The recorded groups of the processes ``worker``'s pool processes hold."""
    assert worker.proc is not None
    return [
        m
        for m in markers(config.load().groups_dir)
        if m.label == warm.LABEL and m.adopter == worker.proc.pid
    ]


def the_held_group(client: Client, worker: WorkerProcess) -> tuple[int, Path]:
    """Run a job on ``worker``, then the group id and directory of the one process it holds
    for the next job."""
    call(client, PROCESS)
    assert wait_until(lambda: len(held_groups(worker)) == 1, timeout=10)
    (held,) = held_groups(worker)
    assert held.scratch is not None
    return held.pgid, held.scratch


def pool_of(worker: WorkerProcess) -> list[int]:
    """The pids of ``worker``'s pool processes."""
    assert worker.proc is not None
    pid = worker.proc.pid
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_the_next_python_call_starts_before_its_job_comes_and_is_the_jobs_alone(
    client: Client, warm_worker: WorkerProcess
) -> None:
    first_id, first, first_took = call(client, "tests.fixtures:leave_traces")
    time.sleep(0.5)  # the next job comes well after the held interpreter started
    second_id, second, second_took = call(client, PROCESS)
    # the first started cold, for its job; the second before it was submitted
    assert first["age"] <= first_took
    assert second["age"] > second_took + 0.3, (second["age"], second_took)
    # the environment and the directory are its own
    assert second["job"] == second_id
    assert first["job"] == first_id
    assert second["cwd"] != first["cwd"]
    assert second["home"] == second["cwd"]
    assert not Path(second["cwd"]).exists()  # removed with its job, as any workdir
    # nothing of the job before: its files, its module state, its environment
    assert first["left"] == {"workdir": True, "tmp": False, "module": True, "env": True}
    assert second["left"] == {"workdir": False, "tmp": False, "module": False, "env": False}


def test_modules_the_runner_preloads_are_imported_before_the_job(
    client: Client, warm_worker: WorkerProcess
) -> None:
    _, seen, _ = call(client, PROCESS)
    assert seen["decimal"] is True
    # the job's own interpreter imports nothing it was not told to
    from horus.testing import run_locally

    plain = run_locally("python", PROCESS, Path(config.load().home))
    assert json.loads(plain.output)["decimal"] is False


def test_a_job_that_sets_its_time_zone_starts_cold_with_it(
    client: Client, warm_worker: WorkerProcess
) -> None:
    call(client, PROCESS)
    time.sleep(0.5)
    _, seen, took = call(client, PROCESS, env_vars={"TZ": "HRS+3"})
    assert seen["tz"] == "HRS"
    assert seen["age"] <= took  # not the held interpreter: one started for it


def test_a_held_interpreter_goes_with_its_pool_process_and_leaves_nothing(
    client: Client, warm_worker: WorkerProcess
) -> None:
    group, workdir = the_held_group(client, warm_worker)
    assert group_alive(group)
    assert workdir.is_dir()
    for pid in pool_of(warm_worker):
        os.kill(pid, signal.SIGKILL)
    # its keeper ends it with its pool process; the worker's reaper removes the rest
    assert wait_until(lambda: not group_alive(group), timeout=10)
    assert wait_until(lambda: not workdir.exists(), timeout=20)
    # and the worker still serves: its new pool process takes the next job
    call(client, PROCESS)


def test_a_stopped_worker_leaves_no_held_interpreter(
    client: Client, warm_worker: WorkerProcess
) -> None:
    group, workdir = the_held_group(client, warm_worker)
    assert warm_worker.proc is not None
    os.killpg(warm_worker.proc.pid, signal.SIGTERM)  # as `horus down` stops it
    warm_worker.proc.wait(timeout=30)
    assert not group_alive(group)
    assert not workdir.exists()
    assert not held_groups(warm_worker)
