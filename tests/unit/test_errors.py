"""Horus errors: one root, one-line messages, and JobFailed crossing Celery intact."""

from __future__ import annotations

import json
from typing import Any

import pytest

from horus import errors
from horus.errors import (
    BrokerUnavailable,
    ConfigError,
    HorusError,
    InvalidJob,
    JobFailed,
    JobNotFound,
    JobStateError,
    RunnerContractError,
    UnknownRunner,
)
from horus.job import JobResult, JobStatus

FAILED_RESULT: dict[str, Any] = JobResult(
    job_id="job-1",
    status=JobStatus.FAILED,
    output="partial output\n",
    error="Traceback (most recent call last):\n  ...\nRuntimeError: boom\n",
    exit_code=1,
).model_dump(mode="json")

#: every error that crosses Celery, built as the worker builds it
CROSSING: list[HorusError] = [
    JobFailed(FAILED_RESULT),
    JobFailed({**FAILED_RESULT, "status": "timeout", "exit_code": -15, "error": None}),
    JobFailed({"job_id": "job-2", "status": "cancelled", "error": "cancelled before it started"}),
    JobFailed({}),
]


def test_every_horus_error_derives_from_horus_error() -> None:
    classes = [
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type)
        and issubclass(obj, Exception)
        and obj.__module__ == errors.__name__
    ]
    assert {"HorusError", "ConfigError", "ServiceFailed", "JobFailed"} <= {
        c.__name__ for c in classes
    }
    assert all(issubclass(cls, HorusError) for cls in classes)


def test_unknown_runner_is_an_invalid_job() -> None:
    assert issubclass(UnknownRunner, InvalidJob)


@pytest.mark.parametrize("exc", CROSSING, ids=lambda e: type(e).__name__)
def test_an_error_crossing_celery_has_json_safe_args(exc: HorusError) -> None:
    json.dumps(exc.args)


@pytest.mark.parametrize("exc", CROSSING, ids=lambda e: type(e).__name__)
def test_an_error_crossing_celery_is_rebuilt_from_its_args_with_the_same_message(
    exc: HorusError,
) -> None:
    # Celery's JSON result backend stores exc.args and rebuilds the error as cls(*args).
    args = json.loads(json.dumps(exc.args))
    rebuilt = type(exc)(*args)
    assert type(rebuilt) is type(exc)
    assert str(rebuilt) == str(exc)
    assert rebuilt.args == exc.args


@pytest.mark.parametrize(
    "exc",
    [JobNotFound("job-1"), BrokerUnavailable("redis://h:6379", "Connection refused")],
    ids=lambda e: type(e).__name__,
)
def test_other_errors_the_task_can_raise_also_rebuild_with_the_same_message(
    exc: HorusError,
) -> None:
    assert str(type(exc)(*exc.args)) == str(exc)


def test_job_failed_keeps_the_result_it_was_given() -> None:
    exc = JobFailed(FAILED_RESULT)
    assert exc.result == FAILED_RESULT
    assert JobResult.model_validate(exc.result).status is JobStatus.FAILED


def test_job_failed_says_which_job_how_it_ended_and_the_last_error_line() -> None:
    assert str(JobFailed(FAILED_RESULT)) == "job job-1 failed (exit code 1): RuntimeError: boom"


def test_job_failed_without_error_or_exit_code_ends_without_a_dangling_colon() -> None:
    message = str(JobFailed({"job_id": "job-3", "status": "timeout"}))
    assert message == "job job-3 timeout"


def test_job_failed_message_is_one_line() -> None:
    for exc in CROSSING:
        assert "\n" not in str(exc)


def test_broker_unavailable_is_one_line_naming_horus_up_and_horus_broker_url() -> None:
    exc = BrokerUnavailable("redis://localhost:6379/0", "Connection refused")
    message = str(exc)
    assert "\n" not in message
    assert "redis://localhost:6379/0" in message
    assert "Connection refused" in message
    assert "`horus up`" in message
    assert "HORUS_BROKER_URL" in message
    assert exc.url == "redis://localhost:6379/0"


def test_broker_unavailable_without_a_reason_has_no_empty_parentheses() -> None:
    assert "()" not in str(BrokerUnavailable("redis://h"))


def test_unknown_runner_lists_the_installed_runners_sorted() -> None:
    exc = UnknownRunner("sehll", ["shell", "python", "echo"])
    message = str(exc)
    assert "'sehll'" in message
    assert "echo, python, shell" in message
    assert "\n" not in message
    assert exc.runner_id == "sehll"


def test_unknown_runner_with_nothing_installed_says_none() -> None:
    assert "installed runners are: none" in str(UnknownRunner("x", []))


def test_job_not_found_names_the_job_and_how_to_find_it() -> None:
    exc = JobNotFound("abc123")
    assert "'abc123'" in str(exc)
    assert "horus list" in str(exc)
    assert exc.job_id == "abc123"


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (HorusError, 1),
        (RunnerContractError, 1),
        (JobFailed, 1),
        (ConfigError, 2),
        (InvalidJob, 2),
        (UnknownRunner, 2),
        (BrokerUnavailable, 5),
        (JobNotFound, 6),
        (JobStateError, 7),
    ],
)
def test_each_error_has_the_documented_cli_exit_code(cls: type[HorusError], code: int) -> None:
    assert cls.exit_code == code
