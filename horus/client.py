"""The Python client: the only place that sends jobs.

It offers the seed-001 calls (``create_job``, ``start_job``, ``run_job_and_await_result``,
``get_job_status``, ``get_job_result``, ``get_job_output``, ``cancel_job``, ``list_jobs``).
A job has its secrets sealed, is signed with the client's keys, passes the checks the worker
will apply, is recorded as pending, and only then is published to its runner's queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from celery import Celery
from nacl.signing import SigningKey

from horus import config, registry
from horus.config import Settings
from horus.errors import (
    BrokerUnavailable,
    HorusError,
    InvalidJob,
    JobNotFound,
    JobStateError,
    UnknownRunner,
)
from horus.job import Job, JobResult, JobStatus, Signature, parse_job
from horus.messaging.app import make_app
from horus.messaging.publish import publish, publish_many
from horus.store import workers
from horus.store.lifecycle import Lifecycle
from horus.store.output import Chunk, chunks
from horus.store.records import Record, Store
from horus.subscribers import default_bus
from horus.trust import attest, sealing, signing
from horus.trust.gate import Gate, signing_keys
from horus.trust.signing import CancelRequest

#: jobs recorded in one round trip by :meth:`Client.submit_many`
BATCH = 500


class Submitted(NamedTuple):
    """What became of one job of :meth:`Client.submit_many`: its id, or why it was not
    submitted."""

    id: str | None
    error: str | None
    #: not submitted because the broker or the job store could not be reached (sending it
    #: again later may work); a job refused for what it is says False
    unreached: bool = False


def taken(job_id: str) -> InvalidJob:
    """The error of a job whose id another job has."""
    return InvalidJob(f"job id {job_id!r} is taken; leave id unset to get a fresh one")


class Client:
    """Submits, inspects and cancels jobs.

    ``keys`` are what the client signs jobs and cancel requests with: signing keys or paths
    to key files. Left out, it is the key at ``HORUS_KEY`` (default
    ``$HORUS_HOME/keys/local.key``, made by ``horus init``) when that file exists.
    ``validity`` is how many seconds a signature stays valid.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        app: Celery | None = None,
        keys: Sequence[SigningKey | Path | str] | None = None,
        validity: int = signing.DEFAULT_VALIDITY,
    ) -> None:
        self.settings = settings or config.load()
        self.store = Store(self.settings)
        self.app = app or make_app(self.settings)
        self.gate = Gate(self.settings)
        self.lifecycle = Lifecycle(self.store, default_bus(self.store))
        self.keys = signing_keys(keys, self.settings)
        self.validity = validity

    # -- submitting -------------------------------------------------------------------

    def known_runners(self) -> frozenset[str]:
        """Runners installed here or served by a live worker."""
        return frozenset(registry.installed().runners) | workers.served(self.store)

    def prepare(self, job: Job | dict[str, Any], secrets: Mapping[str, str] | None = None) -> Job:
        """The job as it will be sent: ``secrets`` sealed into it, signed with every key of
        this client (one it was already signed with is not signed again)."""
        job = job if isinstance(job, Job) else parse_job(job)
        if secrets:
            if job.signatures:
                raise InvalidJob("add secrets before signing: signatures cover the secrets")
            sealed = sealing.seal(secrets, self.gate.secrets_key(), job.id)
            job = parse_job({**job.model_dump(), "secrets": {**job.secrets, **sealed}})
        for key in self.keys:
            job = signing.sign(job, key, self.validity)
        return job

    def check(self, job: Job) -> Job:
        """Refuse a job no worker would run, with the same checks the worker applies:
        the runner's own validation, signatures, expiry and (when the policy file is
        readable here) the policy."""
        return self._check(job)

    def _ready(self, job: Job | dict[str, Any], secrets: Mapping[str, str] | None = None) -> Job:
        """``job`` prepared and checked. The signatures :meth:`prepare` just made are not
        verified again (this client made them, over these very bytes: an ed25519
        verification is a third of a bulk submission's CPU); every one it was given is."""
        job = job if isinstance(job, Job) else parse_job(job)
        given = set(job.signatures)
        prepared = self.prepare(job, secrets)
        return self._check(prepared, tuple(s for s in prepared.signatures if s not in given))

    def _check(self, job: Job, made: tuple[Signature, ...] = ()) -> Job:
        installed = registry.installed()
        runner = installed.runners.get(job.runner_id)
        if runner is None:
            known = self.known_runners()
            if job.runner_id not in known:
                raise UnknownRunner(job.runner_id, sorted(known))
        else:
            registry.validate(runner, job)
        self.gate.judge(job, policy_required=False, made=made)
        return job

    def _create(
        self, job: Job | dict[str, Any], secrets: Mapping[str, str] | None, sending: bool
    ) -> Job:
        job = self._ready(job, secrets)
        if not self.lifecycle.create(job, sending):
            raise taken(job.id)
        return job

    def create_job(
        self, job: Job | dict[str, Any], secrets: Mapping[str, str] | None = None
    ) -> str:
        """Validate, sign and record a job as pending without sending it; returns its id."""
        return self._create(job, secrets, sending=False).id

    def start_job(self, job_id: str) -> None:
        """Send a created (pending) job to its runner's queue."""
        record = self.store.get(job_id)
        if record.status is not JobStatus.PENDING:
            raise JobStateError(f"job {job_id} is {record.status}; only a pending job can start")
        publish(self.app, self.check(record.job))  # an expired signature fails here
        # From now on the sweeper publishes it again should the message vanish.
        self.lifecycle.published(job_id, time.time())

    def submit(self, job: Job | dict[str, Any], secrets: Mapping[str, str] | None = None) -> str:
        """Create and start a job in one call; returns its id. ``secrets`` are env vars
        sealed to the workers' key: only the worker running the job can read them."""
        created = self._create(job, secrets, sending=True)
        try:
            publish(self.app, created)  # the job just validated and recorded: no re-read
        except BrokerUnavailable:
            if self._withdraw(created):
                raise
        return created.id

    def _withdraw(self, job: Job) -> bool:
        """Remove the record of ``job``, whose message could not be sent: nothing half-written,
        no record without a message. False when the store is away too (one Redis for both):
        the record stays, made as sending, so the sweeper publishes it once Redis is back and
        the job is submitted after all (its id is the caller's to follow, not an error that
        would have the caller submit it again)."""
        try:
            self.lifecycle.discard(job)
        except BrokerUnavailable:
            return False
        return True

    def submit_many(
        self,
        jobs: Iterable[Job | dict[str, Any]],
        batch: int = BATCH,
        progress: Callable[[int], None] | None = None,
    ) -> list[Submitted]:
        """Submit many jobs at once: each is signed, checked, recorded and published as by
        :meth:`submit` (its own id, record, signature check and result), but the records of
        a batch are written in one round trip and its messages share one connection (and,
        on Redis, one round trip).

        Returns one :class:`Submitted` per job, in order: its id, or the one-line reason it
        was not submitted (a bad job does not stop the others). Should the broker be away,
        the jobs not yet published are not recorded either, and each says so (a batch
        whose one round trip to Redis fails midway stays submitted: see
        :func:`~horus.messaging.publish.publish_many`; so does one whose record could not be
        withdrawn, the store away too: the sweeper sends it). ``progress`` hears how many
        more jobs are settled, as they are."""
        done: list[Submitted | None] = []
        checked: list[tuple[int, Job]] = []
        away: Submitted | None = None  # once the broker is away, the rest are not sent

        def settle() -> None:
            nonlocal away
            if not checked:
                return
            sent = [away] * len(checked) if away else self._send_batch([j for _, j in checked])
            for (slot, _), submitted in zip(checked, sent, strict=True):
                done[slot] = submitted
                away = away or (submitted if submitted.unreached else None)
            if progress is not None:
                progress(len(checked))
            checked.clear()

        for item in jobs:
            try:
                checked.append((len(done), self._ready(item)))
                done.append(None)
            except HorusError as exc:  # a bad job: reported, and the others go on
                done.append(Submitted(None, str(exc)))
                if progress is not None:
                    progress(1)
            if len(checked) >= batch:
                settle()
        settle()
        return [s for s in done if s is not None]

    def _send_batch(self, jobs: list[Job]) -> list[Submitted]:
        """Record and publish one batch of checked jobs."""
        try:
            made = self.lifecycle.create_many(jobs, sending=True)
        except BrokerUnavailable as exc:  # the job store is away
            return [Submitted(None, f"not submitted: {exc}", unreached=True)] * len(jobs)
        created = [job for job, ok in zip(jobs, made, strict=True) if ok]
        sent, away = publish_many(self.app, created)
        kept: set[str] = set()  # the store went away too: these stay, for the sweeper
        for job in created[sent:]:
            if kept or not self._withdraw(job):  # one try: an away store costs one timeout
                kept.add(job.id)
        ids = {job.id for job in created[:sent]} | kept
        results = []
        for job, ok in zip(jobs, made, strict=True):
            if not ok:
                results.append(Submitted(None, str(taken(job.id))))
            elif job.id in ids:
                results.append(Submitted(job.id, None))
            else:
                results.append(Submitted(None, f"not submitted: {away}", unreached=True))
        return results

    def run_job_and_await_result(
        self,
        job: Job | dict[str, Any],
        timeout: float | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> JobResult:
        """Submit a job and wait for its result (seed 001's one-shot call)."""
        return self.wait(self.submit(job, secrets), timeout)

    # -- inspecting -------------------------------------------------------------------

    def get_job(self, job_id: str) -> Record:
        """The whole record of a job."""
        return self.store.get(job_id)

    def get_job_status(self, job_id: str) -> JobStatus:
        """The job's current status."""
        return self.store.status(job_id)

    def get_job_result(self, job_id: str) -> JobResult | None:
        """The job's result, or None while it has not finished."""
        return self.store.get(job_id).result

    def get_job_output(self, job_id: str) -> str | None:
        """The job's output, or None while it has not finished."""
        result = self.get_job_result(job_id)
        return None if result is None else result.output

    def logs(self, job_id: str, follow: bool = False) -> Iterator[Chunk]:
        """What the job wrote so far, chunk by chunk (secrets masked); with ``follow``, also
        what it writes next, until it ends."""
        self.store.status(job_id)  # JobNotFound for an unknown id
        return chunks(self.store, job_id, follow)

    def verify_result(self, job_id: str) -> str:
        """The public key of the worker that signed job ``job_id``'s result, checked against
        the workers' key (the policy's ``secrets_key``); :class:`NotAllowed` when the result
        is unsigned, signed by another key, or was changed after it was signed."""
        record = self.get_job(job_id)
        return attest.verify(
            job_id, record.result_text, record.result_sig, {self.gate.secrets_key()}
        )

    def wait(self, job_id: str, timeout: float | None = None) -> JobResult:
        """Block until the job is finished and return its result (TimeoutError after
        ``timeout`` seconds, if given)."""
        return self.store.wait_finished(job_id, timeout)

    def list_jobs(
        self,
        status: JobStatus | str | None = None,
        runner_id: str | None = None,
        context_id: str | None = None,
        limit: int = 50,
    ) -> list[Record]:
        """Newest jobs first, filtered by status, runner and context."""
        return self.store.find(
            status=JobStatus(status) if status else None,
            runner_id=runner_id,
            context_id=context_id,
            limit=limit,
        )

    # -- controlling ------------------------------------------------------------------

    def cancel_job(self, job_id: str) -> JobStatus:
        """Cancel a job: a pending one never starts, a running one is stopped.

        The request is signed with this client's keys; it counts only when one of them
        signed the job or is a canceller the policy names (the worker checks again before it
        stops anything). Returns the status right after the request: ``cancelled`` for a
        pending job, ``running`` for one whose worker is stopping it now.
        """
        record = self.store.get(job_id)
        request = CancelRequest.make(job_id, self.keys)
        signers = self.gate.judge_cancel(record.job, request, policy_required=False)
        raw = request.model_dump_json()
        now = datetime.now(UTC)
        result = JobResult(
            job_id=job_id,
            status=JobStatus.CANCELLED,
            error="cancelled before it started",
            completed_at=now,
        )
        fields = {
            "completed_at": now.isoformat(),
            "result": result.model_dump_json(),
            "cancel": raw,
        }
        runner_id = record.job.runner_id
        done, found = self.lifecycle.close(
            job_id, runner_id, JobStatus.CANCELLED, fields, JobStatus.CANCELLED.value, raw
        )
        if done == "missing":
            raise JobNotFound(job_id)
        if done == "ok":  # a running job's worker judges (and audits) the request itself
            self.lifecycle.bus.emit(
                "cancel_requested",
                job_id,
                runner_id,
                accepted=True,
                reason="cancelled before it started",
                signers=signers,
            )
            return JobStatus.CANCELLED
        if done == "requested":
            return JobStatus.RUNNING
        raise JobStateError(f"job {job_id} already ended {found}; nothing to cancel")

    def runners(self) -> dict[str, dict[str, Any]]:
        """Installed runners and the live workers serving each."""
        installed = registry.installed()
        table: dict[str, dict[str, Any]] = {
            name: {"installed": True, "description": r.description, "workers": []}
            for name, r in installed.runners.items()
        }
        for name, reason in installed.broken.items():
            table[name] = {"installed": False, "description": reason, "workers": []}
        for worker, info in sorted(workers.live(self.store).items()):
            for name in info.get("runners", []):
                table.setdefault(name, {"installed": False, "description": "", "workers": []})
                table[name]["workers"].append(worker)
        return table
