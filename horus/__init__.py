"""Horus: a job platform on Celery. This module is the public API; runner authors import
only from it::

    from horus import Example, JobStatus, Outcome, RunContext, Runner  # a runner
    from horus import Client, Job, JobResult, Record  # a client

Importing it builds no Celery app and reads no environment: a :class:`Client` does that when
it is made, from :func:`horus.config.load`.
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
    NotAllowed,
    RunnerContractError,
    ServiceFailed,
    UnknownRunner,
)
from horus.job import Job, JobBuilder, JobResult, JobStatus, Signature, parse_job
from horus.runner import Example, NoConfig, NoParams, Outcome, OutputSink, RunContext, Runner
from horus.store.output import Chunk
from horus.store.records import Record

__all__ = [
    "BrokerUnavailable",
    "Chunk",
    "Client",
    "ConfigError",
    "Example",
    "HorusError",
    "InvalidJob",
    "Job",
    "JobBuilder",
    "JobFailed",
    "JobNotFound",
    "JobResult",
    "JobStateError",
    "JobStatus",
    "NoConfig",
    "NoParams",
    "NotAllowed",
    "Outcome",
    "OutputSink",
    "Record",
    "RunContext",
    "Runner",
    "RunnerContractError",
    "ServiceFailed",
    "Signature",
    "UnknownRunner",
    "parse_job",
]
