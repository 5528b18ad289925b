"""Secret env vars: sealed by the client to the workers' key, opened only on the worker.

The client seals each value with a PyNaCl sealed box to the Curve25519 form of the workers'
ed25519 public key (the policy's ``secrets_key``, or ``HORUS_SECRETS_KEY``). The broker, the
job record, the result backend and Flower only ever hold the sealed text; the worker opens it
just before the run and :func:`redact` keeps the values out of the job's output and error.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping

from nacl.exceptions import CryptoError
from nacl.public import SealedBox
from nacl.signing import SigningKey

from horus.errors import NotAllowed
from horus.trust.keys import parse_public

#: secret values shorter than this are not searched for in output (they would mask noise)
REDACT_MIN = 4
MASK = "***"


def seal(values: Mapping[str, str], recipient: str) -> dict[str, str]:
    """Seal each value to the public key ``recipient`` (``ed25519:<base64>``)."""
    box = SealedBox(parse_public(recipient).to_curve25519_public_key())
    return {
        name: base64.b64encode(box.encrypt(value.encode("utf-8"))).decode()
        for name, value in values.items()
    }


def unseal(sealed: Mapping[str, str], key: SigningKey) -> dict[str, str]:
    """Open sealed values with the worker's key; :class:`NotAllowed` names one that fails."""
    box = SealedBox(key.to_curve25519_private_key())
    out: dict[str, str] = {}
    for name, text in sealed.items():
        try:
            out[name] = box.decrypt(base64.b64decode(text, validate=True)).decode("utf-8")
        except (binascii.Error, CryptoError, UnicodeDecodeError):
            raise NotAllowed(
                f"secret {name} was not sealed to this worker's key; seal it to the policy's "
                "secrets_key (the client does this for --secret)"
            ) from None
        if "\x00" in out[name]:
            raise NotAllowed(f"secret {name} contains a NUL byte; remove it")
    return out


def redact(text: str | None, values: Iterable[str]) -> str | None:
    """``text`` with every secret value of at least :data:`REDACT_MIN` characters masked."""
    if not text:
        return text
    for value in sorted(values, key=len, reverse=True):
        if len(value) >= REDACT_MIN:
            text = text.replace(value, MASK)
    return text
