"""Flower tells the truth: a real `horus flower` against a real worker shows the runner in
the task name, a completed job's output and a failed job's error as text a person reads
(not the repr of a dict), a cancelled job as revoked, and metrics labelled by runner."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from horus import config
from horus.client import Client
from horus.job import Job, JobStatus, parse_job
from tests.harness import REPO, WorkerProcess, end_group, horus_cmd, wait_until

pytestmark = pytest.mark.integration

LOGIN = "horus:flower-test-password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Flower:
    proc: subprocess.Popen[bytes]
    port: int

    def get(self, path: str) -> bytes:
        """GET ``path`` from Flower's HTTP server, with its login."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            headers={"Authorization": "Basic " + base64.b64encode(LOGIN.encode()).decode()},
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            return bytes(reply.read())

    def json(self, path: str) -> Any:
        return json.loads(self.get(path))

    def post(self, path: str, body: dict[str, Any]) -> int:
        """POST JSON to ``path`` with the login; the HTTP status."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Authorization": "Basic " + base64.b64encode(LOGIN.encode()).decode(),
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return int(reply.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def metrics(self) -> str:
        try:
            return self.get("/metrics").decode()
        except OSError:
            return ""


@pytest.fixture(scope="module")
def flower(workers: dict[str, WorkerProcess]) -> Iterator[Flower]:
    """`horus flower` on a free port, listening to the workers' events."""
    port = free_port()
    log = config.load().home / "logs" / f"test-flower-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            horus_cmd("flower", "--port", str(port)),
            env={**os.environ, "FLOWER_BASIC_AUTH": LOGIN},
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    handle = Flower(proc, port)
    try:
        # A worker's heartbeat has reached Flower: its event receiver is listening.
        up = wait_until(
            lambda: proc.poll() is not None or online(handle.metrics()),
            timeout=60,
            step=0.5,
        )
        assert up, f"Flower did not come up: {log.read_text()[-3000:]}"
        assert proc.poll() is None, f"Flower exited: {log.read_text()[-3000:]}"
        yield handle
    finally:
        end_group(proc, grace=10)


def online(metrics: str) -> bool:
    """True if Flower's metrics show a worker online (it heard the worker's heartbeat)."""
    return any(
        line.startswith("flower_worker_online{") and line.endswith(" 1.0")
        for line in metrics.splitlines()
    )


def shown(flower: Flower, job_id: str, state: str) -> dict[str, Any]:
    """The task of ``job_id`` as Flower's API shows it, once it is in ``state``."""

    def task() -> dict[str, Any] | None:
        try:
            found = flower.json("/api/tasks").get(job_id)
        except urllib.error.URLError:
            return None
        return found if found and found.get("state") == state else None

    assert wait_until(lambda: task() is not None, timeout=30, step=0.3), (
        f"Flower never showed {job_id} as {state}: {flower.json('/api/tasks').get(job_id)}"
    )
    return dict(flower.json(f"/api/task/info/{job_id}"))


def test_flower_shows_the_runner_the_output_the_error_and_a_cancel(
    client: Client, flower: Flower
) -> None:
    done = client.run_job_and_await_result(Job.new("shell", "echo flower-sees-this"), timeout=30)
    assert done.status is JobStatus.COMPLETED
    bad = client.run_job_and_await_result(
        Job.new("shell", "echo broken-on-purpose >&2; exit 3"), timeout=30
    )
    assert bad.status is JobStatus.FAILED
    slow = client.submit(parse_job({"runner_id": "shell", "payload": "sleep 30", "timeout": 1}))
    assert client.wait(slow, timeout=30).status is JobStatus.TIMEOUT
    long = client.submit(Job.new("shell", "sleep 30"))
    assert wait_until(lambda: client.get_job_status(long) is JobStatus.RUNNING, timeout=30)
    queued = client.submit(Job.new("shell", "echo never"))  # behind `long`: concurrency 1
    assert client.cancel_job(queued) is JobStatus.CANCELLED
    client.cancel_job(long)
    assert client.wait(long, timeout=30).status is JobStatus.CANCELLED

    completed = shown(flower, done.job_id, "SUCCESS")
    assert completed["name"] == "horus.shell"
    assert "flower-sees-this" in completed["result"]
    assert "completed" in completed["result"]
    assert "{'" not in completed["result"]
    assert '{"' not in completed["result"]

    failed = shown(flower, bad.job_id, "FAILURE")
    assert failed["name"] == "horus.shell"
    exception = failed["exception"]
    assert "failed" in exception
    assert "exit code 3" in exception
    assert "broken-on-purpose" in exception
    assert "{'" not in exception
    assert '{"' not in exception

    timed_out = shown(flower, slow, "FAILURE")
    assert "timeout" in timed_out["exception"]
    assert "raise --timeout" in timed_out["exception"]

    cancelled = shown(flower, long, "REVOKED")
    assert cancelled["name"] == "horus.shell"
    # cancelled before it started: its message still reached the worker, which ran nothing
    never = shown(flower, queued, "REVOKED")
    assert never["name"] == "horus.shell"

    metrics = flower.metrics()
    lines = [line for line in metrics.splitlines() if line.startswith("flower_events_total{")]
    by_runner = [line for line in lines if 'task="horus.shell"' in line]
    assert any('type="task-succeeded"' in line for line in by_runner), lines
    assert any('type="task-failed"' in line for line in by_runner), lines
    assert any('type="task-revoked"' in line for line in by_runner), lines


def test_flower_serves_no_endpoint_that_sends_a_task_or_moves_a_worker(
    flower: Flower, workers: dict[str, WorkerProcess]
) -> None:
    worker = next(iter(flower.json("/api/workers")), "horus-shell@host")
    closed = [
        "/api/task/async-apply/horus.shell",
        "/api/task/apply/horus.shell",
        "/api/task/send-task/horus.shell",
        "/api/task/revoke/some-job",
        f"/api/worker/shutdown/{worker}",
        f"/api/worker/pool/shrink/{worker}",
    ]
    assert {path: flower.post(path, {"args": ["echo hi"]}) for path in closed} == dict.fromkeys(
        closed, 404
    )
    assert flower.json("/api/tasks") is not None  # reading still works
