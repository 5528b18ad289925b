"""Fault injection: submit jobs whose effect goes to a ledger, inject a fault, and count the
jobs lost, the effects duplicated, the jobs run twice and the jobs recovered.

    python benchmarks/faults.py                      # every fault, full size, on Redis
    python benchmarks/faults.py --short              # the CI version
    python benchmarks/faults.py --short --broker rabbitmq
    python benchmarks/faults.py --fault pool-kill --jobs 3000

Jobs are submitted in groups of five, one at a time and (every other group) with one
``submit_many``. Every job appends one line, ``<job id> <attempt>``, to a ledger file this
suite owns. A job
is lost when it did not complete or left no line; an effect is duplicated when a job left
more than one line; a job is saved when it exited 0 just as its worker process died and was
completed from its noted exit instead of run again. Each fault runs in a fresh process
with its own HORUS_HOME, embedded Redis (the job store; also the broker unless ``--broker
rabbitmq``), workers and sweeper, with short leases so that recovery shows within seconds.
The exit status is 1 if any job was lost or any effect duplicated.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"
TIMING = {
    "HORUS_LEASE": "3",
    "HORUS_SWEEP_INTERVAL": "0.5",
    "HORUS_RETRY_BASE": "1",
    "HORUS_REPUBLISH_AFTER": "15",
    "HORUS_SHUTDOWN_GRACE": "2",
}
FAULTS = [
    "pool-kill",
    "worker-kill",
    "broker-restart",
    "store-kill",
    "proxy-drop",
    "visibility",
    "poison",
]
#: faults that need the broker to be the embedded Redis (killed, or with a visibility timeout);
#: store-kill kills only the job store, the embedded Redis whatever the broker
REDIS_ONLY = {"broker-restart", "visibility"}
FULL_JOBS = {"pool-kill": 2000, "worker-kill": 1000, "store-kill": 600}


# -- the driver: one child process per fault -----------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fault", choices=FAULTS, action="append", help="default: all")
    parser.add_argument("--broker", choices=["redis", "rabbitmq"], default="redis")
    parser.add_argument("--short", action="store_true", help="the quick version CI runs")
    parser.add_argument("--jobs", type=int, help="jobs per fault (default: by fault and size)")
    parser.add_argument("--run", choices=FAULTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_fault(args.run, args.broker, args.jobs or 200, args.short)))
        return
    faults = [f for f in args.fault or FAULTS if args.broker == "redis" or f not in REDIS_ONLY]
    reports = []
    for fault in faults:
        jobs = args.jobs or (150 if args.short else FULL_JOBS.get(fault, 500))
        argv = [sys.executable, __file__, "--run", fault, "--broker", args.broker]
        argv += ["--jobs", str(jobs)] + (["--short"] if args.short else [])
        done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=900)
        if done.returncode != 0 or not done.stdout.strip():
            print(f"{fault}: the run failed\n{done.stderr[-4000:]}", file=sys.stderr)
            sys.exit(2)
        report = json.loads(done.stdout.strip().splitlines()[-1])
        reports.append(report)
        print(line(report), flush=True)
    bad = [r for r in reports if r["lost"] or r["duplicated"]]
    for report in bad:  # what the next reader needs to tell the cause
        print(f"{report['fault']}: {json.dumps(report['evidence'], indent=1)}", flush=True)
    sys.exit(1 if bad else 0)


def line(r: dict[str, Any]) -> str:
    """One report as a table row."""
    rec = r["recovery_s"]
    recovery = f"{rec['median']:.1f}/{rec['max']:.1f} s" if rec else "-"
    return (
        f"{r['fault']:<15} {r['broker']:<9} jobs {r['jobs']:>5}  lost {r['lost']}  "
        f"duplicated {r['duplicated']}  run twice {r['run_twice']}  "
        f"recovered {r['recovered']}  saved {r['saved']}  recovery median/max {recovery}  "
        f"faults {r['injected']}  {r['seconds']:.0f} s{r['note']}"
    )


# -- one fault, in its own process ---------------------------------------------------------


def run_fault(fault: str, broker: str, jobs: int, short: bool) -> dict[str, Any]:
    """Set up a platform, run ``jobs`` jobs through ``fault``, and report."""
    home = Path(tempfile.mkdtemp(prefix=f"horus-fault-{fault}-", dir="/tmp"))
    os.environ.update({"HORUS_HOME": str(home), **TIMING})
    if fault == "visibility":
        os.environ["HORUS_VISIBILITY_TIMEOUT"] = "3"
    socket_url = f"redis+socket://{home / 'redis.sock'}"
    worker_env = {"HORUS_RESULT_BACKEND": socket_url}
    worker_env["HORUS_BROKER_URL"] = RABBITMQ if broker == "rabbitmq" else socket_url
    proxy: Proxy | None = None
    if fault == "proxy-drop":  # the submitter reaches the broker through a proxy that drops
        target = ("127.0.0.1", 5672) if broker == "rabbitmq" else str(home / "redis.sock")
        proxy = Proxy(target)
        scheme = "amqp://guest:guest@" if broker == "rabbitmq" else "redis://"
        os.environ["HORUS_BROKER_URL"] = f"{scheme}127.0.0.1:{proxy.port}/"
        if broker == "redis":
            os.environ["HORUS_BROKER_URL"] += "0"
    else:
        os.environ["HORUS_BROKER_URL"] = worker_env["HORUS_BROKER_URL"]
    os.environ["HORUS_RESULT_BACKEND"] = socket_url
    sys.path.insert(0, str(REPO))
    from benchmarks.fault_platform import Platform

    platform = Platform(home, worker_env, broker)
    try:
        return platform.run(fault, jobs, short, proxy)
    finally:
        platform.close()
        if proxy is not None:
            proxy.close()


class Proxy:
    """A loopback TCP proxy to ``target`` that can drop every connection it carries."""

    def __init__(self, target: tuple[str, int] | str) -> None:
        self.target = target
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.port = int(self.server.getsockname()[1])
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _connect(self) -> socket.socket:
        if isinstance(self.target, str):
            upstream = socket.socket(socket.AF_UNIX)
        else:
            upstream = socket.socket()
        upstream.connect(self.target)
        return upstream

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.server.accept()
                upstream = self._connect()
            except OSError:
                continue
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def drop(self) -> int:
        """Cut every connection now; returns how many."""
        with self.lock:
            conns, self.conns = self.conns, []
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            except OSError:
                pass
        return len(conns) // 2

    def close(self) -> None:
        self.closed = True
        self.drop()
        self.server.close()


def summarize(
    fault: str,
    broker: str,
    records: dict[str, dict[str, Any]],
    ledger: Path,
    kills: list[float],
    started: float,
    poison: set[str],
    note: str = "",
) -> dict[str, Any]:
    """Count lost, duplicated, run twice and recovered from the records and the ledger."""
    written = ledger.read_text().splitlines() if ledger.exists() else []
    lines = Counter(text.split()[0] for text in written)
    honest = [j for j in records if j not in poison]
    lost = [j for j in honest if records[j].get("status") != "completed" or lines[j] == 0]
    duplicated = [j for j in honest if lines[j] > 1]
    run_twice = [j for j in honest if int(records[j].get("attempt") or 0) > 1]
    # exited 0 as its worker process died: completed from the noted exit, not run again
    saved = [j for j in honest if "died after the job exited 0" in (records[j].get("result") or "")]
    recovered, waits = 0, []
    for job_id in honest:
        history = json.loads(records[job_id].get("history") or "[]")
        lost_attempts = [h for h in history if h["status"] in ("lost", "handed back")]
        if not lost_attempts or records[job_id].get("status") != "completed":
            continue
        recovered += 1
        started_at = records[job_id].get("started_at")
        restarted = datetime.fromisoformat(started_at).timestamp() if started_at else 0.0
        before = [k for k in kills if k <= restarted]
        if restarted and before:
            waits.append(restarted - before[-1])
    waits.sort()
    evidence = {
        job_id: {
            "ledger": [text for text in written if text.split()[0] == job_id],
            "record": {
                k: records[job_id].get(k)
                for k in ("status", "attempt", "exited", "worker", "result", "history")
            },
        }
        for job_id in (lost[:3] + duplicated[:3])
    }
    return {
        "fault": fault,
        "broker": broker,
        "jobs": len(honest),
        "lost": len(lost),
        "lost_ids": lost[:10],
        "duplicated": len(duplicated),
        "duplicated_ids": duplicated[:10],
        "run_twice": len(run_twice),
        "saved": len(saved),
        "recovered": recovered,
        "recovery_s": {"median": waits[len(waits) // 2], "max": waits[-1]} if waits else None,
        "injected": len(kills),
        "seconds": time.time() - started,
        "note": note,
        "evidence": evidence,
    }


if __name__ == "__main__":
    main()
