"""Where a sandbox cannot be made, no job that needs one runs: it fails with one line that
says why and what to do. Only a grant that says ``sandbox = "none"`` runs a job without."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from horus.client import Client
from horus.job import JobStatus, parse_job
from horus.services.embedded import EmbeddedRedis
from tests.harness import WorkerProcess, plugin_env, run_horus
from tests.security.conftest import BOXED, Attacker


@pytest.fixture
def unboxed_worker(embedded_redis: EmbeddedRedis) -> Iterator[WorkerProcess]:
    """A worker of the chaos test runner on a machine without bubblewrap."""
    env = {**plugin_env(), "HORUS_BWRAP": "/nonexistent/bwrap"}
    worker = WorkerProcess(["chaos"], 1, env).start()
    try:
        yield worker
    finally:
        worker.stop()


def test_without_bubblewrap_a_job_that_needs_a_sandbox_is_refused_with_the_fix(
    attacker: Attacker, unboxed_worker: WorkerProcess, tmp_path: Path
) -> None:
    canary = tmp_path / "ran"
    boxed = parse_job({"runner_id": "chaos", "payload": f"touch {canary}", "context_id": BOXED})
    result = Client().wait(Client().submit(boxed), timeout=30)
    assert result.status is JobStatus.FAILED
    error = result.error or ""
    assert error.splitlines() == [error]
    assert "cannot sandbox jobs" in error
    assert "apt install bubblewrap" in error
    assert not canary.exists()
    # the tests' chaos grant says sandbox = "none": that job runs
    plain = parse_job({"runner_id": "chaos", "payload": f"touch {canary}"})
    assert Client().wait(Client().submit(plain), timeout=30).status is JobStatus.COMPLETED
    assert canary.exists()


def test_doctor_says_which_isolation_is_in_force() -> None:
    ok = run_horus("doctor")
    assert "sandbox: bubblewrap sandbox" in ok.stdout
    missing = run_horus("doctor", env={**os.environ, "HORUS_BWRAP": "/nonexistent/bwrap"})
    assert missing.returncode == 1
    assert "FAIL  sandbox: /nonexistent/bwrap is not installed" in missing.stdout
