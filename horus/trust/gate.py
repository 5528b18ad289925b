"""The checks a job passes before any runner sees it, shared by the client and the worker.

The worker is where the checks count: it refuses what fails them. The client runs the same
checks first, so that honest mistakes fail at submission rather than in the queue.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nacl.signing import SigningKey

from horus.config import Settings
from horus.errors import ConfigError, NotAllowed
from horus.job import Job, Signature
from horus.trust import keys, signing
from horus.trust.policy import Grant, Policy, PolicyFile
from horus.trust.signing import CancelRequest


@dataclass(frozen=True)
class Decision:
    """Who signed a job and the grant that lets it run (None: no policy to check here)."""

    signers: tuple[str, ...]
    grant: Grant | None


class Gate:
    """Signatures, expiry and the policy, checked in that order."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.policy_file = PolicyFile(settings.policy_path)

    def policy(self) -> Policy:
        """The policy in force now (:class:`ConfigError` while the file is missing or bad)."""
        return self.policy_file.current()

    def judge(
        self,
        job: Job,
        policy_required: bool = True,
        check_expiry: bool = True,
        made: tuple[Signature, ...] = (),
    ) -> Decision:
        """The decision for ``job``; :class:`NotAllowed` with the reason when refused.

        With ``policy_required=False`` (the client) a missing policy file skips the policy
        check: the worker still makes it. The worker checks the expiry itself, on a job's
        first attempt only (``check_expiry=False``): a retry is not a replay. ``made``: the
        signatures the caller itself just made over this job (a client's), not verified
        again; the worker passes none.
        """
        signers = signing.verify(
            job, datetime.now(UTC), self.settings.retention_seconds, check_expiry, made
        )
        if not policy_required and not self.policy_file.exists():
            return Decision(signers, None)
        try:
            policy = self.policy()
        except ConfigError as exc:
            raise NotAllowed(str(exc)) from None
        return Decision(signers, policy.allows(job, signers))

    def judge_cancel(
        self, job: Job, request: CancelRequest, policy_required: bool = True
    ) -> tuple[str, ...]:
        """Who signed a cancel request that may stop ``job``; :class:`NotAllowed` if none
        of them is the job's submitter or a canceller the policy names."""
        signers = request.signers()
        if request.job_id != job.id:
            raise NotAllowed(f"the cancel request is for job {request.job_id}, not {job.id}")
        if request.requested_at < job.created_at - timedelta(seconds=signing.CLOCK_SKEW):
            raise NotAllowed(
                "the cancel request was made before the job existed (an old request for a "
                "reused job id); make a new one"
            )
        if not job.signatures:
            return signers  # an unsigned job had no submitter to answer to
        if set(signers) & {s.public_key for s in job.signatures}:
            return signers
        if policy_required or self.policy_file.exists():
            try:
                policy = self.policy()
            except ConfigError as exc:
                raise NotAllowed(str(exc)) from None
            cancellers = policy.members(policy.cancellers)
            if set(signers) & cancellers:
                return signers
        raise NotAllowed(
            f"cancelling job {job.id} needs a signature by its submitter or by a canceller "
            "the policy names; pass that key with --key"
        )

    def secrets_key(self) -> str:
        """The public key clients seal secrets to."""
        if self.policy_file.exists():
            configured = self.policy().secrets_key
            if configured:
                return configured
        from_env = os.environ.get("HORUS_SECRETS_KEY")
        if from_env:
            try:
                keys.parse_public(from_env)
            except ValueError as exc:
                raise ConfigError(f"HORUS_SECRETS_KEY: {exc}; give ed25519:<base64>") from None
            return from_env
        raise ConfigError(
            f"no key to seal secrets to: set secrets_key in the policy ({self.policy_file.path}) "
            "or HORUS_SECRETS_KEY to the workers' public key (`horus keys show`)"
        )

    def worker_key(self) -> SigningKey:
        """The key this worker opens secrets with."""
        return keys.load(self.settings.worker_key_path)


def signing_keys(
    given: Sequence[SigningKey | Path | str] | None, settings: Settings
) -> list[SigningKey]:
    """The keys to sign with: those ``given`` (keys, or paths to key files), or with None
    the key at ``HORUS_KEY`` (the local key) if that file exists, else none (unsigned)."""
    if given is None:
        default = keys.load_optional(settings.key_path)
        return [default] if default is not None else []
    return [k if isinstance(k, SigningKey) else keys.load(Path(k).expanduser()) for k in given]
