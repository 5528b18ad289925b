"""``horus doctor``: what this machine needs to run jobs safely, checked one by one.

Each check says what it found and, when it fails, what to do; nothing here changes the
machine.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from horus.config import Settings
from horus.errors import HorusError
from horus.execution import isolation
from horus.proc import keeper, sandbox
from horus.store.records import Store
from horus.trust.policy import PolicyFile


@dataclass(frozen=True)
class Check:
    """One thing looked at: its name, whether it is fine, and what was found."""

    name: str
    ok: bool
    found: str


def _sandbox(settings: Settings) -> Check:
    why = sandbox.unavailable(settings.bwrap)
    if why:
        return Check("sandbox", False, f"{why}; {isolation.INSTALL_HINT}")
    return Check("sandbox", True, isolation.describe(settings).removeprefix("isolation: "))


def _tools() -> Check:
    missing = [t for t in ("setpriv", "prlimit", "unshare") if shutil.which(t) is None]
    if missing or not keeper.DIE_WITH_WORKER:
        return Check(
            "process tools",
            False,
            f"{', '.join(missing or ['setpriv'])} missing; install util-linux",
        )
    return Check("process tools", True, "setpriv, prlimit and unshare (util-linux)")


def _policy(settings: Settings) -> Check:
    try:
        policy = PolicyFile(settings.policy_path).current()
    except HorusError as exc:
        return Check("policy", False, str(exc))
    unboxed = sum(1 for g in policy.grants if g.sandbox == "none")
    extra = f"; {unboxed} grant(s) run jobs without a sandbox" if unboxed else ""
    return Check("policy", True, f"{settings.policy_path}: {len(policy.grants)} grant(s){extra}")


def _store(settings: Settings) -> Check:
    try:
        Store(settings).ping()
    except HorusError as exc:
        if settings.uses_embedded:
            return Check("store", True, "the embedded Redis (started by `horus up`)")
        return Check("store", False, str(exc))
    return Check("store", True, "answers")


def examine(settings: Settings) -> list[Check]:
    """Every check, in the order `horus doctor` prints them."""
    return [_sandbox(settings), _tools(), _policy(settings), _store(settings)]
