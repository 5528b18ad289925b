"""The Job model: construction, defaults, every refusal, JSON round trip."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from horus.errors import InvalidJob
from horus.job import (
    DEFAULT_TIMEOUT,
    MAX_ENV_BYTES,
    MAX_ENV_VARS,
    MAX_PARAMS_BYTES,
    MAX_PARAMS_DEPTH,
    MAX_PAYLOAD_BYTES,
    MAX_TIMEOUT,
    Job,
    JobResult,
    JobStatus,
    Signature,
    parse_job,
)
from tests.strategies import clean

POSIX_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def nested(depth: int) -> dict[str, Any]:
    """A params dict nested exactly ``depth`` levels deep."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def refusal(**fields: Any) -> str:
    """The message of parse_job refusing a shell job with ``fields`` changed."""
    with pytest.raises(InvalidJob) as info:
        parse_job({"runner_id": "shell", "payload": "echo hi", **fields})
    return str(info.value)


# -- construction -------------------------------------------------------------------------


def test_builder_sets_every_field_it_is_given() -> None:
    job = (
        Job.builder()
        .runner_id("shell")
        .payload("echo hello")
        .timeout(300)
        .env_vars({"GREETING": "hi"})
        .caller_id("alice@example.org")
        .context_id("circle-1")
        .params({"shell": "bash"})
        .dependencies(["job-1"])
        .max_attempts(3)
        .tags(["nightly", "team/data"])
        .signature(Signature(public_key="pk", signature="sig"))
        .build()
    )
    assert job.runner_id == "shell"
    assert job.payload == "echo hello"
    assert job.timeout == 300
    assert job.env_vars == {"GREETING": "hi"}
    assert job.caller_id == "alice@example.org"
    assert job.context_id == "circle-1"
    assert job.params == {"shell": "bash"}
    assert job.dependencies == ("job-1",)
    assert job.max_attempts == 3
    assert job.tags == ("nightly", "team/data")
    assert job.signatures == (Signature(public_key="pk", signature="sig"),)


def test_builder_keeps_its_own_copy_of_env_vars() -> None:
    env = {"A": "1"}
    builder = Job.builder().runner_id("shell").payload("env").env_vars(env)
    env["B"] = "2"
    assert builder.build().env_vars == {"A": "1"}


def test_builder_refuses_an_invalid_job_with_invalid_job() -> None:
    with pytest.raises(InvalidJob, match="payload"):
        Job.builder().runner_id("shell").build()


def test_new_makes_a_job_from_runner_and_payload() -> None:
    job = Job.new("shell", "echo hello")
    assert (job.runner_id, job.payload) == ("shell", "echo hello")


def test_a_new_job_has_the_documented_defaults() -> None:
    before = datetime.now(UTC)
    job = Job.new("shell", "echo hello")
    after = datetime.now(UTC)
    assert job.timeout == DEFAULT_TIMEOUT == 60
    assert job.status is JobStatus.PENDING
    assert job.env_vars == {}
    assert job.params == {}
    assert job.signatures == ()
    assert job.dependencies == ()
    assert job.tags == ()
    assert job.max_attempts == 1
    assert job.caller_id is None
    assert job.context_id is None
    assert job.created_at.utcoffset() == timedelta(0)
    assert before <= job.created_at <= after


