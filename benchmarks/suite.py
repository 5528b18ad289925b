"""Horus and plain Celery side by side, on the same broker, the same machine, in the same run.

Both sides run one worker of the same concurrency and store every result (plain Celery in
its result backend on the same Redis as Horus's records). Horus signs and verifies every
job and runs it sandboxed, as it does by default. Each figure is printed with Horus's
advantage (above 1: Horus is better) and, where the performance targets name one, whether
it is met; the table goes to ``benchmarks/results/latest.md`` (and ``.json``) and a plot to
``latest.png``.

    .venv/bin/python -m benchmarks.suite                # Redis, and RabbitMQ if reachable
    .venv/bin/python -m benchmarks.suite --tiny         # a few hundred jobs: does it work
    .venv/bin/python -m benchmarks.suite --broker redis --jobs 5000 --soak 50000
    .venv/bin/python -m benchmarks.suite --broker redis --soak-only --soak 50000 \\
        --out benchmarks/results/soak                   # the worker memory figure alone
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict
from pathlib import Path

HOME = Path(tempfile.mkdtemp(prefix="horus-suite-", dir="/tmp"))
os.environ["HORUS_HOME"] = str(HOME)
for _name in ("HORUS_BROKER_URL", "HORUS_RESULT_BACKEND", "HORUS_POLICY"):
    os.environ.pop(_name, None)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis  # noqa: E402
from kombu import Connection  # noqa: E402

from benchmarks import measure  # noqa: E402
from benchmarks.report import Row, ratio, write  # noqa: E402
from horus import config  # noqa: E402
from horus.client import Client  # noqa: E402
from horus.job import parse_job  # noqa: E402
from horus.services.embedded import EmbeddedRedis  # noqa: E402
from horus.trust import bootstrap  # noqa: E402
from tests.harness import REPO, WorkerProcess, end_group  # noqa: E402

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"
RESULTS = REPO / "benchmarks" / "results"
NOOP: dict[str, object] = {"runner_id": "python", "payload": "json:dumps", "params": {"obj": None}}
TRUE: dict[str, object] = {"runner_id": "shell", "payload": "true"}


def rabbit_reachable() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
    except OSError:
        return False
    return True


class Plain:
    """Plain Celery (:mod:`benchmarks.raw_app`) on one broker."""

    def __init__(self, broker: str, backend: str, concurrency: int) -> None:
        os.environ["RAW_BROKER_URL"], os.environ["RAW_RESULT_BACKEND"] = broker, backend
        for module in [m for m in sys.modules if m == "benchmarks.raw_app"]:
            del sys.modules[module]
        from benchmarks import raw_app

        self.app, self.tasks = raw_app.app, {"noop": raw_app.noop, "true": raw_app.run_true}
        self.concurrency = concurrency
        self.worker: subprocess.Popen[bytes] | None = None

    def publish(self, task: str, n: int) -> list[object]:
        return [self.tasks[task].apply_async(queue="raw") for _ in range(n)]

    @contextmanager
    def running(self) -> Iterator[int]:
        argv = [sys.executable, "-m", "celery", "-A", "benchmarks.raw_app", "worker", "-Q"]
        argv += ["raw", "-c", str(self.concurrency), "-l", "WARNING"]
        argv += ["--without-mingle", "--without-gossip", "--without-heartbeat"]
        self.worker = subprocess.Popen(
            argv,
            cwd=REPO,
            env=os.environ.copy(),
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield self.worker.pid
        finally:
            end_group(self.worker)

    @staticmethod
    def wait(handles: list[object]) -> None:
        for handle in handles:
            handle.get(timeout=600)  # type: ignore[attr-defined]


class Ours:
    """Horus on one broker."""

    def __init__(self, concurrency: int, policy: Path | None = None) -> None:
        self.client = Client()
        self.concurrency = concurrency
        self.env = {"HORUS_POLICY": str(policy)} if policy else {}

    def publish(self, kind: dict[str, object], n: int) -> list[str]:
        return [self.client.submit(parse_job(kind)) for _ in range(n)]

    def publish_many(self, kind: dict[str, object], n: int) -> list[str]:
        sent = self.client.submit_many([parse_job(kind) for _ in range(n)])
        assert all(s.error is None for s in sent), [s.error for s in sent if s.error][:3]
        return [str(s.id) for s in sent]

    @contextmanager
    def running(self, runner: str) -> Iterator[int]:
        worker = WorkerProcess([runner], self.concurrency, env=self.env).start()
        assert worker.proc is not None
        try:
            yield worker.proc.pid
        finally:
            worker.stop()

    def wait(self, ids: list[str]) -> None:
        for job_id in ids:
            result = self.client.wait(job_id, timeout=600)
            assert result.status.value == "completed", (result.status, result.error)


class Probes:
    """The broker's and the store's CPU seconds and memory."""

    def __init__(self, store: redis.Redis[bytes], rabbit: bool) -> None:
        self.store = measure.RedisProbe(store)
        self.rabbit = measure.RabbitProbe() if rabbit else None

    def cpu(self) -> float:
        return self.store.cpu() + (self.rabbit.cpu() if self.rabbit else 0.0)

    def memory(self) -> int:
        return self.store.memory() + (self.rabbit.memory() if self.rabbit else 0)


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def drain(
    start_worker: Callable[[], AbstractContextManager[int]],
    first: Callable[[], None],
    rest: Callable[[], None],
    probes: Probes,
    n: int,
) -> tuple[float, float]:
    """Jobs per second from the first result to the last (worker start-up left out), and
    CPU seconds per 1,000 jobs of this client, the worker and the broker."""
    with start_worker() as pid:
        first()
        cpu0 = measure.own_cpu() + measure.cpu_seconds(pid) + probes.cpu()
        start = time.perf_counter()
        rest()
        elapsed = time.perf_counter() - start
        cpu = measure.own_cpu() + measure.cpu_seconds(pid) + probes.cpu() - cpu0
    return (n - 1) / elapsed, cpu * 1000 / (n - 1)


def spawn_loop(n: int, processes: int) -> float:
    """Processes per second a bare `sh -c true` loop starts on ``processes`` cores."""
    code = (
        f"import subprocess\nfor _ in range({n // processes}): subprocess.run('true', shell=True)"
    )
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(processes)]
    for proc in procs:
        proc.wait()
    return (n // processes) * processes / (time.perf_counter() - start)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def purge(broker: str, queues: list[str]) -> None:
    """Empty queues an earlier run left on a shared broker."""
    for name in queues:
        try:
            with Connection(broker) as conn:
                conn.default_channel.queue_purge(name)  # type: ignore[attr-defined]
        except Exception:  # a queue that does not exist yet holds nothing
            continue


def bench_broker(name: str, broker: str, args: argparse.Namespace, policy_off: Path) -> list[Row]:
    settings = config.load()
    os.environ["HORUS_BROKER_URL"] = broker
    backend = settings.result_backend  # the embedded Redis: records and Celery's results
    store = redis.Redis(unix_socket_path=str(settings.embedded_socket))
    probes = Probes(store, rabbit=name == "rabbitmq")
    purge(broker, ["raw", "horus.python", "horus.shell"])
    plain, ours = Plain(broker, backend, args.concurrency), Ours(args.concurrency)
    n, rows = args.jobs, []
    if args.soak_only:
        return [soak(name, ours, args.soak)]

    def row(
        figure: str,
        unit: str,
        celery: float | None,
        horus: float,
        better: str,
        target: float | None = None,
    ) -> None:
        r = None if celery is None else ratio(celery, horus, better == "higher")
        rows.append(Row(name, figure, unit, celery, horus, r, target))
        print(
            f"  {figure:52s} celery {celery if celery is not None else '-':>10} "
            f"horus {horus:10.2f}  ratio {r if r is not None else '-'}",
            flush=True,
        )

    print(f"{name}: {n} jobs, concurrency {args.concurrency}", flush=True)
    # publishing one at a time, and the broker memory the queued jobs take
    mem0 = probes.memory()
    raw_handles: list[object] = []
    celery_rate = n / timed(lambda: raw_handles.extend(plain.publish("noop", n)))
    mem1 = probes.memory()
    ids: list[str] = []
    horus_rate = n / timed(lambda: ids.extend(ours.publish(NOOP, n)))
    mem2 = probes.memory()
    row("publish, one at a time", "jobs/s", celery_rate, horus_rate, "higher")
    row("broker memory per queued job", "bytes", (mem1 - mem0) / n, (mem2 - mem1) / n, "lower")

    # draining what was queued: no-op python jobs against Celery's in-process no-op task
    c_drain, c_cpu = drain(
        plain.running,
        lambda: raw_handles[0].get(timeout=120),  # type: ignore[attr-defined]
        lambda: plain.wait(raw_handles),
        probes,
        n,
    )
    h_drain, h_cpu = drain(
        lambda: ours.running("python"),
        lambda: ours.wait(ids[:1]),
        lambda: ours.wait(ids),
        probes,
        n,
    )
    row("drain of queued no-op jobs", "jobs/s", c_drain, h_drain, "higher", 0.8)
    row("CPU s per 1,000 no-op jobs (client+worker+broker)", "s", c_cpu, h_cpu, "lower")

    # bulk publishing, against Celery's one-at-a-time apply_async loop, then its drain
    bulk: list[str] = []
    bulk_rate = n / timed(lambda: bulk.extend(ours.publish_many(NOOP, n)))
    row(
        "bulk publish (submit_many) vs apply_async loop",
        "jobs/s",
        celery_rate,
        bulk_rate,
        "higher",
        10.0,
    )
    b_drain, _ = drain(
        lambda: ours.running("python"),
        lambda: ours.wait(bulk[:1]),
        lambda: ours.wait(bulk),
        probes,
        n,
    )
    row("drain of bulk-submitted no-op jobs", "jobs/s", c_drain, b_drain, "higher", 0.8)

    # shell `true`: submitted and waited for with the worker running
    with plain.running():
        plain.wait(plain.publish("true", 2))  # the worker consumes
        before = probes.store.commands()
        c_true = n / timed(lambda: plain.wait(plain.publish("true", n)))
        c_commands = (probes.store.commands() - before) / n
        samples = []
        for _ in range(args.roundtrips):
            samples.append(timed(lambda: plain.wait(plain.publish("noop", 1))) * 1000)
        c_p50, c_p99 = statistics.median(samples), percentile(samples, 0.99)
    with ours.running("shell"):
        ours.wait(ours.publish(TRUE, 2))
        before = probes.store.commands()
        h_true = n / timed(lambda: ours.wait(ours.publish_many(TRUE, n)))
        h_commands = (probes.store.commands() - before) / n
        samples = [
            timed(lambda: ours.wait(ours.publish(TRUE, 1))) * 1000 for _ in range(args.roundtrips)
        ]
        h_p50, h_p99 = statistics.median(samples), percentile(samples, 0.99)
    unsandboxed = Ours(args.concurrency, policy_off)
    with unsandboxed.running("shell"):
        unsandboxed.wait(unsandboxed.publish(TRUE, 2))
        h_plain = n / timed(lambda: unsandboxed.wait(unsandboxed.publish_many(TRUE, n)))
    row("shell `true` jobs, sandboxed", "jobs/s", c_true, h_true, "higher", 1.2)
    row("shell `true` jobs, sandbox off (reference)", "jobs/s", c_true, h_plain, "higher")
    store_side = "broker and store" if name == "redis" else "store (Redis)"
    row(f"Redis commands per shell job ({store_side})", "commands", c_commands, h_commands, "lower")
    spawn = spawn_loop(max(n, 200), args.concurrency)
    row("shell `true` jobs vs a bare spawn loop", "jobs/s", spawn, h_true, "higher")
    row("round trip p50, one job at a time", "ms", c_p50, h_p50, "lower", 0.5)
    row("round trip p99, one job at a time", "ms", c_p99, h_p99, "lower")
    # the same with a python no-op job (Celery: the same in-process no-op as above)
    with ours.running("python"):
        ours.wait(ours.publish(NOOP, 2))
        samples = [
            timed(lambda: ours.wait(ours.publish(NOOP, 1))) * 1000 for _ in range(args.roundtrips)
        ]
    row(
        "round trip p50, one python job at a time", "ms", c_p50, statistics.median(samples), "lower"
    )

    if args.soak:
        rows.append(soak(name, ours, args.soak))
    return rows


def soak(name: str, ours: Ours, jobs: int) -> Row:
    """Worker memory after ``jobs`` no-op python jobs against after the first tenth (at
    most 1,000): a worker that keeps something of each job grows between the two."""
    with ours.running("python") as pid:
        first = max(1, min(1000, jobs // 10))
        ours.wait(ours.publish_many(NOOP, first))
        early = measure.rss_bytes(pid)
        left = jobs - first
        while left > 0:
            batch = min(left, 5000)
            ours.wait(ours.publish_many(NOOP, batch))
            left -= batch
        late = measure.rss_bytes(pid)
    print(
        f"  worker memory: {early / 2**20:.1f} MB after {first:,} jobs, "
        f"{late / 2**20:.1f} MB after {jobs:,}",
        flush=True,
    )
    figure = f"worker memory after {first:,} jobs ÷ after {jobs:,}"
    return Row(name, figure, "MB", None, late / 2**20, early / late, 1 / 1.1)


def one_broker(name: str, args: argparse.Namespace) -> list[Row]:
    """The figures on broker ``name``, measured by a process of its own."""
    out = HOME / f"rows-{name}"
    argv = [sys.executable, "-m", "benchmarks.suite", "--broker", name, "--inner"]
    argv += ["--jobs", str(args.jobs), "--concurrency", str(args.concurrency)]
    argv += ["--roundtrips", str(args.roundtrips), "--soak", str(args.soak), "--out", str(out)]
    argv += ["--soak-only"] if args.soak_only else []
    env = {k: v for k, v in os.environ.items() if k != "HORUS_HOME"}
    subprocess.run(argv, cwd=REPO, env=env, check=True)
    return [Row(**row) for row in json.loads((out / "rows.json").read_text())]


def inner(name: str, args: argparse.Namespace) -> None:
    """Measure on broker ``name`` and leave the rows in ``args.out``/rows.json."""
    settings = config.load()
    bootstrap.init(settings)  # jobs are signed and verified, as after `horus up`
    policy_off = HOME / "policy-unsandboxed.toml"
    policy_off.write_text(settings.policy_path.read_text() + '\nsandbox = "none"\n')
    server = EmbeddedRedis(settings.home, settings.embedded_socket)
    server.start()
    try:
        url = RABBITMQ if name == "rabbitmq" else f"redis+socket://{settings.embedded_socket}"
        rows = bench_broker(name, url, args, policy_off)
    finally:
        server.stop()
        shutil.rmtree(HOME, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rows.json").write_text(json.dumps([asdict(r) for r in rows]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=["redis", "rabbitmq", "both"], default="both")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--roundtrips", type=int, default=200)
    parser.add_argument("--soak", type=int, default=50000, help="jobs for the memory figure")
    parser.add_argument(
        "--soak-only", action="store_true", help="only the worker memory figure (see --soak)"
    )
    parser.add_argument("--tiny", action="store_true", help="200 jobs: proves the suite works")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        inner(args.broker, args)
        return
    if args.tiny:
        args.jobs, args.roundtrips, args.soak = 200, 20, 300
    brokers = ["redis", "rabbitmq"] if args.broker == "both" else [args.broker]
    if args.broker == "both" and not rabbit_reachable():
        if os.environ.get("CI") == "true":
            sys.exit("benchmarks: RabbitMQ is not reachable on 127.0.0.1:5672; CI needs it")
        print("RabbitMQ is not reachable on 127.0.0.1:5672: Redis only", flush=True)
        brokers = ["redis"]
    rows: list[Row] = []
    try:
        for name in brokers:  # each broker in a process (and a Redis) of its own
            rows += one_broker(name, args)
    finally:
        shutil.rmtree(HOME, ignore_errors=True)
    what = f"{args.soak:,} jobs, worker memory only" if args.soak_only else f"{args.jobs} jobs"
    heading = (
        f"# Horus against plain Celery, {time.strftime('%Y-%m-%d')}: {what}, "
        f"concurrency {args.concurrency}, {os.cpu_count()} cores"
    )
    for path in write(rows, args.out, heading):
        print(f"wrote {path}")
    missed = [r for r in rows if r.verdict == "NOT met"]
    print(
        f"targets met: {sum(r.verdict == 'met' for r in rows)} of "
        f"{sum(bool(r.verdict) for r in rows)}"
    )
    if missed:
        print("not met: " + "; ".join(f"{r.broker} {r.figure}" for r in missed))


if __name__ == "__main__":
    main()
