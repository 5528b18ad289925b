"""``horus init``: the keys and the policy a first run needs, made where missing."""

from __future__ import annotations

import os

from horus.config import Settings
from horus.trust import keys
from horus.trust.policy import starter


def init(settings: Settings) -> list[str]:
    """Make what a first run needs and is missing: the local key the CLI signs with, the
    worker key secrets are sealed to, and a policy trusting the local key. Returns one line
    per thing made; an existing file is never replaced."""
    made: list[str] = []
    for path, what in (
        (settings.key_path, "signing key"),
        (settings.worker_key_path, "worker key"),
    ):
        if not path.exists():
            key = keys.generate(path)
            made.append(f"made {what} {path} ({keys.public_text(key)})")
    if not settings.policy_path.exists():
        local = keys.public_text(keys.load(settings.key_path))
        worker = keys.public_text(keys.load(settings.worker_key_path))
        settings.policy_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = settings.policy_path.with_name(f".{settings.policy_path.name}.tmp")
        tmp.write_text(starter(local, worker), encoding="utf-8")
        os.replace(tmp, settings.policy_path)
        made.append(f"made policy {settings.policy_path} trusting {local}")
    return made
