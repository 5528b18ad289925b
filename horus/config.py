"""Where Horus finds its services, derived once from ``celeryconfig``."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import celeryconfig
from horus.errors import ConfigError


@dataclass(frozen=True)
class Timing:
    """How fast Horus notices and recovers, in seconds (tests and the fault suite shorten
    them; the defaults suit production)."""

    #: a running job's lease; a job whose worker stops renewing it is recovered after this
    lease: float = 30.0
    #: how often the sweeper looks for expired leases, due retries and vanished messages
    sweep_interval: float = 5.0
    #: the first retry delay after the second failure; it doubles from there (seed 003)
    retry_base: float = 60.0
    #: the longest retry delay
    retry_cap: float = 3600.0
    #: a pending job whose message was published this long ago is published again
    republish_after: float = 600.0
    #: how long a stopping worker lets running jobs finish before handing them back
    shutdown_grace: float = 30.0


_TIMING_ENV = {
    "lease": "HORUS_LEASE",
    "sweep_interval": "HORUS_SWEEP_INTERVAL",
    "retry_base": "HORUS_RETRY_BASE",
    "retry_cap": "HORUS_RETRY_CAP",
    "republish_after": "HORUS_REPUBLISH_AFTER",
    "shutdown_grace": "HORUS_SHUTDOWN_GRACE",
}


def _timing() -> Timing:
    values: dict[str, float] = {}
    for name, env in _TIMING_ENV.items():
        raw = os.environ.get(env)
        if not raw:
            continue
        try:
            values[name] = float(raw)
        except ValueError:
            raise ConfigError(f"{env}={raw!r} is not a number of seconds; give one") from None
        if values[name] < 0 or (name == "lease" and values[name] < 1):
            raise ConfigError(f"{env}={raw!r} is too small; give a positive number of seconds")
    return Timing(**values)


@dataclass(frozen=True)
class Settings:
    """The URLs and paths a Horus process works with."""

    home: Path
    broker_url: str
    result_backend: str
    embedded_socket: Path
    retention_seconds: int
    #: the key the CLI and the client sign with, when the file exists (``HORUS_KEY``)
    key_path: Path
    #: the worker's key: its public half is what clients seal secrets to (``HORUS_WORKER_KEY``)
    worker_key_path: Path
    #: who may run what where; workers refuse every job without it (``HORUS_POLICY``)
    policy_path: Path
    #: leases, sweeps, retries and shutdown grace
    timing: Timing = Timing()

    @property
    def store_url(self) -> str:
        """The result backend as a redis-py URL: job records live beside the results."""
        url = self.result_backend
        if url.startswith("redis+socket://"):
            return "unix://" + url.removeprefix("redis+socket://")
        if url.startswith(("redis://", "rediss://")):
            return url
        raise ConfigError(
            f"HORUS_RESULT_BACKEND={redact(url)} is not Redis: job records and results need a "
            "redis:// URL; set HORUS_RESULT_BACKEND to one"
        )

    @property
    def groups_dir(self) -> Path:
        """Where this machine records its running job process groups. Per host: process ids
        mean nothing on another machine or container sharing HORUS_HOME."""
        return self.home / "run" / "groups" / socket.gethostname()

    @property
    def uses_embedded(self) -> bool:
        """True when the broker or the result backend is the embedded Redis."""
        return celeryconfig.EMBEDDED_URL in (self.broker_url, self.result_backend)


def redact(url: str) -> str:
    """The URL with any password replaced by ``***``, fit for messages and logs."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def _path(name: str, default: Path) -> Path:
    return Path(os.environ.get(name) or default).expanduser()


def load() -> Settings:
    """The settings of this process."""
    home = celeryconfig.HORUS_HOME
    return Settings(
        home=home,
        broker_url=celeryconfig.broker_url,
        result_backend=celeryconfig.result_backend,
        embedded_socket=celeryconfig.EMBEDDED_SOCKET,
        retention_seconds=celeryconfig.RETENTION_SECONDS,
        key_path=_path("HORUS_KEY", home / "keys" / "local.key"),
        worker_key_path=_path("HORUS_WORKER_KEY", home / "keys" / "worker.key"),
        policy_path=_path("HORUS_POLICY", home / "policy.toml"),
        timing=_timing(),
    )
