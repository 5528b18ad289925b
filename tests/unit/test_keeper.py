"""A job's keeper with real processes: the go line a job waits for, the kill when its worker
process dies, and the exit it leaves behind, sandboxed or not. A job that exits 0 just as
its worker process dies is written as exited 0, however the moments fall."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from horus.proc.keeper import DIE_WITH_WORKER, GO
from horus.proc.keeper import wrap as _die_with_me

ENV = {"PATH": "/usr/bin:/bin"}

needs_setpriv = pytest.mark.skipif(not DIE_WITH_WORKER, reason="no setpriv (util-linux) here")


def launch(canary: Path, parent: int, stdin: bytes | None) -> int:
    """Start a job that touches ``canary`` the way run_process does, as the child of a
    worker process ``parent``; ``stdin`` is what it gets (None: its writer died at once)."""
    proc = subprocess.Popen(
        _die_with_me(["/bin/sh", "-c", f"touch {canary}"], None),
        env={**ENV, "HORUS_PARENT": str(parent)},
        stdin=subprocess.PIPE,
    )
    proc.communicate(stdin or b"", timeout=5)
    return proc.returncode


@needs_setpriv
def test_a_job_starts_only_after_its_worker_process_sent_the_go_line(tmp_path: Path) -> None:
    """The worker process records the job's group, then sends the go line: a job whose
    worker process died before that never runs, so no job runs unrecorded."""
    canary = tmp_path / "ran"
    assert launch(canary, os.getpid(), None) == 137  # the pipe closed, no go line
    assert launch(canary, os.getpid(), b"ready\n") == 137
    assert not canary.exists()
    assert launch(canary, os.getpid(), GO) == 0
    assert canary.exists()


@needs_setpriv
def test_a_job_whose_worker_process_is_not_its_parent_never_starts(tmp_path: Path) -> None:
    """Its worker process died before the death signal was armed: the job has another parent."""
    canary = tmp_path / "ran"
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert launch(canary, gone.pid, GO) == 137
    assert not canary.exists()


HELD_WORKER = """
import os, subprocess, sys
from pathlib import Path
from horus.proc.keeper import GO, wrap as _die_with_me
from horus.proc.sandbox import Sandbox
groups, cwd, script = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
box = Sandbox() if sys.argv[4] == "sandboxed" else None
if box is not None:
    box.prepare(cwd)
keeper = subprocess.Popen(
    _die_with_me(["/bin/sh", "-c", script], groups, box, cwd),
    env={"PATH": "/usr/bin:/bin", "HORUS_PARENT": str(os.getpid())},
    stdin=subprocess.PIPE,
    cwd=cwd,
    start_new_session=True,
)
keeper.stdin.write(GO)
keeper.stdin.close()
print(keeper.pid, flush=True)
sys.stdin.readline()
os._exit(0)  # the worker process dies when told, its job not reaped
"""


class Held:
    """A worker process that runs ``script`` under its keeper (in a sandbox if ``sandboxed``)
    in ``tmp_path / "job"`` and dies when :meth:`die` says so."""

    def __init__(self, tmp_path: Path, script: str, sandboxed: bool) -> None:
        self.groups, self.cwd = tmp_path / "groups", tmp_path / "job"
        self.groups.mkdir()
        self.cwd.mkdir()
        kind = "sandboxed" if sandboxed else "plain"
        argv = [sys.executable, "-c", HELD_WORKER, str(self.groups), str(self.cwd), script, kind]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        self.keeper = int(self.proc.stdout.readline())
        self.sandboxed = sandboxed

    def processes(self) -> tuple[int | None, int]:
        """The sandbox's init (None without a sandbox) and the job's first process, once the
        job runs."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            outer = children(self.keeper)
            init = children(outer[0]) if outer and self.sandboxed else []
            job = children(init[0]) if init else outer if not self.sandboxed else []
            if job and (self.cwd / "started").exists():
                return (init[0] if init else None), job[0]
            time.sleep(0.01)
        raise AssertionError("the job never started")

    def close(self) -> None:
        """End what is left: the worker process and the job's group (SIGKILL ends a stopped
        process too)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.keeper, signal.SIGKILL)

    def die(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"die\n")
        self.proc.stdin.flush()
        self.proc.wait(10)

    def exit_written(self) -> str:
        """The exit the keeper wrote (waits for it)."""
        exit_file = self.groups / f"exit-{self.keeper}"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if exit_file.exists() and exit_file.read_text().strip():
                return exit_file.read_text().strip()
            time.sleep(0.01)
        raise AssertionError("the keeper wrote no exit")


@pytest.fixture
def held(tmp_path: Path) -> Iterator[list[Held]]:
    """The held workers a test starts, ended after it whatever happened."""
    started: list[Held] = []
    yield started
    for one in started:
        one.close()


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def state(pid: int) -> str:
    """A process's state letter ('' once it is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


BOTH = pytest.mark.parametrize("sandboxed", [True, False], ids=["sandboxed", "plain"])


@needs_setpriv
@BOTH
def test_a_jobs_keeper_kills_it_the_moment_its_worker_process_dies(
    tmp_path: Path, sandboxed: bool, held: list[Held]
) -> None:
    held.append(Held(tmp_path, "touch started; sleep 1; touch ran", sandboxed))
    worker = held[0]
    worker.processes()
    worker.die()
    assert worker.exit_written() == str(128 + signal.SIGKILL)
    time.sleep(1.5)
    assert not (worker.cwd / "ran").exists()  # it never got to its effect


@needs_setpriv
@BOTH
def test_a_job_that_exited_before_its_worker_process_died_leaves_its_exit_behind(
    tmp_path: Path, sandboxed: bool, held: list[Held]
) -> None:
    held.append(Held(tmp_path, "touch started; exit 0", sandboxed))
    worker = held[0]
    deadline = time.monotonic() + 10
    while not (worker.cwd / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)
    worker.die()
    assert worker.exit_written() == "0"


@needs_setpriv
@BOTH
def test_a_job_that_exited_0_as_its_worker_process_died_is_written_as_exited_0(
    tmp_path: Path, sandboxed: bool, held: list[Held]
) -> None:
    """The worst moment: the job has done its effect and exited 0, and nothing has reported
    that yet (its keeper is held, and so is the sandbox's init, which reports it) when its
    worker process dies. The keeper's kill must not turn that exit into a kill: the job
    would run its effect a second time."""
    script = "touch started; until [ -e go ]; do sleep 0.01; done; exit 0"
    held.append(Held(tmp_path, script, sandboxed))
    worker = held[0]
    init, job = worker.processes()
    os.kill(worker.keeper, signal.SIGSTOP)
    if init is not None:
        os.kill(init, signal.SIGSTOP)
    (worker.cwd / "go").touch()
    deadline = time.monotonic() + 10
    while state(job) not in ("Z", "") and time.monotonic() < deadline:
        time.sleep(0.005)
    worker.die()  # the keeper's death signal waits for it to run again
    os.kill(worker.keeper, signal.SIGCONT)
    time.sleep(0.3)  # the keeper ends the job as its worker process died
    if init is not None and state(init):
        os.kill(init, signal.SIGCONT)
    assert worker.exit_written() == "0"
