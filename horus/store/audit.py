"""The audit trail: every decision to run or refuse a job, or to honour a cancel request.

It is a subscriber of the job events (:mod:`horus.events`): ``admitted`` and ``refused``
are decisions to run, ``cancel_requested`` a decision on a cancel. Each entry goes to the
stream ``horus:audit`` (trimmed to the retention period) and to the job's own list.

The stream is an append-only hash chain: each entry carries its sequence number, the hash
of the entry before it and its own hash (SHA-256 over both), and ``horus:audit:head`` holds
the newest; :meth:`Audit.verify` (``horus audit verify``) names the first entry that was
changed or removed. Entries trimmed at the retention period are gone on purpose: the walk
starts at the oldest one kept.
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast

from redis.exceptions import WatchError

from horus.errors import HorusError
from horus.events import Event, Subscriber
from horus.store import keys
from horus.store.records import Store

STREAM = keys.AUDIT
#: the chain's head: the sequence number and hash of the newest entry
HEAD = f"{keys.AUDIT}:head"
#: the hash the first entry of a chain follows
GENESIS = "0" * 64
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


class AuditBroken(HorusError):
    """The audit chain does not hold: an entry was changed or removed."""


@dataclass(frozen=True)
class Verified:
    """What :meth:`Audit.verify` checked: how many entries, from which sequence number (the
    older ones were trimmed at the retention period) to which."""

    entries: int
    first: int
    last: int


def chain(prev: str, text: str) -> str:
    """The hash of an entry: SHA-256 over the previous entry's hash and its own text."""
    return hashlib.sha256(f"{prev}\n{text}".encode()).hexdigest()


def _head(raw: str | None) -> tuple[int, str]:
    if not raw:
        return 0, GENESIS
    seq, _, link = raw.partition(" ")
    return int(seq), link


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
        with self.store.reach(), self.store.redis.pipeline() as pipe:
            while True:  # the chain's head moves under concurrent writers: try again
                try:
                    pipe.watch(HEAD)
                    seq, prev = _head(cast(str | None, pipe.get(HEAD)))  # watching: at once
                    link = chain(prev, text)
                    pipe.multi()
                    pipe.xadd(
                        STREAM,
                        {"entry": text, "seq": seq + 1, "prev": prev, "hash": link},
                        maxlen=MAX_ENTRIES,
                        approximate=True,
                    )
                    pipe.set(HEAD, f"{seq + 1} {link}")
                    pipe.xtrim(STREAM, minid=str(oldest), approximate=True)
                    pipe.rpush(per_job, text)
                    pipe.expire(per_job, retention)
                    pipe.execute()
                    return entry
                except WatchError:
                    continue

    def verify(self) -> Verified:
        """Walk the chain from its oldest kept entry to its head; :class:`AuditBroken`
        names the first entry that was changed, removed or added out of the chain."""
        with self.store.reach():
            head = _head(self.store.redis.get(HEAD))
            rows: list[Any] = self.store.redis.xrange(STREAM)
        prev: str | None = None
        seq: int | None = None
        for stream_id, fields in rows:
            text, link = fields.get("entry", ""), fields.get("hash", "")
            try:
                number = int(fields.get("seq", ""))
            except ValueError:
                raise AuditBroken(f"entry {stream_id} is not part of the chain") from None
            if seq is not None and number != seq + 1:
                raise AuditBroken(
                    f"entries {seq + 1} to {number - 1} were removed (before entry {number}, "
                    f"{stream_id})"
                )
            if prev is not None and fields.get("prev") != prev:
                raise AuditBroken(f"entry {number} ({stream_id}) does not follow entry {seq}")
            if chain(str(fields.get("prev", "")), text) != link:
                raise AuditBroken(f"entry {number} ({stream_id}) was changed after it was written")
            prev, seq = link, number
        if head[0] and (seq, prev) != head:
            last = seq or 0
            raise AuditBroken(f"entries {last + 1} to {head[0]} were removed (the newest)")
        return Verified(len(rows), (rows and int(rows[0][1].get("seq", 0))) or 0, head[0])

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
