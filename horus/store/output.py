"""A job's live output: a capped stream per job in the store, written as the job writes
(by :class:`OutputStream`, a subscriber of the ``output`` and ``ended`` events) and read by
``horus logs`` and ``Client.logs``.

Each entry of ``horus:output:<id>`` holds ``stream`` (stdout / stderr), ``attempt`` and
``data`` (text, secrets already masked); the job's end adds one entry with ``end`` (its final
status). A job keeps at most :data:`STREAM_CAP` bytes there; the stream expires with the
record.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from horus.events import Event, Subscriber
from horus.store import keys
from horus.store.records import Store

#: bytes of live output a job keeps in the store (the result keeps its own capped copy)
STREAM_CAP = 1024 * 1024
#: seconds a follower blocks on the stream before it looks at the record again
FOLLOW_BLOCK = 1.0
#: jobs whose byte counts a process keeps (a pool process runs one job at a time; the
#: oldest counts go first, so a job that ended elsewhere, handed back or lost, cannot leak)
TRACKED = 64


@dataclass(frozen=True)
class Chunk:
    """One piece of what a job wrote."""

    stream: str
    data: str
    attempt: int


class OutputStream(Subscriber):
    """Appends each chunk a job writes to its stream, up to :data:`STREAM_CAP` bytes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._written: OrderedDict[str, int] = OrderedDict()

    def output(self, event: Event) -> None:
        """Append one chunk (the part that fits; a mark once the cap is reached)."""
        written = self._written.get(event.job_id, 0)
        if written > STREAM_CAP:
            return  # cut already, and the stream says so
        data = str(event.get("data", ""))
        size = len(data.encode())
        if written + size > STREAM_CAP:
            data = data.encode()[: STREAM_CAP - written].decode(errors="ignore")
            data += "\n[horus: live output truncated; the result keeps its own copy]\n"
            size = STREAM_CAP + 1 - written  # past the cap: nothing more is kept
        self._written[event.job_id] = written + size
        self._written.move_to_end(event.job_id)
        while len(self._written) > TRACKED:
            self._written.popitem(last=False)
        self._append(
            event.job_id,
            {"stream": event.get("stream", "stdout"), "attempt": str(event.attempt), "data": data},
        )

    def ended(self, event: Event) -> None:
        """Mark the end of the job's output."""
        self._written.pop(event.job_id, None)
        self._append(event.job_id, {"end": str(event.get("status", ""))})

    def _append(self, job_id: str, fields: dict[str, str]) -> None:
        key = keys.output(job_id)
        with self.store.reach():
            pipe = self.store.redis.pipeline(transaction=False)
            pipe.xadd(key, fields)
            pipe.expire(key, self.store.settings.retention_seconds)
            pipe.execute()


def chunks(store: Store, job_id: str, follow: bool = False) -> Iterator[Chunk]:
    """What job ``job_id`` wrote so far, in order; with ``follow``, also what it writes next,
    until it ends (its record is read again every :data:`FOLLOW_BLOCK` seconds, should the
    end mark be missing)."""
    key, last = keys.output(job_id), "0-0"
    while True:
        with store.reach():
            block = int(FOLLOW_BLOCK * 1000) if follow else None
            reply = store.redis.xread({key: last}, count=500, block=block)
        entries = reply[0][1] if reply else []
        for entry_id, fields in entries:
            last = entry_id
            if "end" in fields:
                return
            yield Chunk(
                fields.get("stream", "stdout"),
                fields.get("data", ""),
                int(fields.get("attempt") or 0),
            )
        if entries:
            continue  # read on until the stream is drained
        if not follow or store.status(job_id).terminal:
            return  # a job that ended with no end mark (the mark could not be written)
