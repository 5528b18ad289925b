"""Every error Horus raises, under one root.

::

    HorusError                      root: catch this to catch everything Horus raises
    ├── ConfigError                 settings that cannot work (bad URL, missing binary)
    ├── BrokerUnavailable           the broker or the job store cannot be reached
    ├── InvalidJob                  a job that fails validation (client or worker side)
    │   └── UnknownRunner           no installed runner or live worker has that name
    ├── RunnerContractError         a runner plugin that does not keep the contract
    ├── JobNotFound                 no record for that job id (never created, or expired)
    ├── JobStateError               the job is not in a state that allows the request
    ├── NotAllowed                  a signature, an expiry or the policy refuses the request
    └── JobFailed                   a job ended failed / timeout / cancelled; crosses Celery

Each error's message is one line that names the problem and the fix. Errors that cross
Celery (``JobFailed``) are rebuilt on the other side as ``cls(*exc.args)``, so their
arguments are JSON-safe.
"""

from __future__ import annotations

from typing import Any


def one_line(text: str) -> str:
    """``text`` with every character that is not printable escaped (line breaks, tabs,
    terminal escape codes...), so text a sender chose stays on one line wherever it is
    shown."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class HorusError(Exception):
    """Root of every error Horus raises.

    ``args`` hold the raw, JSON-safe values the error was made from, so ``cls(*exc.args)``
    rebuilds it; ``message`` is the one line a person reads.
    """

    #: exit code the CLI uses when this error reaches it
    exit_code = 1

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.message = str(args[0]) if args else ""

    def __str__(self) -> str:
        return self.message


class ConfigError(HorusError):
    """Settings that cannot work."""

    exit_code = 2


class BrokerUnavailable(HorusError):
    """The broker or the job store cannot be reached."""

    exit_code = 5

    def __init__(self, url: str, reason: str = "") -> None:
        super().__init__(url, reason)
        detail = f" ({reason})" if reason else ""
        self.message = (
            f"cannot reach the broker at {url}{detail}: start the platform with `horus up`, "
            "or point HORUS_BROKER_URL / HORUS_RESULT_BACKEND at a running Redis or RabbitMQ"
        )
        self.url = url


class InvalidJob(HorusError):
    """A job that fails validation."""

    exit_code = 2


class UnknownRunner(InvalidJob):
    """No installed runner and no live worker serves that runner name."""

    def __init__(self, runner_id: str, known: list[str]) -> None:
        super().__init__(runner_id, sorted(known))
        names = ", ".join(sorted(known)) or "none"
        self.message = (
            f"unknown runner {runner_id!r}: installed runners are: {names}; "
            "install the runner's package or pick one of these"
        )
        self.runner_id = runner_id


class RunnerContractError(HorusError):
    """A runner plugin that does not keep the runner contract."""


class ServiceFailed(HorusError):
    """A service of ``horus up`` (Redis, a worker, the sweeper, Flower) could not start or
    kept exiting; the platform stopped."""


class JobNotFound(HorusError):
    """No record exists for a job id."""

    exit_code = 6

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.message = (
            f"no job {job_id!r}: check the id with `horus list` (records expire after the "
            "retention period)"
        )
        self.job_id = job_id


class JobStateError(HorusError):
    """The job is not in a state that allows the request."""

    exit_code = 7


class NotAllowed(HorusError):
    """A signature does not verify, has expired, or the policy does not grant the request."""

    exit_code = 8


class JobFailed(HorusError):
    """A job ended failed, timeout or cancelled.

    Raised by the worker task so that Celery and Flower record the task as failed; its only
    argument is the JobResult as a JSON-safe dict, so it crosses the result backend intact.
    """

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result)
        self.result = result

    def __str__(self) -> str:
        status = self.result.get("status", "failed")
        error = (self.result.get("error") or "").strip().splitlines()
        first = error[-1] if error else ""
        code = self.result.get("exit_code")
        code_part = f" (exit code {code})" if code is not None else ""
        return f"job {self.result.get('job_id')} {status}{code_part}: {first}".rstrip(": ")

    def __repr__(self) -> str:
        """The same line (what Flower shows as the task's exception)."""
        return str(self)
