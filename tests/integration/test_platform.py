"""`horus up` as a newcomer runs it, Flower, and the CLI with no broker to reach."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
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

    def horus(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_horus(*args, env=self.env)


@pytest.fixture(scope="module")
def up() -> Iterator[Up]:
    """`horus up` in its own HORUS_HOME: its own embedded Redis, workers and Flower."""
    home = Path(tempfile.mkdtemp(prefix="horus-up-", dir="/tmp"))
    env = {**os.environ, "HORUS_HOME": str(home)}
    port = free_port()
    proc = subprocess.Popen(
        horus_cmd("up", "--flower-port", str(port), "--concurrency", "1"),
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    handle = Up(proc, env, port, home)
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
