"""The python runner, run in this process as a worker would run it: its payload check and
real calls in a child interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pydantic.version
import pytest

from horus import InvalidJob, JobStatus, parse_job
from horus.errors import RunnerContractError
from horus.registry import configure, installed, validate
from horus.testing import run_locally

FIXTURES = "pyrunner_fixtures"


def check(payload: str) -> None:
    validate(installed().get("python"), parse_job({"runner_id": "python", "payload": payload}))


@pytest.mark.parametrize(
    "payload", [f"{FIXTURES}:add", "pkg.mod:func", "mod:Class.method", "  pkg.mod:func\n"]
)
def test_python_accepts_a_callable_path(payload: str) -> None:
    check(payload)


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
    with pytest.raises(InvalidJob, match=r"is not a callable path; write package\.module:function"):
        check(payload)


def test_python_calls_the_function_with_params_and_returns_its_json(tmp_path: Path) -> None:
    outcome = run_locally("python", f"{FIXTURES}:add", tmp_path, params={"a": 1, "b": 2})
    assert outcome.status is JobStatus.COMPLETED, outcome.error
    assert json.loads(outcome.output) == {"sum": 3}
    assert outcome.error is not None
    assert "adding 1 2" in outcome.error  # prints go to the error stream


def test_python_awaits_an_async_function(tmp_path: Path) -> None:
    outcome = run_locally("python", f"{FIXTURES}:run", tmp_path)
    assert outcome.status is JobStatus.COMPLETED, outcome.error
    assert json.loads(outcome.output) == {"status": "success", "rows_processed": 3}


def test_python_reports_an_exception_with_its_traceback(tmp_path: Path) -> None:
    outcome = run_locally("python", f"{FIXTURES}:explode", tmp_path, params={"message": "kaboom"})
    assert outcome.status is JobStatus.FAILED
    assert outcome.exit_code == 1
    assert outcome.output == ""
    assert outcome.error is not None
    assert "RuntimeError: kaboom" in outcome.error
    assert "Traceback" in outcome.error


def test_python_refuses_a_return_value_that_is_not_json(tmp_path: Path) -> None:
    outcome = run_locally("python", f"{FIXTURES}:not_json", tmp_path)
    assert outcome.status is JobStatus.FAILED
    assert outcome.error is not None
    assert "the return value is not JSON" in outcome.error


def test_python_reports_a_module_that_does_not_exist(tmp_path: Path) -> None:
    outcome = run_locally("python", "no_such_module_here:func", tmp_path)
    assert outcome.status is JobStatus.FAILED
    assert outcome.error is not None
    assert "No module named 'no_such_module_here'" in outcome.error


def test_python_job_sees_its_env_vars(tmp_path: Path) -> None:
    outcome = run_locally(
        "python", f"{FIXTURES}:environment", tmp_path, env_vars={"GREETING": "hi"}
    )
    assert outcome.status is JobStatus.COMPLETED, outcome.error
    env = json.loads(outcome.output)
    assert env["GREETING"] == "hi"
    assert env["HORUS_RUNNER_ID"] == "python"


def test_python_job_is_stopped_at_its_deadline(tmp_path: Path) -> None:
    """Takes about 2 s: the deadline plus the kill grace."""
    start = time.monotonic()
    outcome = run_locally("python", "asyncio:sleep", tmp_path, params={"delay": 30}, timeout=1)
    assert outcome.status is JobStatus.TIMEOUT
    assert time.monotonic() - start < 6


def test_a_sync_call_starts_without_asyncio_or_traceback(tmp_path: Path) -> None:
    # the interpreter of every python job imports them only when the call needs them
    outcome = run_locally("python", "pyrunner_light:loaded", tmp_path)
    assert outcome.status is JobStatus.COMPLETED, outcome.error
    loaded = set(json.loads(outcome.output))
    assert not loaded & {"asyncio", "inspect", "traceback"}
    # ./dev installs Horus editable as plain paths: no import hook (and its pathlib,
    # urllib, ipaddress...) is loaded at the start of every job's interpreter
    assert not [name for name in loaded if name.startswith("__editable__")]


def test_modules_the_runner_preloads_are_imported_before_the_call(tmp_path: Path) -> None:
    seen = run_locally("python", f"{FIXTURES}:loaded", tmp_path, params={"name": "decimal"})
    assert json.loads(seen.output) is False  # not by itself
    preloaded = run_locally(
        "python",
        f"{FIXTURES}:loaded",
        tmp_path,
        params={"name": "decimal"},
        config={"preload": ["decimal"]},
    )
    assert json.loads(preloaded.output) is True


def test_a_preload_that_does_not_import_is_left_for_the_job_to_meet(tmp_path: Path) -> None:
    outcome = run_locally(
        "python", f"{FIXTURES}:add", tmp_path, params={"a": 1, "b": 2}, config={"preload": ["nope"]}
    )
    assert outcome.status is JobStatus.COMPLETED, outcome.error


@pytest.mark.parametrize("name", ["1bad", "a b", "os;rm", ""])
def test_a_preload_that_is_not_a_module_name_is_refused_naming_the_fix(name: str) -> None:
    with pytest.raises(
        RunnerContractError, match=r"runners.toml \[python\]: .*write package\.module"
    ):
        configure(installed().get("python"), {"preload": [name]})


def test_a_job_has_the_exit_quit_and_help_of_a_normal_interpreter(tmp_path: Path) -> None:
    outcome = run_locally("python", f"{FIXTURES}:site_builtins", tmp_path)
    assert outcome.status is JobStatus.COMPLETED, outcome.error
    script = (
        "import builtins as b; print(repr(b.exit), repr(b.quit), type(b.help).__name__, sep='\\n')"
    )
    normal = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, text=True, check=True
    )
    assert json.loads(outcome.output) == normal.stdout.splitlines()


def test_a_job_imports_the_installed_packages_of_the_worker(tmp_path: Path) -> None:
    outcome = run_locally("python", "pydantic.version:version_short", tmp_path)
    assert outcome.status is JobStatus.COMPLETED, outcome.error
    assert json.loads(outcome.output) == pydantic.version.version_short()
