"""Ed25519 key pairs: making them, storing them, and their one public text form.

A public key is written ``ed25519:<base64 of the 32 key bytes>``; that text is also the key's
id in policies, signatures and the audit. A private key file holds one line,
``ed25519-private:<base64 of the 32-byte seed>``, and is readable by its owner only.

The same key pair serves a worker for secrets: its Curve25519 form opens what clients sealed
to the public key (see :mod:`horus.trust.sealing`).
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from pathlib import Path

from nacl.exceptions import CryptoError
from nacl.signing import SigningKey, VerifyKey

from horus.errors import ConfigError

PUBLIC_PREFIX = "ed25519:"
PRIVATE_PREFIX = "ed25519-private:"


def public_text(key: VerifyKey | SigningKey) -> str:
    """The public key as ``ed25519:<base64>``."""
    verify = key.verify_key if isinstance(key, SigningKey) else key
    return PUBLIC_PREFIX + base64.b64encode(bytes(verify)).decode()


def parse_public(text: str) -> VerifyKey:
    """A public key from its text form; :class:`ValueError` names what is wrong."""
    if not text.startswith(PUBLIC_PREFIX):
        raise ValueError(f"public key {text[:60]!r} does not start with {PUBLIC_PREFIX!r}")
    try:
        encoded = text.removeprefix(PUBLIC_PREFIX)
        raw = base64.b64decode(encoded, validate=True)
        if len(raw) != 32:
            raise ValueError(f"public key {text[:60]!r} is {len(raw)} bytes, not 32")
        if base64.b64encode(raw).decode() != encoded:  # one key, one spelling
            raise ValueError(f"public key {text[:60]!r} is not in canonical base64")
        return VerifyKey(raw)
    except (binascii.Error, CryptoError) as exc:
        raise ValueError(f"public key {text[:60]!r} is not base64 of 32 bytes ({exc})") from None


def generate(path: Path, force: bool = False) -> SigningKey:
    """Make a key pair and write its private half to ``path`` (mode 0600)."""
    if path.exists() and not force:
        raise ConfigError(
            f"{path} already exists; keep it, pass --force to replace it, or choose --out"
        )
    key = SigningKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = PRIVATE_PREFIX + base64.b64encode(bytes(key)).decode() + "\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)  # never a half-written key file
    return key


def load(path: Path) -> SigningKey:
    """Read a private key file; refuses one that others can read."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read key {path}: {exc}; make one with `horus keys generate --out {path}`"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"key {path} is readable by others; run `chmod 600 {path}`")
    if not text.startswith(PRIVATE_PREFIX):
        raise ConfigError(
            f"{path} is not a Horus private key (it must start with {PRIVATE_PREFIX!r}); "
            "make one with `horus keys generate`"
        )
    try:
        seed = base64.b64decode(text.removeprefix(PRIVATE_PREFIX), validate=True)
        return SigningKey(seed)
    except (binascii.Error, CryptoError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"{path} holds a damaged private key ({exc}); make a new one with `horus keys generate`"
        ) from None


def load_optional(path: Path) -> SigningKey | None:
    """The key at ``path``, or None when there is no file there."""
    return load(path) if path.exists() else None
