"""Horus: a job platform on Celery.

The public API::

    from horus import Client, Job, JobResult, JobStatus, Signature
"""

from __future__ import annotations

from horus.client import Client
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
from horus.job import Job, JobBuilder, JobResult, JobStatus, Signature, parse_job

__all__ = [
    "BrokerUnavailable",
    "Client",
    "ConfigError",
    "HorusError",
    "InvalidJob",
    "Job",
    "JobBuilder",
    "JobFailed",
    "JobNotFound",
    "JobResult",
    "JobStateError",
    "JobStatus",
    "RunnerContractError",
    "Signature",
    "UnknownRunner",
    "parse_job",
]
