"""Seed 004's scenarios, each against real Redis and real worker processes."""

from __future__ import annotations

import json
import time

import pytest

from horus.client import Client
from horus.job import Job, JobStatus
from tests.harness import WorkerProcess, run_horus, wait_until

pytestmark = pytest.mark.integration


def test_submit_and_execute_echo_hello_prints_hello(workers: dict[str, WorkerProcess]) -> None:
    done = run_horus("enqueue", "shell", "echo hello", "--wait")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello\n"


def test_jobs_wait_in_the_queue_while_every_worker_is_busy_then_run(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    first = client.submit(Job.new("shell", "sleep 1.5; echo first"))
    assert wait_until(lambda: client.get_job_status(first) is JobStatus.RUNNING)
    second = client.submit(Job.new("shell", "echo second"))
    time.sleep(0.5)
    assert client.get_job_status(first) is JobStatus.RUNNING
    assert client.get_job_status(second) is JobStatus.PENDING  # queued, not dropped
    result = client.wait(second, timeout=30)
    assert result.status is JobStatus.COMPLETED
    assert result.output == "second\n"
    first_result = client.get_job_result(first)
    assert first_result is not None
    assert first_result.completed_at is not None
    assert result.started_at is not None
    assert result.started_at >= first_result.completed_at


def test_status_reads_pending_then_running_then_completed(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    job_id = client.create_job(Job.new("shell", "sleep 1; echo done"))
    assert client.get_job_status(job_id) is JobStatus.PENDING
    client.start_job(job_id)
    assert wait_until(lambda: client.get_job_status(job_id) is JobStatus.RUNNING)
    record = client.get_job(job_id)
    assert record.worker
    assert record.worker.startswith("horus-shell")
    assert record.started_at is not None
    assert client.wait(job_id, timeout=30).status is JobStatus.COMPLETED
    assert client.get_job_status(job_id) is JobStatus.COMPLETED


def test_result_holds_output_exit_code_and_execution_metadata(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    result = client.run_job_and_await_result(
        Job.builder().runner_id("shell").payload("echo out; echo warn >&2").timeout(30).build(),
        timeout=30,
    )
    assert result.status is JobStatus.COMPLETED
    assert result.output == "out\n"
    assert result.error == "warn\n"
    assert result.exit_code == 0
    assert result.started_at is not None
    assert result.completed_at is not None
    assert result.completed_at >= result.started_at
    assert result.worker
    assert result.worker.startswith("horus-shell")
    assert result.duration is not None
    assert result.duration >= 0
    assert client.get_job_output(result.job_id) == "out\n"


def test_failing_command_is_recorded_failed_with_its_error_output_and_exit_code(
    workers: dict[str, WorkerProcess],
) -> None:
    run = run_horus("enqueue", "shell", "echo oops >&2; exit 3", "--wait")
    assert run.returncode == 1
    assert "oops" in run.stderr
    listed = run_horus("list", "--status", "failed", "--limit", "1", "--json")
    job_id = json.loads(listed.stdout)[0]["id"]
    shown = run_horus("result", job_id, "--json")
    result = json.loads(shown.stdout)
    assert result["status"] == "failed"
    assert result["exit_code"] == 3
    assert "oops" in result["error"]
