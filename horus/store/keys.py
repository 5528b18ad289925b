"""Every key name Horus uses in the store, and nowhere else (the Lua scripts get them from
here, see :mod:`horus.store.scripts`).

::

    horus:job:<id>              hash: job (JSON), status, runner_id, context_id, caller_id,
                                created_at, worker, started_at, completed_at, attempt, tries,
                                lost, lease, retry_at, exited, history (JSON), result (JSON),
                                cancel (a signed cancel request, JSON)
    horus:index:all             sorted sets of job ids scored by created_at, one per
    horus:index:status:<s>      status, runner and context: ``horus list`` reads these and
    horus:index:runner:<r>      never scans keys
    horus:index:context:<c>
    horus:done:<id>             pub/sub channel: the terminal status, published by the
                                script that ends the job (waiters block on it)
    horus:leases                sorted set: running job -> lease expiry (epoch seconds)
    horus:retries               sorted set: pending job -> when to publish it again
    horus:queued                sorted set: pending job -> when its message was last published
    horus:held:<worker>         set: the jobs a worker is running (handed back at shutdown)
    horus:workers               sorted set of live worker names scored by last heartbeat
    horus:worker:<name>         JSON: the runners a worker serves, its host and pid
    horus:audit                 stream of every audit entry, trimmed to the retention period
    horus:audit:job:<id>        list of one job's audit entries (JSON)
    horus:output:<id>           stream: what the job wrote so far, chunk by chunk (capped)
    horus:metrics:<name>        hashes of counters (see :mod:`horus.services.metrics`)
    horus:events                pub/sub channel: one line per job start and end
"""

from __future__ import annotations

PREFIX = "horus:"
INDEX_ALL = f"{PREFIX}index:all"
#: the status index of status ``s`` is this plus ``s``
STATUS_INDEX = f"{PREFIX}index:status:"
LEASES = f"{PREFIX}leases"
RETRIES = f"{PREFIX}retries"
QUEUED = f"{PREFIX}queued"
#: the set of jobs worker ``w`` holds is this plus ``w``
HELD = f"{PREFIX}held:"
WORKERS = f"{PREFIX}workers"
AUDIT = f"{PREFIX}audit"
EVENTS = f"{PREFIX}events"
METRICS = f"{PREFIX}metrics:"


def job(job_id: str) -> str:
    """The hash of a job's record."""
    return f"{PREFIX}job:{job_id}"


def status_index(status: str) -> str:
    """The jobs in one status."""
    return f"{STATUS_INDEX}{status}"


def runner_index(runner_id: str) -> str:
    """The jobs of one runner."""
    return f"{PREFIX}index:runner:{runner_id}"


def context_index(context_id: str) -> str:
    """The jobs of one context."""
    return f"{PREFIX}index:context:{context_id}"


def done(job_id: str) -> str:
    """The channel the end of a job is published on."""
    return f"{PREFIX}done:{job_id}"


def held(worker: str) -> str:
    """The jobs one worker is running."""
    return f"{HELD}{worker}"


def worker(name: str) -> str:
    """A live worker's heartbeat."""
    return f"{PREFIX}worker:{name}"


def audit_of(job_id: str) -> str:
    """One job's audit entries."""
    return f"{AUDIT}:job:{job_id}"


def output(job_id: str) -> str:
    """What one job wrote so far."""
    return f"{PREFIX}output:{job_id}"


def metrics(name: str) -> str:
    """One hash of metric counters."""
    return f"{METRICS}{name}"


def lifecycle(job_id: str) -> tuple[list[str], list[str]]:
    """The KEYS and the first ARGV (key prefixes, the done channel) every lifecycle script
    takes for job ``job_id`` (see ``lua/lib.lua``)."""
    return [job(job_id), LEASES, RETRIES, QUEUED], [STATUS_INDEX, HELD, done(job_id)]
