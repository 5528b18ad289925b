"""The job and its result: pure data, validated by pydantic.

A :class:`Job` carries the fields of the seed formats: ``id, runner_id, payload, timeout,
env_vars, signatures, created_at, status`` (seed 000), ``caller_id, context_id`` (seed 001),
``params, dependencies`` (seed 002) and ``max_attempts, tags`` (seed 003). Jobs are frozen:
what was validated is what runs.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Collection
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from horus import jsontext
from horus.errors import InvalidJob, one_line

#: default job timeout in seconds (seed 000: "Default: 60 seconds")
DEFAULT_TIMEOUT = 60
#: the longest timeout a job may ask for, in seconds (one day)
MAX_TIMEOUT = 86_400
MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_PARAMS_BYTES = 1024 * 1024
MAX_PARAMS_DEPTH = 32
MAX_ENV_VARS = 128
MAX_ENV_BYTES = 64 * 1024
MAX_ATTEMPTS = 100
MAX_TAGS = 32
MAX_DEPENDENCIES = 100
MAX_SIGNATURES = 16
#: characters of one sealed secret (base64 of the sealed box of a 4 KiB value)
MAX_SEALED_CHARS = 5600

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
RUNNER_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
PRINCIPAL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+/=-]{0,255}$"
TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: the env var names only Horus sets in a job (HORUS_JOB_ID...): a job may not set them
RESERVED_ENV_PREFIX = "HORUS_"


class JobStatus(StrEnum):
    """Where a job is in its life: pending -> running -> one of the terminal states."""

    #: recorded, queued, not yet started by a worker
    PENDING = "pending"
    #: a worker is executing it
    RUNNING = "running"
    #: finished successfully (exit code 0, or the callable returned)
    COMPLETED = "completed"
    #: finished unsuccessfully, or refused by the worker
    FAILED = "failed"
    #: killed at its timeout
    TIMEOUT = "timeout"
    #: cancelled by a user before or while it ran
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """True for the states a job never leaves."""
        return self not in (JobStatus.PENDING, JobStatus.RUNNING)


class Signature(BaseModel):
    """One signature over a job's canonical bytes (seed 000's ``Signature``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    public_key: str = Field(max_length=256)
    signature: str = Field(max_length=512)
    algorithm: Literal["ed25519"] = "ed25519"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


def _check_env_names(names: Collection[str], what: str) -> None:
    """At most MAX_ENV_VARS names, each a POSIX environment variable name."""
    if len(names) > MAX_ENV_VARS:
        raise ValueError(f"{len(names)} {what}s, over the limit of {MAX_ENV_VARS}")
    for name in names:
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(
                f"{what} name {name!r} is not a POSIX name; use letters, digits and _ "
                "and do not start with a digit"
            )
        if name.upper().startswith(RESERVED_ENV_PREFIX):
            raise ValueError(
                f"{what} name {name!r} is reserved: Horus sets the {RESERVED_ENV_PREFIX}* "
                "variables of a job itself; rename it"
            )


