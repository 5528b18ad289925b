"""Secret env vars: sealed by the client to the workers' key, opened only on the worker.

The client seals each value with a PyNaCl sealed box to the Curve25519 form of the workers'
ed25519 public key (the policy's ``secrets_key``, or ``HORUS_SECRETS_KEY``), together with
the job's id and the secret's name: a sealed value copied into another job, or under
another name, does not open. The broker, the
job record, the result backend and Flower only ever hold the sealed text; the worker opens it
just before the run and :func:`redact` keeps the values out of the job's output and error.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping

from nacl.exceptions import CryptoError
from nacl.public import SealedBox
from nacl.signing import SigningKey

from horus.errors import NotAllowed
from horus.trust.keys import parse_public

#: secret values shorter than this are not searched for in output (they would mask noise)
REDACT_MIN = 4
MASK = "***"
#: what starts the note a capped output ends with (see :mod:`horus.proc.watch`)
TRUNCATED = "\n[horus: output truncated"


def seal(values: Mapping[str, str], recipient: str, job_id: str) -> dict[str, str]:
    """Seal each value to the public key ``recipient`` (``ed25519:<base64>``), bound to the
    job ``job_id`` and to its own name: the box holds both, and opens for no other."""
    box = SealedBox(parse_public(recipient).to_curve25519_public_key())
    return {
        name: base64.b64encode(
            box.encrypt(json.dumps({"job": job_id, "name": name, "value": value}).encode())
        ).decode()
        for name, value in values.items()
    }


def unseal(sealed: Mapping[str, str], key: SigningKey, job_id: str) -> dict[str, str]:
    """Open the sealed values of job ``job_id`` with the worker's key; :class:`NotAllowed`
    names one that fails, or that was sealed for another job or under another name."""
    box = SealedBox(key.to_curve25519_private_key())
    out: dict[str, str] = {}
    for name, text in sealed.items():
        try:
            inside = json.loads(box.decrypt(base64.b64decode(text, validate=True)))
        except (binascii.Error, CryptoError, UnicodeDecodeError, ValueError):
            raise NotAllowed(
                f"secret {name} was not sealed to this worker's key; seal it to the policy's "
                "secrets_key (the client does this for --secret)"
            ) from None
        if not isinstance(inside, dict) or not isinstance(inside.get("value"), str):
            raise NotAllowed(f"secret {name} is not a sealed Horus secret; seal it again")
        if inside.get("job") != job_id or inside.get("name") != name:
            raise NotAllowed(
                f"secret {name} was sealed for another job or name; a secret opens only for "
                "the job it was sealed for: seal it again for this job"
            )
        value: str = inside["value"]
        if "\x00" in value:
            raise NotAllowed(f"secret {name} contains a NUL byte; remove it")
        out[name] = value
    return out


def redact(text: str | None, values: Iterable[str]) -> str | None:
    """``text`` with every secret value of at least :data:`REDACT_MIN` characters masked,
    and a secret's start where the output was cut (at the end of ``text`` or just before
    the truncation note) masked too."""
    if not text:
        return text
    secrets = sorted((v for v in values if len(v) >= REDACT_MIN), key=len, reverse=True)
    for value in secrets:
        text = text.replace(value, MASK)
    body, note, rest = text.partition(TRUNCATED)
    for value in secrets:
        for size in range(len(value) - 1, REDACT_MIN - 1, -1):
            if body.endswith(value[:size]):
                body = body[:-size] + MASK
                break
    return body + note + rest
