"""Throughput of Horus against raw Celery, on the same machine in the same run.

Both sides run the same work, the shell command `true` in a subprocess, on the same
embedded Redis with one worker process of the same concurrency. Raw Celery is a plain task
calling ``subprocess.run``; Horus adds its validation, job record, status transitions,
process-group handling and result. The figure that matters is the ratio, printed last.

    .venv/bin/python benchmarks/throughput.py [--jobs 400] [--concurrency 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOME = Path(tempfile.mkdtemp(prefix="horus-bench-", dir="/tmp"))
os.environ["HORUS_HOME"] = str(HOME)
for _name in ("HORUS_BROKER_URL", "HORUS_RESULT_BACKEND"):
    os.environ.pop(_name, None)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from horus import config  # noqa: E402
from horus.client import Client  # noqa: E402
from horus.job import Job, JobStatus  # noqa: E402
from horus.services.embedded import EmbeddedRedis  # noqa: E402
from horus.trust import bootstrap  # noqa: E402
from tests.harness import REPO, WorkerProcess, end_group  # noqa: E402


def raw_celery(jobs: int, concurrency: int) -> float:
    """Seconds for raw Celery to run ``jobs`` subprocess tasks, submit to last result."""
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "benchmarks.raw_app",
            "worker",
            "-Q",
            "raw",
            "-c",
            str(concurrency),
            "-l",
            "WARNING",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        from benchmarks.raw_app import app, run_true

        run_true.apply_async(queue="raw").get(timeout=60)  # warm: the worker is consuming
        start = time.perf_counter()
        results = [run_true.apply_async(queue="raw") for _ in range(jobs)]
        for result in results:
            assert result.get(timeout=120) == 0
        elapsed = time.perf_counter() - start
        app.close()
        return elapsed
    finally:
        end_group(worker)


def horus(jobs: int, concurrency: int) -> float:
    """Seconds for Horus to run ``jobs`` shell jobs `true`, submit to last result."""
    worker = WorkerProcess(["shell"], concurrency).start()
    try:
        client = Client()
        client.run_job_and_await_result(Job.new("shell", "true"), timeout=60)  # warm
        start = time.perf_counter()
        ids = [client.submit(Job.new("shell", "true")) for _ in range(jobs)]
        for job_id in ids:
            assert client.wait(job_id, timeout=120).status is JobStatus.COMPLETED
        return time.perf_counter() - start
    finally:
        worker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved raw/Horus rounds")
    args = parser.parse_args()
    settings = config.load()
    bootstrap.init(settings)  # Horus jobs are signed and verified, as after `horus up`
    server = EmbeddedRedis(settings.home, settings.embedded_socket)
    server.start()
    ratios = []
    try:
        for round_no in range(1, args.rounds + 1):
            raw = raw_celery(args.jobs, args.concurrency)
            ours = horus(args.jobs, args.concurrency)
            ratios.append(raw / ours)
            print(
                f"round {round_no}: raw Celery {args.jobs / raw:6.1f} jobs/s, "
                f"Horus {args.jobs / ours:6.1f} jobs/s, ratio {raw / ours:.2f}"
            )
    finally:
        server.stop()
        shutil.rmtree(HOME, ignore_errors=True)
    print(
        f"Horus / raw Celery throughput ratio (median of {args.rounds}): "
        f"{statistics.median(ratios):.2f}"
    )


if __name__ == "__main__":
    main()
