"""Where one job's round trip goes: submit, wait for the queue, run on the worker, reach the
client. One worker process, jobs one at a time, p50 of each leg, from the job's record.

    .venv/bin/python -m benchmarks.roundtrip --runner shell --jobs 150
    .venv/bin/python -m benchmarks.roundtrip --runner python --pause 0.1

It starts its own embedded Redis and worker under a HORUS_HOME of its own, and leaves
nothing behind. It needs nothing newer than the client and the records, so a copy of it
runs in a checkout of an earlier commit too: that is how two commits are compared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HOME = Path(tempfile.mkdtemp(prefix="horus-roundtrip-", dir="/tmp"))
os.environ["HORUS_HOME"] = str(HOME)
for _name in ("HORUS_BROKER_URL", "HORUS_RESULT_BACKEND", "HORUS_POLICY"):
    os.environ.pop(_name, None)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from horus import config  # noqa: E402
from horus.client import Client  # noqa: E402
from horus.job import parse_job  # noqa: E402
from horus.services.embedded import EmbeddedRedis  # noqa: E402
from horus.trust import bootstrap  # noqa: E402
from tests.harness import WorkerProcess  # noqa: E402

KINDS: dict[str, dict[str, object]] = {
    "shell": {"runner_id": "shell", "payload": "true"},
    "python": {"runner_id": "python", "payload": "json:dumps", "params": {"obj": None}},
}
LEGS = ("submit", "queued until started", "started until ended", "ended until the client knew")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runner", choices=sorted(KINDS), default="shell")
    parser.add_argument("--jobs", type=int, default=150)
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between two jobs")
    args = parser.parse_args()
    settings = config.load()
    bootstrap.init(settings)
    server = EmbeddedRedis(settings.home, settings.embedded_socket)
    server.start()
    worker = None
    try:
        worker = WorkerProcess([args.runner], 1).start()
        client, kind = Client(), KINDS[args.runner]
        for _ in range(3):  # warm up
            client.wait(client.submit(parse_job(kind)), timeout=60)
        legs: list[tuple[float, ...]] = []
        for _ in range(args.jobs):
            time.sleep(args.pause)
            sent = time.time()
            job_id = client.submit(parse_job(kind))
            submitted = time.time()
            client.wait(job_id, timeout=60)
            known = time.time()
            record = client.store.get(job_id)
            assert record.started_at is not None
            assert record.completed_at is not None
            started, ended = record.started_at.timestamp(), record.completed_at.timestamp()
            legs.append((submitted - sent, started - submitted, ended - started, known - ended))
        print(f"{args.runner} jobs, one at a time, pause {args.pause} s, p50 of {args.jobs}:")
        for i, leg in enumerate(LEGS):
            print(f"  {leg:32s} {statistics.median(x[i] for x in legs) * 1000:7.2f} ms")
        totals = [sum(x) * 1000 for x in legs]
        print(f"  {'round trip':32s} {statistics.median(totals):7.2f} ms")
        if len(totals) >= 100:
            p90, p99 = (statistics.quantiles(totals, n=100)[q - 1] for q in (90, 99))
            print(f"  {'round trip p90 / p99':32s} {p90:7.2f} / {p99:.2f} ms")
    finally:
        if worker is not None:
            worker.stop()
        server.stop()
        shutil.rmtree(HOME, ignore_errors=True)


if __name__ == "__main__":
    main()
