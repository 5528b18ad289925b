"""The shell runner, run in this process as a worker would run it: its params, its
refusals, and real runs of /bin/sh and bash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from horus import InvalidJob, JobStatus, parse_job
from horus.registry import installed, validate
from horus.testing import run_locally


def check(payload: str, params: dict[str, Any]) -> None:
    job = parse_job({"runner_id": "shell", "payload": payload, "params": params})
    validate(installed().get("shell"), job)


def test_shell_accepts_a_script_with_or_without_a_shell_param() -> None:
    check("echo hi", {})
    check("echo hi", {"shell": "sh"})
    check("echo hi", {"shell": "bash"})


def test_shell_refuses_a_param_it_does_not_declare_naming_the_runner_and_the_field() -> None:
    with pytest.raises(InvalidJob, match=r"invalid job for runner 'shell': params: colour") as e:
        check("echo hi", {"colour": "red", "shell": "sh"})
    assert "the shell runner's params are: shell" in str(e.value)


@pytest.mark.parametrize("value", ["zsh", ["sh"], {"name": "sh"}], ids=["zsh", "list", "object"])
def test_shell_refuses_a_shell_it_does_not_know(value: Any) -> None:
    with pytest.raises(InvalidJob, match=r"params: shell: .*'sh' or 'bash'"):
        check("echo hi", {"shell": value})


def test_shell_refuses_an_empty_script() -> None:
    with pytest.raises(InvalidJob, match="empty script"):
        check("   \n", {})


def test_shell_runs_the_script_in_its_workdir(tmp_path: Path) -> None:
    outcome = run_locally("shell", "echo hello; pwd; touch made-here; echo oops >&2", tmp_path)
    assert outcome.status is JobStatus.COMPLETED
    lines = outcome.output.splitlines()
    assert lines[0] == "hello"
    assert Path(lines[1]).resolve() == tmp_path.resolve()
    assert (tmp_path / "made-here").exists()
    assert outcome.error == "oops\n"
    assert outcome.exit_code == 0


def test_shell_reports_a_failing_script_with_its_exit_code(tmp_path: Path) -> None:
    outcome = run_locally("shell", "echo nope >&2; exit 7", tmp_path)
    assert outcome.status is JobStatus.FAILED
    assert outcome.exit_code == 7
    assert outcome.error == "nope\n"


def test_shell_runs_bash_when_asked(tmp_path: Path) -> None:
    script = 'echo "bash=${BASH_VERSION:+yes}"'
    assert run_locally("shell", script, tmp_path, params={"shell": "bash"}).output == "bash=yes\n"
    assert run_locally("shell", script, tmp_path).output == "bash=\n"


def test_shell_job_sees_its_env_vars_and_ids_but_not_the_callers_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKER_SECRET", "never-in-a-job")
    outcome = run_locally(
        "shell",
        "env",
        tmp_path,
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
    outcome = run_locally("shell", 'echo "$PATH"', tmp_path, env_vars={"PATH": "/bin"})
    assert outcome.output == "/bin\n"