def test_every_new_job_gets_its_own_id() -> None:
    ids = {Job.new("shell", "true").id for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_a_given_id_is_kept() -> None:
    assert Job.builder().id("my-job.1").runner_id("shell").payload("x").build().id == "my-job.1"


def test_jobs_are_frozen() -> None:
    job = Job.new("shell", "echo hello")
    with pytest.raises(ValidationError):
        job.timeout = 5
    with pytest.raises(ValidationError):
        job.payload = "rm -rf /"
    assert job.timeout == 60
    assert job.payload == "echo hello"


def test_parse_job_accepts_json_text_and_bytes() -> None:
    text = json.dumps({"runner_id": "shell", "payload": "echo hi", "timeout": 5})
    assert parse_job(text).timeout == 5
    assert parse_job(text.encode()).timeout == 5


def test_parse_job_refuses_text_that_is_not_json_in_one_line() -> None:
    with pytest.raises(InvalidJob) as info:
        parse_job("{not json")
    assert str(info.value).startswith("invalid job: ")
    assert "\n" not in str(info.value)


# -- refusals -----------------------------------------------------------------------------

#: (case, changed fields, field the message names, text showing the fix or the limit)
REFUSALS: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown field", {"colour": "red"}, "colour", "remove it"),
    ("runner_id with capitals", {"runner_id": "Shell"}, "runner_id", "horus runners"),
    ("runner_id with a space", {"runner_id": "my runner"}, "runner_id", "lowercase letters"),
    ("runner_id empty", {"runner_id": ""}, "runner_id", "lowercase letters"),
    ("env name starting with a digit", {"env_vars": {"1BAD": "x"}}, "env_vars", "POSIX"),
    ("env name with a dash", {"env_vars": {"MY-VAR": "x"}}, "env_vars", "letters, digits"),
    ("env name with '='", {"env_vars": {"A=B": "x"}}, "env_vars", "letters, digits"),
    ("env name empty", {"env_vars": {"": "x"}}, "env_vars", "letters, digits"),
    (
        "payload over the size limit",
        {"payload": "x" * (MAX_PAYLOAD_BYTES + 1)},
        "payload",
        "by reference",
    ),
    ("empty payload", {"payload": ""}, "payload", "at least 1 character"),
    ("NUL byte in payload", {"payload": "echo a\x00b"}, "payload", "remove it"),
    (
        "too many env vars",
        {"env_vars": {f"V{i}": "x" for i in range(MAX_ENV_VARS + 1)}},
        "env_vars",
        f"limit of {MAX_ENV_VARS}",
    ),
    (
        "env vars too large",
        {"env_vars": {"BIG": "x" * MAX_ENV_BYTES}},
        "env_vars",
        f"limit of {MAX_ENV_BYTES}",
    ),
    ("NUL byte in an env value", {"env_vars": {"A": "a\x00b"}}, "env_vars", "remove it"),
    (
        "params nested too deep",
        {"params": nested(MAX_PARAMS_DEPTH + 1)},
        "params",
        f"nests deeper than {MAX_PARAMS_DEPTH} levels; flatten it",
    ),
    (
        "params too big",
        {"params": {"blob": "x" * MAX_PARAMS_BYTES}},
        "params",
        f"limit of {MAX_PARAMS_BYTES}",
    ),
    ("params with NaN", {"params": {"x": float("nan")}}, "params", "no NaN"),
    ("timeout 0", {"timeout": 0}, "timeout", f"from 1 to {MAX_TIMEOUT}"),
    ("timeout negative", {"timeout": -5}, "timeout", f"from 1 to {MAX_TIMEOUT}"),
    ("timeout over a day", {"timeout": MAX_TIMEOUT + 1}, "timeout", f"from 1 to {MAX_TIMEOUT}"),
    ("timeout a fraction", {"timeout": 1.5}, "timeout", "whole seconds"),
    ("tag with a space", {"tags": ["two words"]}, "tags", "must match"),
    ("tag starting with a dash", {"tags": ["-x"]}, "tags", "must match"),
    ("max_attempts 0", {"max_attempts": 0}, "max_attempts", "whole number from 1"),
    ("bad id", {"id": "has space"}, "id", "letters, digits"),
    ("bad caller", {"caller_id": "a b"}, "caller_id", "letters, digits"),
]


@pytest.mark.parametrize(
    ("fields", "field", "fix"),
    [pytest.param(f, n, x, id=case) for case, f, n, x in REFUSALS],
)
def test_each_refusal_is_one_line_naming_the_field_and_the_fix(
    fields: dict[str, Any], field: str, fix: str
) -> None:
    message = refusal(**fields)
    assert message.startswith("invalid job: ")
    assert "\n" not in message
    assert re.search(rf"(^|: |; ){re.escape(field)}[.:]", message), message
    assert fix in message


def test_a_bad_dependency_id_is_refused_naming_the_dependency() -> None:
    message = refusal(dependencies=["ok-1", "not an id"])
    assert "\n" not in message
    assert "dependencies:" in message
    assert "'not an id'" in message


def test_a_bad_dependency_id_message_says_what_a_job_id_looks_like() -> None:
    assert "letters, digits" in refusal(dependencies=["not an id"])


def test_a_refusal_names_every_bad_field_at_once() -> None:
    message = refusal(runner_id="BAD", timeout=0, colour="red")
    assert "runner_id:" in message
    assert "timeout:" in message
    assert "colour:" in message
    assert "\n" not in message


def test_limits_themselves_are_accepted() -> None:
    job = parse_job(
        {
            "runner_id": "shell",
            "payload": "x" * MAX_PAYLOAD_BYTES,
            "timeout": MAX_TIMEOUT,
            "env_vars": {f"V{i}": "x" for i in range(MAX_ENV_VARS)},
            "params": nested(MAX_PARAMS_DEPTH),
        }
    )
    assert job.params == nested(MAX_PARAMS_DEPTH)
    assert job.timeout == MAX_TIMEOUT
    assert parse_job({"runner_id": "shell", "payload": "x", "timeout": 1}).timeout == 1