class Job(BaseModel):
    """A unit of work for one runner."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=_new_id, pattern=ID_PATTERN)
    runner_id: str = Field(pattern=RUNNER_PATTERN)
    payload: str = Field(min_length=1)
    timeout: int = Field(default=DEFAULT_TIMEOUT, ge=1, le=MAX_TIMEOUT)
    env_vars: dict[str, str] = Field(default_factory=dict)
    signatures: tuple[Signature, ...] = Field(default=(), max_length=MAX_SIGNATURES)
    created_at: datetime = Field(default_factory=_utcnow)
    status: JobStatus = JobStatus.PENDING
    caller_id: str | None = Field(default=None, pattern=PRINCIPAL_PATTERN)
    context_id: str | None = Field(default=None, pattern=PRINCIPAL_PATTERN)
    params: dict[str, Any] = Field(default_factory=dict)
    dependencies: tuple[str, ...] = Field(default=(), max_length=MAX_DEPENDENCIES)
    max_attempts: int = Field(default=1, ge=1, le=MAX_ATTEMPTS)
    tags: tuple[str, ...] = Field(default=(), max_length=MAX_TAGS)
    #: when the signatures stop being valid; a worker never starts the job after it
    expires_at: datetime | None = None
    #: env vars sealed to the workers' key: name -> base64 sealed box (see horus.trust.sealing)
    secrets: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _clean_text(cls, data: Any) -> Any:
        if isinstance(data, dict):  # params get their own, tighter, depth limit below
            jsontext.check_tree({k: v for k, v in data.items() if k != "params"}, what="")
        return data

    @model_validator(mode="after")
    def _times_and_names(self) -> Self:
        if self.expires_at is not None and self.expires_at <= self.created_at:
            raise ValueError("expires_at is not after created_at; give a later expiry")
        both = set(self.secrets) & set(self.env_vars)
        if both:
            raise ValueError(
                f"{sorted(both)} given both as env var and as secret; give each name once"
            )
        return self

    @field_validator("created_at", "expires_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # a time without a zone is taken as UTC
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @field_validator("payload")
    @classmethod
    def _payload_size(cls, value: str) -> str:
        size = len(value.encode("utf-8"))
        if size > MAX_PAYLOAD_BYTES:
            raise ValueError(
                f"payload is {size} bytes, over the limit of {MAX_PAYLOAD_BYTES}; "
                "pass large data by reference (a path or URL) instead"
            )
        return value

    @field_validator("env_vars")
    @classmethod
    def _env_names_and_size(cls, value: dict[str, str]) -> dict[str, str]:
        _check_env_names(value.keys(), "env var")
        total = 0
        for name, val in value.items():
            total += len(name) + len(val.encode("utf-8"))
        if total > MAX_ENV_BYTES:
            raise ValueError(f"env vars take {total} bytes, over the limit of {MAX_ENV_BYTES}")
        return value

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, value: dict[str, str]) -> dict[str, str]:
        _check_env_names(value.keys(), "secret")
        for name, sealed in value.items():
            if len(sealed) > MAX_SEALED_CHARS:
                raise ValueError(
                    f"secret {name} is {len(sealed)} characters sealed, over the limit of "
                    f"{MAX_SEALED_CHARS}; pass large secrets by reference"
                )
        return value

    @field_validator("params")
    @classmethod
    def _params_json(cls, value: dict[str, Any]) -> dict[str, Any]:
        jsontext.check_tree(value, what="", limit=MAX_PARAMS_DEPTH)  # one walk: text and depth
        try:
            size = len(json.dumps(value, allow_nan=False).encode())
        except (TypeError, ValueError) as exc:
            raise ValueError(f"params must be JSON (no NaN, no objects): {exc}") from None
        if size > MAX_PARAMS_BYTES:
            raise ValueError(
                f"params are {size} bytes of JSON, over the limit of {MAX_PARAMS_BYTES}"
            )
        return value

    @field_validator("dependencies")
    @classmethod
    def _dependency_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for dep in value:
            if not re.fullmatch(ID_PATTERN, dep):
                raise ValueError(
                    f"dependency {dep!r} is not a job id; use up to 128 letters, digits, "
                    "'.', '_', ':' or '-'"
                )
        return value

    @field_validator("tags")
    @classmethod
    def _tag_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for tag in value:
            if not re.fullmatch(TAG_PATTERN, tag):
                raise ValueError(f"tag {tag!r} must match {TAG_PATTERN}")
        return value

    @classmethod
    def new(cls, runner_id: str, payload: str) -> Job:
        """The seed's minimal constructor: ``Job.new("shell", "echo hello")``."""
        return parse_job({"runner_id": runner_id, "payload": payload})

    @classmethod
    def builder(cls) -> JobBuilder:
        """A fluent builder, as in seed 000: ``Job.builder().runner_id(..).build()``."""
        return JobBuilder()


