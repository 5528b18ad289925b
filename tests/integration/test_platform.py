"""`horus up` as a newcomer runs it, Flower, and the CLI with no broker to reach."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from horus.services.embedded import EmbeddedRedis, answers
from tests.harness import REPO, end_group, horus_cmd, pid_alive, run_horus, wait_until

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def flower_tasks(port: int) -> list[dict[str, object]]:
    query = (
        "draw=1&start=0&length=100&search%5Bvalue%5D=&order%5B0%5D%5Bcolumn%5D=0"
        "&columns%5B0%5D%5Bdata%5D=name&order%5B0%5D%5Bdir%5D=asc"
    )
    with urllib.request.urlopen(
        f"http://127.0.0.1:{port}/tasks/datatable?{query}", timeout=5
    ) as reply:
        return list(json.load(reply)["data"])


@dataclass
class Up:
    proc: subprocess.Popen[str]
    env: dict[str, str]
    port: int
    home: Path
    metrics_port: int

    def horus(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_horus(*args, env=self.env)


@pytest.fixture(scope="module")
def up() -> Iterator[Up]:
    """`horus up` in its own HORUS_HOME: its own embedded Redis, workers and Flower."""
    home = Path(tempfile.mkdtemp(prefix="horus-up-", dir="/tmp"))
    env = {**os.environ, "HORUS_HOME": str(home)}
    port, metrics_port = free_port(), free_port()
    proc = subprocess.Popen(
        horus_cmd(
            "up",
            "--flower-port",
            str(port),
            "--metrics-port",
            str(metrics_port),
            "--concurrency",
            "1",
        ),
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    handle = Up(proc, env, port, home, metrics_port)
    try:
        assert wait_until(
            lambda: (
                len(
                    json.loads(handle.horus("runners", "--json").stdout or "{}")
                    .get("shell", {})
                    .get("workers", [])
                )
                > 0
            ),
            timeout=60,
            step=0.5,
        ), "horus up did not start a shell worker"
        yield handle
    finally:
        end_group(proc, grace=40)
        shutil.rmtree(home, ignore_errors=True)


COUNT = "for i in 1 2 3; do echo $i; sleep 1; done"


def timed_lines(argv: list[str], env: dict[str, str]) -> list[tuple[float, str]]:
    """The stdout lines of a command, each with the time it arrived."""
    proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = [(time.monotonic(), line.rstrip("\n")) for line in proc.stdout]
    assert proc.wait(30) == 0
    return lines


def test_wait_and_logs_follow_show_the_output_as_the_job_writes_it(up: Up) -> None:
    """The issue's check: 1, 2 and 3 arrive a second apart, through `enqueue --wait` and
    through `horus logs -f ID` in a second terminal."""
    started = subprocess.Popen(
        horus_cmd("enqueue", "shell", COUNT, "--wait"),
        env=up.env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert started.stdout is not None
    assert started.stderr is not None
    job_id = started.stderr.readline().strip()  # the id comes first, on stderr
    followed: list[list[tuple[float, str]]] = []
    follow = threading.Thread(
        target=lambda: followed.append(timed_lines(horus_cmd("logs", "-f", job_id), up.env))
    )
    follow.start()
    waited = [(time.monotonic(), line.rstrip("\n")) for line in started.stdout]
    assert started.wait(30) == 0
    follow.join(30)
    follower = followed[0]
    for lines in (follower, waited):
        assert [text for _, text in lines] == ["1", "2", "3"]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(waited)]
    assert all(0.5 < gap < 2.0 for gap in gaps), gaps
    # the follower starts once the job has: what came before arrives at once, the rest live
    assert 0.5 < follower[2][0] - follower[1][0] < 2.0, follower
    # Afterwards, `horus logs` prints what the job wrote and exits.
    assert up.horus("logs", job_id).stdout == "1\n2\n3\n"


def test_metrics_endpoint_counts_jobs_under_their_runner_and_status(up: Up) -> None:
    assert up.horus("enqueue", "shell", "true", "--wait").returncode == 0
    assert up.horus("enqueue", "shell", "sleep 5", "--timeout", "1", "--wait").returncode == 3

    def scrape() -> str:
        url = f"http://127.0.0.1:{up.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as reply:
            return str(reply.read().decode())

    text = scrape()
    assert 'horus_jobs_total{runner="shell",status="completed"}' in text
    assert 'horus_jobs_total{runner="shell",status="timeout"}' in text
    assert "horus_metrics_store_up 1.0" in text
    # `horus metrics` prints the same counts once.
    assert 'horus_jobs_total{runner="shell",status="timeout"}' in up.horus("metrics").stdout


def test_horus_up_runs_jobs_shows_them_in_flower_and_stops_leaving_nothing(up: Up) -> None:
    hello = up.horus("enqueue", "shell", "echo hello", "--wait")
    assert (hello.returncode, hello.stdout) == (0, "hello\n")
    failed = up.horus("enqueue", "shell", "echo oops >&2; exit 3", "--wait", "--json")
    assert failed.returncode == 1
    result = json.loads(failed.stdout)
    shown = up.horus("result", result["job_id"])
    assert "status:     failed" in shown.stdout
    assert "exit code:  3" in shown.stdout
    assert "oops" in shown.stdout

    def in_flower() -> dict[str, dict[str, object]]:
        try:
            return {str(t["uuid"]): t for t in flower_tasks(up.port)}
        except OSError:
            return {}

    assert wait_until(lambda: result["job_id"] in in_flower(), timeout=30, step=0.5)
    task = in_flower()[result["job_id"]]
    assert task["state"] == "FAILURE"  # a failed job is not shown as a success
    assert task["routing_key"] == "horus.shell"
    assert "runner=shell" in str(task["args"])

    children = subprocess.run(["pgrep", "-s", str(up.proc.pid)], capture_output=True, text=True)
    pids = [int(p) for p in children.stdout.split()]
    up.proc.send_signal(signal.SIGINT)
    output, _ = up.proc.communicate(timeout=60)
    assert up.proc.returncode == 0, output
    assert "Horus stopped." in output
    # It printed a line for each job's start and end, with its id, runner and status.
    ended = [line for line in output.splitlines() if result["job_id"] in line]
    assert any(" shell  started  attempt 1" in line for line in ended), output
    assert any(" shell  failed  " in line for line in ended), output
    assert not (up.home / "run" / "up.pid").exists()
    assert not answers(up.home / "redis.sock")
    # Every child of `horus up` (Redis, workers, pool processes, Flower) is gone.
    assert [p for p in pids if pid_alive(p)] == []
    time.sleep(0.2)
    assert not any(pid_alive(p) for p in _descendants_recorded(up))

    # The embedded Redis kept its data: the records are still there after a restart.
    server = EmbeddedRedis(up.home, up.home / "redis.sock")
    server.start()
    try:
        assert up.horus("status", result["job_id"]).stdout == "failed\n"
    finally:
        server.stop()


def _descendants_recorded(up: Up) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [
        int(line.split()[0])
        for line in out.splitlines()[1:]
        if str(up.home) in line or f"--port={up.port}" in line
    ]


def test_cli_without_a_reachable_broker_says_so_in_one_line(
    request: pytest.FixtureRequest,
) -> None:
    home = tempfile.mkdtemp(prefix="horus-none-", dir="/tmp")
    env = {**os.environ, "HORUS_HOME": home}
    request.addfinalizer(lambda: shutil.rmtree(home, ignore_errors=True))
    for args in (("enqueue", "shell", "echo hi"), ("list",), ("status", "abc")):
        run = run_horus(*args, env=env)
        assert run.returncode == 5
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1, run.stderr
        assert "cannot reach the broker" in lines[0]
        assert "horus up" in lines[0]
        assert "Traceback" not in run.stderr
