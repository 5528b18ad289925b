"""The first-party runners, called in-process: their refusals and a real run of each."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from horus.job import JobStatus, parse_job
from horus.process import Outcome
from horus.registry import installed
from horus.runner import RunContext, Runner


def runner(name: str) -> Runner:
    return installed().runners[name]


def run(name: str, workdir: Path, payload: str, **fields: Any) -> Outcome:
    """Run a job with runner ``name`` in ``workdir``, as a worker would."""
    job = parse_job({"runner_id": name, "payload": payload, **fields})
    runner(name).validate(job.payload, job.params)
    ctx = RunContext(
        job=job, workdir=workdir, deadline=time.monotonic() + 30, cancelled=lambda: False
    )
    return runner(name).run(ctx)


# -- shell: validate ----------------------------------------------------------------------


def test_shell_accepts_a_script_with_or_without_a_shell_param() -> None:
    runner("shell").validate("echo hi", {})
    runner("shell").validate("echo hi", {"shell": "sh"})
    runner("shell").validate("echo hi", {"shell": "bash"})


def test_shell_refuses_unknown_params_and_points_at_env() -> None:
    with pytest.raises(ValueError, match=r"takes no params \['colour', 'size'\]") as info:
        runner("shell").validate("echo hi", {"colour": "red", "size": 1, "shell": "sh"})
    assert "--env" in str(info.value)


def test_shell_refuses_a_shell_it_does_not_know_and_lists_the_ones_it_does() -> None:
    with pytest.raises(ValueError, match=r"param shell must be one of \['bash', 'sh'\]"):
        runner("shell").validate("echo hi", {"shell": "zsh"})


def test_shell_refuses_an_empty_script() -> None:
    with pytest.raises(ValueError, match="empty script"):
        runner("shell").validate("   \n", {})


@pytest.mark.parametrize("value", [["sh"], {"name": "sh"}], ids=["list", "object"])
def test_shell_refuses_a_shell_param_that_is_not_a_string_with_value_error(value: Any) -> None:
    with pytest.raises(ValueError, match="param shell"):
        runner("shell").validate("echo hi", {"shell": value})


# -- python: validate ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    ["tests.fixtures:add", "pkg.mod:func", "mod:Class.method", "  pkg.mod:func\n"],
)
def test_python_accepts_a_callable_path(payload: str) -> None:
    runner("python").validate(payload, {})


@pytest.mark.parametrize(
    "payload",
    [
        "print('hi')",
        "pkg.mod.func",
        "pkg.mod:",
        ":func",
        "pkg mod:func",
        "1pkg:func",
        "pkg.mod:func()",
        "import os; os.system('x'):f",
    ],
)
def test_python_refuses_a_payload_that_is_not_a_callable_path(payload: str) -> None:
    with pytest.raises(ValueError, match=r"is not a callable path; write package\.module:function"):
        runner("python").validate(payload, {})


# -- running ------------------------------------------------------------------------------


def test_shell_runs_the_script_in_its_workdir(tmp_path: Path) -> None:
    outcome = run("shell", tmp_path, "echo hello; pwd; touch made-here; echo oops >&2")
    assert outcome.status is JobStatus.COMPLETED
    lines = outcome.output.splitlines()
    assert lines[0] == "hello"
    assert Path(lines[1]).resolve() == tmp_path.resolve()
    assert (tmp_path / "made-here").exists()
    assert outcome.error == "oops\n"
    assert outcome.exit_code == 0


def test_shell_reports_a_failing_script_with_its_exit_code(tmp_path: Path) -> None:
    outcome = run("shell", tmp_path, "echo nope >&2; exit 7")
    assert outcome.status is JobStatus.FAILED
    assert outcome.exit_code == 7
    assert outcome.error == "nope\n"


def test_shell_runs_bash_when_asked(tmp_path: Path) -> None:
    outcome = run("shell", tmp_path, 'echo "bash=${BASH_VERSION:+yes}"', params={"shell": "bash"})
    assert outcome.output == "bash=yes\n"


def test_shell_job_sees_its_env_vars_and_ids_but_not_the_callers_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKER_SECRET", "never-in-a-job")
    outcome = run(
        "shell",
        tmp_path,
        "env",
        env_vars={"GREETING": "hi there"},
        caller_id="alice",
        context_id="circle",
    )
    lines = outcome.output.splitlines()
    assert "GREETING=hi there" in lines
    assert "HORUS_RUNNER_ID=shell" in lines
    assert "HORUS_CALLER_ID=alice" in lines
    assert "HORUS_CONTEXT_ID=circle" in lines
    assert any(line.startswith("HORUS_JOB_ID=") for line in lines)
    assert f"HOME={tmp_path}" in lines
    assert "never-in-a-job" not in outcome.output


def test_a_jobs_env_vars_win_over_the_base_environment(tmp_path: Path) -> None:
    outcome = run("shell", tmp_path, 'echo "$PATH"', env_vars={"PATH": "/bin"})
    assert outcome.output == "/bin\n"


def test_python_calls_the_function_with_params_and_returns_its_json(tmp_path: Path) -> None:
    outcome = run("python", tmp_path, "tests.fixtures:add", params={"a": 1, "b": 2})
    assert outcome.status is JobStatus.COMPLETED, outcome.error
    assert json.loads(outcome.output) == {"sum": 3}
    assert outcome.error is not None
    assert "adding 1 2" in outcome.error  # prints go to the error stream


def test_python_awaits_an_async_function(tmp_path: Path) -> None:
    outcome = run("python", tmp_path, "tests.fixtures:run")
    assert outcome.status is JobStatus.COMPLETED, outcome.error
    assert json.loads(outcome.output) == {"status": "success", "rows_processed": 3}


def test_python_reports_an_exception_with_its_traceback(tmp_path: Path) -> None:
    outcome = run("python", tmp_path, "tests.fixtures:explode", params={"message": "kaboom"})
    assert outcome.status is JobStatus.FAILED
    assert outcome.exit_code == 1
    assert outcome.output == ""
    assert outcome.error is not None
    assert "RuntimeError: kaboom" in outcome.error
    assert "Traceback" in outcome.error


def test_python_refuses_a_return_value_that_is_not_json(tmp_path: Path) -> None:
    outcome = run("python", tmp_path, "tests.fixtures:not_json")
    assert outcome.status is JobStatus.FAILED
    assert outcome.error is not None
    assert "the return value is not JSON" in outcome.error


def test_python_reports_a_module_that_does_not_exist(tmp_path: Path) -> None:
    outcome = run("python", tmp_path, "tests.no_such_module:func")
    assert outcome.status is JobStatus.FAILED
    assert outcome.error is not None
    assert "No module named 'tests.no_such_module'" in outcome.error


def test_python_job_sees_its_env_vars(tmp_path: Path) -> None:
    outcome = run("python", tmp_path, "tests.fixtures:environment", env_vars={"GREETING": "hi"})
    assert outcome.status is JobStatus.COMPLETED, outcome.error
    env = json.loads(outcome.output)
    assert env["GREETING"] == "hi"
    assert env["HORUS_RUNNER_ID"] == "python"


def test_python_job_is_stopped_at_its_deadline(tmp_path: Path) -> None:
    """Takes about 1.5 s: the deadline plus the kill grace."""
    job = parse_job({"runner_id": "python", "payload": "asyncio:sleep", "params": {"delay": 30}})
    ctx = RunContext(
        job=job, workdir=tmp_path, deadline=time.monotonic() + 0.5, cancelled=lambda: False
    )
    start = time.monotonic()
    outcome = runner("python").run(ctx)
    assert outcome.status is JobStatus.TIMEOUT
    assert time.monotonic() - start < 5
