"""The first-party runners and a third-party runner, run by real workers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from horus.client import Client
from horus.errors import InvalidJob, UnknownRunner
from horus.job import Job, JobStatus
from horus.runner import OUTPUT_CAP
from horus.store import keys, workers
from tests.conftest import WORKER_SECRET
from tests.harness import WorkerProcess, plugin_env, sleep_tag, tagged, wait_until

pytestmark = pytest.mark.integration


def shell(client: Client, script: str, **fields: object) -> Job:
    return Job.model_validate({"runner_id": "shell", "payload": script, **fields})


def test_shell_job_sees_its_env_vars_but_never_the_workers_environment(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    result = client.run_job_and_await_result(
        shell(client, "env", env_vars={"GREETING": "hi there"}), timeout=30
    )
    assert "GREETING=hi there" in result.output
    assert WORKER_SECRET not in result.output
    assert "HORUS_JOB_ID=" + result.job_id in result.output


def test_shell_job_runs_in_its_own_working_directory_removed_afterwards(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    result = client.run_job_and_await_result(shell(client, "pwd; touch made-here"), timeout=30)
    workdir = Path(result.output.strip())
    assert workdir != Path.cwd()
    assert not workdir.exists()


def test_shell_timeout_kills_the_whole_process_group_grandchildren_included(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    tag = sleep_tag()
    job_id = client.submit(shell(client, f"(sleep {tag} & wait) & sleep 60", timeout=2))
    assert wait_until(lambda: tagged(tag), timeout=20)
    result = client.wait(job_id, timeout=30)
    assert result.status is JobStatus.TIMEOUT
    assert "timeout" in (result.error or "")
    assert wait_until(lambda: not tagged(tag), timeout=5)


def zombies_of(pid: int) -> list[int]:
    """The children of process ``pid`` that exited and were never reaped."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue  # reaped meanwhile
            if state == "Z":
                found.append(int(child))
    return found


def test_a_worker_leaves_no_zombies_of_the_background_processes_its_jobs_left(
    client: Client, workers: dict[str, WorkerProcess], tmp_path: Path
) -> None:
    """The worker's main process adopts whatever a job left running (it is a subreaper, to
    learn how a dead pool process's job ended); it must reap them once they are ended."""
    from horus.execution.boot import REAP_INTERVAL

    tags = [sleep_tag() for _ in range(3)]
    for tag in tags:
        job = shell(client, f"sleep {tag} & echo started")
        assert client.run_job_and_await_result(job, timeout=30).output == "started\n"
    assert wait_until(lambda: not any(tagged(tag) for tag in tags), 5)
    main = workers["shell"].proc
    assert main is not None
    # a sandbox's init, once its job ended, is the main process's to reap (it reaps what
    # it adopted every REAP_INTERVAL seconds)
    assert wait_until(lambda: zombies_of(main.pid) == [], timeout=REAP_INTERVAL + 5)


def test_shell_output_is_capped_and_the_truncation_is_marked(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    script = f"head -c {OUTPUT_CAP + 5000} /dev/zero | tr '\\0' a"
    result = client.run_job_and_await_result(shell(client, script), timeout=60)
    assert result.status is JobStatus.COMPLETED
    assert result.output_truncated
    assert result.output.startswith("a" * OUTPUT_CAP)
    assert "output truncated, 5000 more bytes dropped" in result.output


def test_random_bytes_on_stdout_keep_the_cap_in_bytes_as_stored(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    """Bytes that are not UTF-8 become U+FFFD (three bytes) and control characters JSON
    escapes (up to six): the cap still holds for what the store keeps."""
    script = "head -c 20000000 /dev/urandom"
    result = client.run_job_and_await_result(shell(client, script), timeout=60)
    assert result.status is JobStatus.COMPLETED
    assert result.output_truncated
    stored = client.store.redis.hget(keys.job(result.job_id), "result") or ""
    assert len(stored.encode()) < OUTPUT_CAP + 4096


def test_python_job_calls_the_function_with_params_and_returns_its_json(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    job = (
        Job.builder()
        .runner_id("python")
        .payload("tests.fixtures:add")
        .params({"a": 40, "b": 2})
        .build()
    )
    result = client.run_job_and_await_result(job, timeout=30)
    assert result.status is JobStatus.COMPLETED, result.error
    assert result.json_output() == {"sum": 42}
    assert "adding 40 2" in (result.error or "")


def test_python_job_may_be_an_async_function_returning_a_dict(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    result = client.run_job_and_await_result(Job.new("python", "tests.fixtures:run"), timeout=30)
    assert result.json_output() == {"status": "success", "rows_processed": 3}


def test_python_job_that_raises_is_failed_with_the_traceback(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    job = Job.model_validate(
        {"runner_id": "python", "payload": "tests.fixtures:explode", "params": {"message": "kaput"}}
    )
    result = client.run_job_and_await_result(job, timeout=30)
    assert result.status is JobStatus.FAILED
    assert "Traceback" in (result.error or "")
    assert "RuntimeError: kaput" in (result.error or "")
    assert "child.py" not in (result.error or "")


def test_python_job_returning_something_not_json_is_failed_with_a_clear_reason(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    result = client.run_job_and_await_result(
        Job.new("python", "tests.fixtures:not_json"), timeout=30
    )
    assert result.status is JobStatus.FAILED
    assert "not JSON" in (result.error or "")


def test_python_job_does_not_inherit_the_workers_environment(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    job = Job.model_validate(
        {
            "runner_id": "python",
            "payload": "tests.fixtures:environment",
            "env_vars": {"ONLY_THIS": "1"},
        }
    )
    env = client.run_job_and_await_result(job, timeout=30).json_output()
    assert env["ONLY_THIS"] == "1"
    assert "HORUS_HOME" not in env
    assert "WORKER_SECRET" not in env


def test_unknown_runner_is_refused_at_enqueue_naming_the_installed_runners(
    client: Client, workers: dict[str, WorkerProcess]
) -> None:
    with pytest.raises(UnknownRunner, match=r"installed runners are: .*python.*shell"):
        client.submit(Job.new("nosuchrunner", "x"))


def test_payload_the_runner_cannot_run_is_refused_at_enqueue(client: Client) -> None:
    with pytest.raises(InvalidJob, match="not a callable path"):
        client.submit(Job.new("python", "print('hi')"))


@pytest.fixture(scope="module")
def echo_worker(embedded_redis: object) -> Iterator[WorkerProcess]:
    """A worker with a third-party runner installed only on its own PYTHONPATH."""
    worker = WorkerProcess(["echo"], 1, plugin_env()).start()
    yield worker
    worker.stop()


def test_third_party_runner_registered_by_entry_point_is_served_by_a_worker(
    client: Client, echo_worker: WorkerProcess
) -> None:
    # This process does not have the plugin: it knows the runner from the live worker.
    assert "echo" in client.runners()
    assert echo_worker.proc is not None
    assert echo_worker.proc.pid in [
        info["pid"] for info in workers.live(client.store).values() if "echo" in info["runners"]
    ]
    result = client.run_job_and_await_result(Job.new("echo", "suroh"), timeout=30)
    assert result.status is JobStatus.COMPLETED
    assert result.output == "horus"
