"""Signing jobs and cancel requests, and checking those signatures.

The signed bytes of a job are ``b"horus-job-v1\\n"`` followed by the canonical JSON (sorted
keys, no spaces, UTF-8; see :func:`horus.jsontext.canonical`) of this object::

    {"caller_id": str|null, "context_id": str|null,
     "created_at": "YYYY-MM-DDTHH:MM:SS.ffffffZ", "dependencies": [str],
     "env_vars": {str: str}, "expires_at": "YYYY-MM-DDTHH:MM:SS.ffffffZ"|null,
     "id": str, "max_attempts": int, "params": {...}, "payload": str,
     "runner_id": str, "secrets": {str: sealed str}, "timeout": int}

Every signature on a job signs those same bytes, so a job can carry several. Secrets are
signed sealed, so a signature reveals nothing about them. A cancel request signs
``b"horus-cancel-v1\\n"`` + canonical ``{"job_id": str, "requested_at": time}``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey
from pydantic import BaseModel, ConfigDict, Field

from horus import jsontext
from horus.errors import NotAllowed
from horus.job import MAX_SIGNATURES, Job, Signature
from horus.trust.keys import parse_public, public_text

JOB_DOMAIN = b"horus-job-v1\n"
CANCEL_DOMAIN = b"horus-cancel-v1\n"
#: how long a signature stays valid unless the signer says otherwise (one day)
DEFAULT_VALIDITY = 24 * 3600
#: how far ahead of this machine's clock a signer's clock may run
CLOCK_SKEW = 300


def timestamp(moment: datetime | None) -> str | None:
    """A time in the one text form signatures use (UTC, microseconds, ``Z``)."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def job_bytes(job: Job) -> bytes:
    """The bytes every signature of ``job`` signs."""
    return JOB_DOMAIN + jsontext.canonical(
        {
            "id": job.id,
            "runner_id": job.runner_id,
            "payload": job.payload,
            "params": job.params,
            "timeout": job.timeout,
            "env_vars": job.env_vars,
            "secrets": job.secrets,
            "context_id": job.context_id,
            "caller_id": job.caller_id,
            "created_at": timestamp(job.created_at),
            "expires_at": timestamp(job.expires_at),
            "max_attempts": job.max_attempts,
            "dependencies": list(job.dependencies),
        }
    )


def _signature(key: SigningKey, message: bytes) -> Signature:
    return Signature(
        public_key=public_text(key),
        signature=base64.b64encode(key.sign(message).signature).decode(),
    )


def sign(job: Job, key: SigningKey, validity: int = DEFAULT_VALIDITY) -> Job:
    """``job`` with one more signature by ``key``.

    The first signer sets ``expires_at`` (``validity`` seconds after ``created_at``) when
    the job has none; later signers sign the same bytes.
    """
    if validity < 1:
        raise ValueError(f"validity must be at least 1 second, not {validity}")
    if job.expires_at is None:
        if job.signatures:
            raise NotAllowed(
                "the job is already signed without an expiry; sign it again from scratch"
            )
        job = job.model_copy(update={"expires_at": job.created_at + timedelta(seconds=validity)})
    if any(s.public_key == public_text(key) for s in job.signatures):
        return job
    if len(job.signatures) >= MAX_SIGNATURES:
        raise NotAllowed(f"the job already has {MAX_SIGNATURES} signatures, the most allowed")
    added = _signature(key, job_bytes(job))
    return job.model_copy(update={"signatures": (*job.signatures, added)})


def _check(
    signatures: Iterable[Signature], message: bytes, what: str, made: Iterable[Signature] = ()
) -> tuple[str, ...]:
    signers: list[str] = []
    trusted = set(made)
    for n, sig in enumerate(signatures, 1):
        try:
            if sig not in trusted:  # those in it the caller made just now, over this message
                verify_key = parse_public(sig.public_key)
                raw = base64.b64decode(sig.signature, validate=True)
                verify_key.verify(message, raw)
        except ValueError as exc:  # a malformed key or base64
            raise NotAllowed(f"signature {n} of the {what} is malformed: {exc}") from None
        except (BadSignatureError, binascii.Error):
            raise NotAllowed(
                f"signature {n} of the {what} (key {sig.public_key[:60]}) does not verify: "
                f"the {what} was changed after signing, or the signature is forged; "
                "sign it again"
            ) from None
        if sig.public_key not in signers:
            signers.append(sig.public_key)
    return tuple(signers)


def check_expiry(job: Job, now: datetime) -> None:
    """:class:`NotAllowed` once the job's signatures have expired."""
    if job.expires_at is not None and job.expires_at <= now:
        raise NotAllowed(
            f"the signature expired at {timestamp(job.expires_at)}; sign and submit the job "
            "again (give a longer --expires-in if it waits in a queue that long)"
        )


def verify(
    job: Job,
    now: datetime,
    retention: int,
    check_expiry_now: bool = True,
    made: Iterable[Signature] = (),
) -> tuple[str, ...]:
    """The keys that signed ``job``, once every signature verifies and (unless
    ``check_expiry_now`` is False) none has expired; :class:`NotAllowed` with the reason
    otherwise. An unsigned job gives ``()``. The signatures in ``made`` are taken as
    verified: the caller made them over this job a moment ago (a client checking the job
    it just signed); a worker passes none."""
    signers = _check(job.signatures, job_bytes(job), "job", made)
    if job.created_at > now + timedelta(seconds=CLOCK_SKEW):
        raise NotAllowed(
            f"the job was created at {timestamp(job.created_at)}, in the future; check the "
            "submitting machine's clock"
        )
    if check_expiry_now:
        check_expiry(job, now)
    if signers:
        if job.expires_at is None:
            raise NotAllowed("the job is signed but has no expires_at; sign it with Horus")
        validity = (job.expires_at - job.created_at).total_seconds()
        if validity > retention:
            raise NotAllowed(
                f"the signature is valid for {int(validity)} s, longer than the {retention} s "
                "job records are kept, so a replay could go unnoticed; sign with a shorter "
                "--expires-in"
            )
    return signers


class CancelRequest(BaseModel):
    """A signed request to cancel one job."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str = Field(max_length=128)
    requested_at: datetime
    signatures: tuple[Signature, ...] = Field(default=(), max_length=MAX_SIGNATURES)

    def signed_bytes(self) -> bytes:
        """The bytes a cancel signature signs."""
        return CANCEL_DOMAIN + jsontext.canonical(
            {"job_id": self.job_id, "requested_at": timestamp(self.requested_at)}
        )

    @classmethod
    def make(cls, job_id: str, keys: Iterable[SigningKey]) -> CancelRequest:
        """A cancel request for ``job_id``, signed by each of ``keys``."""
        request = cls(job_id=job_id, requested_at=datetime.now(UTC))
        message = request.signed_bytes()
        return request.model_copy(
            update={"signatures": tuple(_signature(k, message) for k in keys)}
        )

    def signers(self) -> tuple[str, ...]:
        """The keys that signed the request; :class:`NotAllowed` if a signature is bad."""
        return _check(self.signatures, self.signed_bytes(), "cancel request")
