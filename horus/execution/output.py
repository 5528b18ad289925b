"""The output sink of one attempt (:class:`~horus.runner.OutputSink`): it decodes what the
job writes, masks its secrets at the source (a secret cut in two by a chunk boundary too)
and tells the event bus, whose output subscriber keeps the job's live stream."""

from __future__ import annotations

import codecs
from collections.abc import Iterable

from horus.events import Bus
from horus.job import Job
from horus.trust.sealing import REDACT_MIN, redact


class Output:
    """Where one attempt's output goes as it comes."""

    def __init__(self, bus: Bus, job: Job, attempt: int, secrets: Iterable[str] = ()) -> None:
        self.bus, self.job, self.attempt = bus, job, attempt
        self.secrets = [s for s in secrets if len(s) >= REDACT_MIN]
        #: characters held back at a chunk's end: a secret may go on in the next chunk
        self.hold = max((len(s) for s in self.secrets), default=1) - 1
        self._decoders: dict[str, codecs.IncrementalDecoder] = {}
        self._held: dict[str, str] = {}

    def write(self, stream: str, data: bytes) -> None:
        """Take one chunk the job wrote on ``stream``."""
        decoder = self._decoders.setdefault(
            stream, codecs.getincrementaldecoder("utf-8")("replace")
        )
        text = redact(self._held.get(stream, "") + decoder.decode(data), self.secrets) or ""
        cut = max(0, len(text) - self.hold)
        self._held[stream] = text[cut:]
        self._emit(stream, text[:cut])

    def close(self) -> None:
        """Send what is held back (the job's processes are gone)."""
        for stream, decoder in self._decoders.items():
            rest = redact(
                self._held.get(stream, "") + decoder.decode(b"", final=True), self.secrets
            )
            self._held[stream] = ""
            self._emit(stream, rest or "")

    def _emit(self, stream: str, text: str) -> None:
        if text:
            self.bus.emit(
                "output", self.job.id, self.job.runner_id, self.attempt, stream=stream, data=text
            )
