"""The platform process: `horus up` stops on Ctrl-C with its stdout a closed pipe, a
service that cannot start stops it with the cause, and `horus down` stops it from another
terminal."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from horus.services.embedded import answers
from tests.harness import REPO, end_group, horus_cmd, pid_alive, run_horus, wait_until
from tests.integration.test_platform import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def home() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="horus-up-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def start_up(home: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`horus up` on free ports, in its own HORUS_HOME, reading its stdout through a pipe."""
    argv = horus_cmd(
        "up", "-c", "1", "--flower-port", str(free_port()), "--metrics-port", str(free_port())
    )
    return subprocess.Popen(
        [*argv, *extra],
        env={**os.environ, "HORUS_HOME": str(home), **(env or {})},
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_up(proc: subprocess.Popen[str]) -> list[str]:
    """Read the banner up to its last line; the lines read."""
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("Press Ctrl-C"):
            return lines
    raise AssertionError(f"horus up ended before it was up: {lines} {proc.stderr}")


def services(home: Path) -> list[int]:
    """Every live process started with this HORUS_HOME (in its environment or arguments)."""
    mark = str(home).encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            seen = (proc / "environ").read_bytes() + (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if mark in seen and pid_alive(int(proc.name)):
            found.append(int(proc.name))
    return found


def test_ctrl_c_stops_everything_when_stdout_is_a_closed_pipe(home: Path) -> None:
    """`horus up | cat`, then Ctrl-C: cat is gone, so every line after it hits a closed pipe."""
    proc = start_up(home)
    try:
        banner = wait_up(proc)
        assert any("isolation: bubblewrap sandbox" in line for line in banner), banner
        assert proc.stdout is not None
        proc.stdout.close()  # the reader is gone
        env = {**os.environ, "HORUS_HOME": str(home)}
        assert run_horus("enqueue", "shell", "echo hi", "--wait", env=env).returncode == 0
        children = [p for p in services(home) if p != proc.pid]
        assert children
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(60) == 0
        assert proc.stderr is not None
        assert "Traceback" not in proc.stderr.read()
        assert wait_until(lambda: not any(pid_alive(p) for p in children), timeout=5)
        assert not answers(home / "redis.sock")
        assert not (home / "run" / "up.pid").exists()
    finally:
        end_group(proc)


def test_a_service_that_cannot_start_stops_up_non_zero_with_its_cause(home: Path) -> None:
    proc = start_up(home, env={"FLOWER_MAX_TASKS": "many"})  # Flower cannot parse it
    try:
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 1, out + err
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("horus: Flower exited at start with code 1: ")
        assert "'many'" in lines[0]
        assert "flower.log" in lines[0]
        assert "Horus stopped." in out  # it stopped what it had started
        assert not any(pid_alive(p) for p in services(home))
    finally:
        end_group(proc)


def test_a_port_in_use_is_refused_before_anything_starts(home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "HORUS_HOME": str(home)}
        # Flower on a free port of its own: only the metrics port is taken
        flower = str(free_port())
        run = run_horus("up", "--metrics-port", str(port), "--flower-port", flower, env=env)
    assert run.returncode == 2
    assert run.stderr.strip() == (
        f"horus: The metrics endpoint cannot listen on 127.0.0.1:{port} (Address already "
        "in use): stop what holds the port, or pick another with --metrics-port"
    )
    assert services(home) == []


def test_horus_down_stops_the_up_of_the_same_home_and_only_that(home: Path) -> None:
    other = Path(tempfile.mkdtemp(prefix="horus-other-", dir="/tmp"))
    proc = start_up(home)
    try:
        wait_up(proc)
        env = {**os.environ, "HORUS_HOME": str(home)}
        second = run_horus("up", "--flower-port", str(free_port()), env=env)
        assert second.returncode == 2
        assert f"Horus is already up with HORUS_HOME={home} (pid {proc.pid})" in second.stderr
        elsewhere = run_horus("down", env={**os.environ, "HORUS_HOME": str(other)})
        assert elsewhere.returncode == 0
        assert elsewhere.stderr == f"Horus is not up with HORUS_HOME={other}.\n"
        assert proc.poll() is None  # another home's `down` left it alone
        down = run_horus("down", env=env)
        assert (down.returncode, down.stdout) == (0, f"Horus stopped (pid {proc.pid}).\n")
        assert proc.wait(5) == 0  # down returned once it had stopped
        assert not any(pid_alive(p) for p in services(home))
    finally:
        end_group(proc)
        shutil.rmtree(other, ignore_errors=True)
