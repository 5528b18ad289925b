"""Signed results: the worker that produced a job's result signs it with the worker key, so
that anyone holding the workers' public key (the policy's ``secrets_key``) can tell later
whether the result in the store is the one a worker wrote (``horus result --verify``).

The signature covers the exact result text the record holds, under a domain tag of its
own (a result signature never verifies as a job signature, nor the reverse).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey

from horus.errors import NotAllowed
from horus.job import JobResult
from horus.trust.keys import parse_public, public_text

DOMAIN = b"horus-result-v1\x00"


def result_fields(result: JobResult, completed_at: str, key: SigningKey | None) -> dict[str, str]:
    """The record fields of a job's final result, signed with ``key`` when there is one."""
    text = result.model_dump_json()
    fields = {"completed_at": completed_at, "result": text}
    if key is not None:
        fields["result_sig"] = sign(text, key)
    return fields


def sign(result_text: str, key: SigningKey) -> str:
    """The attestation of ``result_text``: the signer's public key and its signature."""
    signature = key.sign(DOMAIN + result_text.encode()).signature
    return f"{public_text(key)} {base64.b64encode(signature).decode()}"


def verify(
    job_id: str, result_text: str | None, attestation: str | None, trusted: Collection[str]
) -> str:
    """The public key that signed the result of job ``job_id``, which must be one of
    ``trusted``; :class:`NotAllowed` naming what is wrong."""
    if result_text is None:
        raise NotAllowed(f"job {job_id} has no result yet; wait for it to end")
    if not attestation:
        raise NotAllowed(
            f"the result of job {job_id} is not signed by a worker (a job cancelled or "
            "refused before any worker took it has none); nothing to verify"
        )
    signer, _, text = attestation.partition(" ")
    if signer not in trusted:
        raise NotAllowed(
            f"the result of job {job_id} is signed by {signer[:24]}..., not by the workers' "
            "key (the policy's secrets_key)"
        )
    try:
        parse_public(signer).verify(
            DOMAIN + result_text.encode(), base64.b64decode(text, validate=True)
        )
    except (BadSignatureError, binascii.Error, ValueError):
        raise NotAllowed(
            f"the result of job {job_id} was changed after its worker signed it; do not trust it"
        ) from None
    return signer
