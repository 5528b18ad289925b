"""Run a runner on a job in this process, as a worker would but with no broker, store or
worker (its processes still get a process group, the job's deadline and environment)."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from horus import registry
from horus.execution.launcher import AttemptLauncher
from horus.job import parse_job
from horus.runner import DISCARD, Outcome, OutputSink, RunContext, Runner


def run_locally(
    runner: Runner | str,
    payload: str,
    workdir: Path | None = None,
    output: OutputSink = DISCARD,
    cancel: threading.Event | None = None,
    config: dict[str, Any] | None = None,
    **fields: Any,
) -> Outcome:
    """Validate a job for ``runner`` (an installed runner's name, or a runner) as the client
    and the worker do, then run it; ``fields`` are the job's other fields (``params``,
    ``timeout``, ``env_vars``...). Setting ``cancel`` cancels it. ``config`` is the
    runner's table of ``runners.toml``, checked as a worker checks it."""
    plugin = registry.installed().get(runner) if isinstance(runner, str) else runner
    job = parse_job({"runner_id": plugin.name, "payload": payload, **fields})
    params = registry.validate(plugin, job)
    stop = cancel or threading.Event()
    with tempfile.TemporaryDirectory(prefix="horus-local-") as scratch:
        ctx = RunContext(
            job=job,
            workdir=workdir or Path(scratch),
            deadline=time.monotonic() + job.timeout,
            launcher=AttemptLauncher(job.id, 1, None, stop, tee=output),
            params=params,
            config=registry.configure(plugin, config or {}),
            output=output,
        )
        return plugin.run(ctx)


class RecordingSink:
    """An output sink that keeps what a runner wrote, by stream."""

    def __init__(self) -> None:
        self.chunks: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()

    def write(self, stream: str, data: bytes) -> None:
        """Keep ``data``."""
        with self._lock:
            self.chunks.append((stream, bytes(data)))

    def text(self, stream: str = "stdout") -> str:
        """What was written to ``stream``, decoded."""
        with self._lock:
            return b"".join(d for s, d in self.chunks if s == stream).decode("utf-8", "replace")
