"""A job's live output stream in the store: what `horus logs` reads."""

from __future__ import annotations

import uuid

from horus.events import Event
from horus.store import output
from horus.store.output import STREAM_CAP, TRACKED, OutputStream
from horus.store.records import Store


def chunk(job_id: str, data: str, stream: str = "stdout") -> Event:
    return Event("output", job_id, "shell", 1, {"stream": stream, "data": data})


def test_chunks_read_back_in_order_and_the_end_mark_stops_a_follower(store: Store) -> None:
    sink, job_id = OutputStream(store), uuid.uuid4().hex
    sink.output(chunk(job_id, "1\n"))
    sink.output(chunk(job_id, "oops\n", "stderr"))
    sink.ended(Event("ended", job_id, "shell", 1, {"status": "failed"}))
    got = [(c.stream, c.data) for c in output.chunks(store, job_id, follow=True)]
    assert got == [("stdout", "1\n"), ("stderr", "oops\n")]


def test_a_job_keeps_at_most_the_cap_and_says_it_was_cut(store: Store) -> None:
    sink, job_id = OutputStream(store), uuid.uuid4().hex
    for _ in range(STREAM_CAP // 65536 + 3):
        sink.output(chunk(job_id, "é" * 32768))  # 64 KiB of two-byte characters
    kept = list(output.chunks(store, job_id))
    text = "".join(c.data for c in kept)
    body, _, note = text.partition("\n[horus: live output truncated")
    assert len(body.encode()) <= STREAM_CAP
    assert len(body.encode()) > STREAM_CAP - 4  # cut at a character, not short of the cap
    assert note.startswith("; the result keeps its own copy]")


def test_jobs_that_never_end_here_do_not_grow_the_counts(store: Store) -> None:
    sink = OutputStream(store)
    for _ in range(TRACKED * 3):  # handed back or lost: their end is written elsewhere
        sink.output(chunk(uuid.uuid4().hex, "x"))
    assert len(sink._written) == TRACKED
