"""The audit trail: every decision to run or refuse a job, or to honour a cancel request.

It is a subscriber of the job events (:mod:`horus.events`): ``admitted`` and ``refused``
are decisions to run, ``cancel_requested`` a decision on a cancel. Each entry goes to the
stream ``horus:audit`` (trimmed to the retention period) and to the job's own list, in one
pipelined round trip.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from horus.events import Event, Subscriber
from horus.store import keys
from horus.store.records import Store

STREAM = keys.AUDIT
#: most entries the stream keeps, whatever their age
MAX_ENTRIES = 1_000_000

Action = Literal["run", "cancel"]
Verdict = Literal["accepted", "refused"]


@dataclass(frozen=True)
class Entry:
    """One decision."""

    job_id: str
    action: str
    decision: str
    reason: str
    signers: list[str] = field(default_factory=list)
    runner_id: str = ""
    where: str = ""
    at: float = 0.0

    def line(self) -> str:
        """The entry as one line for people."""
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.at))
        keys = ",".join(s.removeprefix("ed25519:")[:12] for s in self.signers) or "unsigned"
        reason = f"  {self.reason}" if self.reason else ""
        return (
            f"{when}  {self.decision:<8} {self.action:<6} {self.job_id:<34} "
            f"{self.runner_id or '-':<10} {keys}{reason}"
        )


class Audit:
    """Writes and reads audit entries in the job store."""

    def __init__(self, store: Store, where: str | None = None) -> None:
        self.store = store
        self.where = where or socket.gethostname()

    def record(
        self,
        job_id: str,
        action: Action,
        decision: Verdict,
        reason: str = "",
        signers: tuple[str, ...] = (),
        runner_id: str = "",
    ) -> Entry:
        """Append one decision to the trail."""
        entry = Entry(
            job_id=job_id,
            action=action,
            decision=decision,
            reason=reason,
            signers=list(signers),
            runner_id=runner_id,
            where=self.where,
            at=time.time(),
        )
        text = json.dumps(asdict(entry))
        retention = self.store.settings.retention_seconds
        oldest = int((entry.at - retention) * 1000)
        per_job = keys.audit_of(job_id)
        with self.store.reach():
            pipe = self.store.redis.pipeline(transaction=False)
            pipe.xadd(STREAM, {"entry": text}, maxlen=MAX_ENTRIES, approximate=True)
            pipe.xtrim(STREAM, minid=str(oldest), approximate=True)
            pipe.rpush(per_job, text)
            pipe.expire(per_job, retention)
            pipe.execute()
        return entry

    def entries(self, job_id: str | None = None, limit: int = 50) -> list[Entry]:
        """Newest first: all decisions, or those about one job."""
        with self.store.reach():
            if job_id is not None:
                raw = self.store.redis.lrange(keys.audit_of(job_id), -limit, -1)[::-1]
            else:
                rows: list[Any] = self.store.redis.xrevrange(STREAM, count=limit)
                raw = [fields["entry"] for _, fields in rows]
        return [Entry(**json.loads(text)) for text in raw]


class AuditTrail(Subscriber):
    """The audit as a subscriber: every decision to run, refuse or cancel is an entry."""

    def __init__(self, audit: Audit) -> None:
        self.audit = audit

    def _record(self, event: Event, action: Action, decision: Verdict) -> None:
        self.audit.record(
            event.job_id,
            action,
            decision,
            str(event.get("reason", "")),
            tuple(event.get("signers", ())),
            event.runner_id,
        )

    def admitted(self, event: Event) -> None:
        """An accepted run."""
        self._record(event, "run", "accepted")

    def refused(self, event: Event) -> None:
        """A refused run (a replay, a bad signature, no grant...)."""
        self._record(event, "run", "refused")

    def cancel_requested(self, event: Event) -> None:
        """A cancel request, accepted or refused."""
        self._record(event, "cancel", "accepted" if event.get("accepted") else "refused")
