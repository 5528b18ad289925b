"""The settings of a Horus process: where it finds its services, its keys and its timing.

Nothing here reads the environment at import: :func:`load` reads it when called, and every
other part of Horus (the Celery app included, see :mod:`horus.messaging.app`) is built from
the :class:`Settings` it returns.

Environment:

- ``HORUS_HOME``: keys, policy, logs and the embedded Redis's data and socket (``~/.horus``).
- ``HORUS_BROKER_URL``: ``redis://...`` or ``amqp://...``; unset means the embedded Redis,
  reached over the unix socket ``$HORUS_HOME/redis.sock``.
- ``HORUS_RESULT_BACKEND``: a ``redis://`` URL for job records; unset means the broker when
  the broker is Redis, else the embedded Redis.
- ``HORUS_RETENTION``: seconds that job records are kept (default 7 days).
- ``HORUS_VISIBILITY_TIMEOUT``: seconds before Redis hands an unacknowledged message to
  another worker (default 2 h). Horus never runs a job twice because of it: a second
  delivery of a running or finished job is dropped.
- ``HORUS_KEY``, ``HORUS_WORKER_KEY``, ``HORUS_POLICY``: see :class:`Settings`.
- ``HORUS_BWRAP``: the bubblewrap binary that makes job sandboxes (``bwrap`` on the PATH).
- timing (``HORUS_LEASE``...): see :class:`Timing`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from horus.errors import ConfigError


@dataclass(frozen=True)
class Timing:
    """How fast Horus notices and recovers, in seconds (tests and the fault suite shorten
    them; the defaults suit production)."""

    #: a running job's lease; a job whose worker stops renewing it is recovered after this
    lease: float = 30.0
    #: how often the sweeper looks for expired leases, due retries and vanished messages
    sweep_interval: float = 5.0
    #: the delay before attempt 2 of a job that failed; it doubles from there (seed 003)
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


def _timing(env: Mapping[str, str]) -> Timing:
    values: dict[str, float] = {}
    for name, variable in _TIMING_ENV.items():
        raw = env.get(variable)
        if not raw:
            continue
        try:
            values[name] = float(raw)
        except ValueError:
            raise ConfigError(f"{variable}={raw!r} is not a number of seconds; give one") from None
        if values[name] < 0 or (name == "lease" and values[name] < 1):
            raise ConfigError(f"{variable}={raw!r} is too small; give a positive number of seconds")
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
    timing: Timing = field(default_factory=lambda: Timing())
    #: Redis broker: seconds before an unacknowledged message is handed out again
    visibility_timeout: int = 2 * 3600
    #: attempts lost with their worker after which a job fails (``HORUS_LOST_LIMIT``)
    lost_limit: int = 3
    #: the bubblewrap binary that makes job sandboxes (``HORUS_BWRAP``)
    bwrap: str = "bwrap"
    #: workers send Celery's task events, which Flower shows (``HORUS_TASK_EVENTS=1``):
    #: three fanout publishes per job, so off unless someone watches; `horus up` turns it on
    task_events: bool = False

    @property
    def embedded_url(self) -> str:
        """The Celery URL of the embedded Redis."""
        return f"redis+socket://{self.embedded_socket}"

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
        return self.embedded_url in (self.broker_url, self.result_backend)


def redact(url: str) -> str:
    """The URL with any password replaced by ``***``, fit for messages and logs."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number; give one from 1 up") from None
    if value < 1:
        raise ConfigError(f"{name}={raw!r} is too small; give a whole number from 1 up")
    return value


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings of this process, read from ``environ`` (default: ``os.environ``)."""
    env = os.environ if environ is None else environ

    def path(name: str, default: Path) -> Path:
        return Path(env.get(name) or default).expanduser()

    home = path("HORUS_HOME", Path.home() / ".horus")
    socket_path = home / "redis.sock"
    embedded = f"redis+socket://{socket_path}"
    broker = env.get("HORUS_BROKER_URL") or embedded
    redis_broker = broker.startswith(("redis://", "rediss://", "redis+socket://"))
    return Settings(
        home=home,
        broker_url=broker,
        result_backend=env.get("HORUS_RESULT_BACKEND") or (broker if redis_broker else embedded),
        embedded_socket=socket_path,
        retention_seconds=_int(env, "HORUS_RETENTION", 7 * 24 * 3600),
        key_path=path("HORUS_KEY", home / "keys" / "local.key"),
        worker_key_path=path("HORUS_WORKER_KEY", home / "keys" / "worker.key"),
        policy_path=path("HORUS_POLICY", home / "policy.toml"),
        timing=_timing(env),
        visibility_timeout=_int(env, "HORUS_VISIBILITY_TIMEOUT", 2 * 3600),
        lost_limit=_int(env, "HORUS_LOST_LIMIT", 3),
        bwrap=env.get("HORUS_BWRAP") or "bwrap",
        task_events=env.get("HORUS_TASK_EVENTS", "").lower() in {"1", "true", "yes", "on"},
    )