class JobBuilder:
    """Collects job fields one call at a time; :meth:`build` validates them all at once."""

    def __init__(self) -> None:
        self._fields: dict[str, Any] = {}

    def _set(self, name: str, value: Any) -> Self:
        self._fields[name] = value
        return self

    def id(self, value: str) -> Self:
        """Set the job id (default: a random hex id)."""
        return self._set("id", value)

    def runner_id(self, value: str) -> Self:
        """Set the runner that executes the job."""
        return self._set("runner_id", value)

    def payload(self, value: str) -> Self:
        """Set the payload (a script, a callable path: it depends on the runner)."""
        return self._set("payload", value)

    def timeout(self, seconds: int) -> Self:
        """Set the timeout in seconds."""
        return self._set("timeout", seconds)

    def env_vars(self, value: dict[str, str]) -> Self:
        """Set the environment variables the job runs with."""
        return self._set("env_vars", dict(value))

    def signature(self, value: Signature) -> Self:
        """Add one signature."""
        self._fields.setdefault("signatures", [])
        self._fields["signatures"].append(value)
        return self

    def caller_id(self, value: str) -> Self:
        """Set who asks for the job (seed 001)."""
        return self._set("caller_id", value)

    def context_id(self, value: str) -> Self:
        """Set the context (circle) the job runs in (seed 001)."""
        return self._set("context_id", value)

    def params(self, value: dict[str, Any]) -> Self:
        """Set the runner parameters (seed 002)."""
        return self._set("params", dict(value))

    def dependencies(self, value: list[str]) -> Self:
        """Set the jobs this one waits for (seed 002)."""
        return self._set("dependencies", list(value))

    def max_attempts(self, value: int) -> Self:
        """Set how many times the job may be attempted (seed 003)."""
        return self._set("max_attempts", value)

    def tags(self, value: list[str]) -> Self:
        """Set free-form tags (seed 003)."""
        return self._set("tags", list(value))

    def build(self) -> Job:
        """Validate and return the job; raises :class:`InvalidJob` with a one-line reason."""
        return parse_job(self._fields)


class JobResult(BaseModel):
    """What a job produced (seed 000's ``JobResult``), plus who ran it and how long."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str
    status: JobStatus
    output: str = ""
    error: str | None = None
    exit_code: int | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    worker: str | None = None
    attempt: int = 1
    duration: float | None = None
    output_truncated: bool = False

    def json_output(self) -> Any:
        """The output parsed as JSON (the python runner's return value)."""
        return json.loads(self.output)


_HINTS = {
    "id": "use up to 128 letters, digits, '.', '_', ':' or '-'",
    "runner_id": "use lowercase letters, digits, '-' or '_', starting with a letter "
    "(see `horus runners`)",
    "caller_id": "use up to 256 letters, digits or ._:@+/=-",
    "context_id": "use up to 256 letters, digits or ._:@+/=-",
    "timeout": f"give whole seconds from 1 to {MAX_TIMEOUT}",
    "max_attempts": f"give a whole number from 1 to {MAX_ATTEMPTS}",
}


def explain(error: ValidationError, what: str = "job") -> str:
    """One line that names each bad field and what is wrong with it."""
    parts = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or what
        message = item["msg"].removeprefix("Value error, ")
        hint = _HINTS.get(str(item["loc"][0])) if item["loc"] and what == "job" else None
        if item["type"] == "extra_forbidden":
            see = {"job": " (see `horus schema job`)", "params": ""}.get(what, " (see the README)")
            message = f"unknown field; remove it{see}"
        elif hint and not item["type"].startswith("value_error"):
            message = f"{message}; {hint}"
        parts.append(f"{field}: {message}" if item["loc"] else message)
    return one_line(f"invalid {what}: " + "; ".join(parts))


def parse_job(data: dict[str, Any] | str | bytes) -> Job:
    """Validate a job from a dict or JSON text; the one function client and worker share."""
    try:
        if isinstance(data, str | bytes):
            data = jsontext.loads(data)
            if not isinstance(data, dict):
                raise InvalidJob("invalid job: it is not a JSON object; send a job object")
        return Job.model_validate(data)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError too
        if isinstance(exc, ValidationError):
            raise InvalidJob(explain(exc)) from None
        raise InvalidJob(one_line(f"invalid job: {exc}")) from None