def test_payload_size_is_counted_in_utf8_bytes_not_characters() -> None:
    # 'é' is two bytes: half the limit in characters is exactly the limit in bytes
    assert parse_job({"runner_id": "shell", "payload": "é" * (MAX_PAYLOAD_BYTES // 2)})
    assert "payload" in refusal(payload="é" * (MAX_PAYLOAD_BYTES // 2 + 1))


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"env_vars": {"A\n": "x"}}, id="env name"),
        pytest.param({"tags": ["nightly\n"]}, id="tag"),
        pytest.param({"dependencies": ["job-1\n"]}, id="dependency"),
    ],
)
def test_a_name_with_a_trailing_newline_is_refused(fields: dict[str, Any]) -> None:
    refusal(**fields)


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"bad\nfield": 1}, id="unknown field"),
        pytest.param({"env_vars": {"A\nB": 1}}, id="env var with a non-string value"),
    ],
)
def test_a_refusal_stays_one_line_whatever_the_field_names_contain(
    fields: dict[str, Any],
) -> None:
    assert "\n" not in refusal(**fields)


# -- properties ---------------------------------------------------------------------------

env_names = st.from_regex(POSIX_NAME, fullmatch=True).filter(lambda s: len(s) <= 40)
env_values = st.text(clean, max_size=20)


@given(st.dictionaries(env_names, env_values, max_size=20))
def test_any_posix_env_names_with_small_values_are_accepted(env: dict[str, str]) -> None:
    job = parse_job({"runner_id": "shell", "payload": "env", "env_vars": env})
    assert job.env_vars == env


@given(st.text(max_size=20).filter(lambda s: not POSIX_NAME.fullmatch(s)))
def test_any_env_name_that_is_not_a_posix_name_is_refused(name: str) -> None:
    with pytest.raises(InvalidJob, match="env_vars"):
        parse_job({"runner_id": "shell", "payload": "env", "env_vars": {name: "x"}})


@given(
    env=st.dictionaries(env_names, env_values, max_size=5),
    params=st.dictionaries(
        st.text(clean, max_size=10),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(clean, max_size=10),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(clean), inner),
            max_leaves=10,
        ),
        max_size=5,
    ),
    timeout=st.integers(1, MAX_TIMEOUT),
    tags=st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True), max_size=3),
)
def test_any_valid_job_survives_a_json_round_trip(
    env: dict[str, str], params: dict[str, Any], timeout: int, tags: list[str]
) -> None:
    job = parse_job(
        {
            "runner_id": "shell",
            "payload": "echo hi",
            "env_vars": env,
            "params": params,
            "timeout": timeout,
            "tags": tags,
        }
    )
    assert parse_job(job.model_dump_json()) == job


def test_a_job_with_every_field_survives_a_json_round_trip() -> None:
    job = parse_job(
        {
            "id": f"job-{uuid.uuid4().hex}",
            "runner_id": "python",
            "payload": "pkg.mod:func",
            "timeout": 300,
            "env_vars": {"A": "1"},
            "signatures": [{"public_key": "pk", "signature": "sig"}],
            "caller_id": "alice",
            "context_id": "circle",
            "params": {"n": 1.5, "xs": [1, "two", None], "d": {"e": True}},
            "dependencies": ["other-job"],
            "max_attempts": 2,
            "tags": ["a", "b"],
            "status": "running",
        }
    )
    again = parse_job(job.model_dump_json())
    assert again == job
    assert again.created_at.utcoffset() == timedelta(0)


# -- status and result --------------------------------------------------------------------


def test_only_completed_failed_timeout_and_cancelled_are_terminal() -> None:
    terminal = {s for s in JobStatus if s.terminal}
    assert terminal == {
        JobStatus.COMPLETED,
        JobStatus.FAILED,
        JobStatus.TIMEOUT,
        JobStatus.CANCELLED,
    }
    assert not JobStatus.PENDING.terminal
    assert not JobStatus.RUNNING.terminal


def test_status_values_are_the_lowercase_names_users_type() -> None:
    assert [s.value for s in JobStatus] == [
        "pending",
        "running",
        "completed",
        "failed",
        "timeout",
        "cancelled",
    ]
    assert JobStatus("timeout") is JobStatus.TIMEOUT
    assert str(JobStatus.FAILED) == "failed"


def test_result_json_output_parses_the_output() -> None:
    result = JobResult(job_id="j", status=JobStatus.COMPLETED, output='{"sum": 3}')
    assert result.json_output() == {"sum": 3}


def test_result_json_output_raises_on_output_that_is_not_json() -> None:
    result = JobResult(job_id="j", status=JobStatus.COMPLETED, output="hello\n")
    with pytest.raises(json.JSONDecodeError):
        result.json_output()


def test_a_result_has_empty_output_and_no_error_by_default() -> None:
    result = JobResult(job_id="j", status=JobStatus.FAILED)
    assert result.output == ""
    assert result.error is None
    assert result.exit_code is None
    assert result.attempt == 1
    assert result.output_truncated is False
