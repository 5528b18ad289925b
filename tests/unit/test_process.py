"""run_process with real /bin/sh processes, kill_recorded_groups and collect_orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from horus.job import JobStatus
from horus.process import (
    DIE_WITH_WORKER,
    GO,
    Outcome,
    _die_with_me,
    _start_time,
    collect_orphans,
    kill_recorded_groups,
    run_process,
)
from tests.harness import pid_alive

ENV = {"PATH": "/usr/bin:/bin"}


def sh(
    script: str,
    cwd: Path,
    *,
    timeout: float = 10.0,
    cancelled: Callable[[], bool] = lambda: False,
    output_cap: int = 1024 * 1024,
    stdin: bytes | None = None,
    groups_dir: Path | None = None,
) -> Outcome:
    """Run ``script`` with /bin/sh through run_process."""
    return run_process(
        ["/bin/sh", "-c", script],
        env=ENV,
        cwd=cwd,
        deadline=time.monotonic() + timeout,
        cancelled=cancelled,
        output_cap=output_cap,
        stdin=stdin,
        groups_dir=groups_dir,
    )


alive = pid_alive


def wait_for_pid(pidfile: Path) -> int:
    """The pid a process wrote to ``pidfile``."""
    return int(pidfile.read_text().strip())


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A `sleep 30` in its own process group, reaped in the background; always ended."""
    proc = subprocess.Popen(["sleep", "30"], start_new_session=True)
    reaper = threading.Thread(target=proc.wait, daemon=True)
    reaper.start()
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        reaper.join(5)


def test_a_command_that_exits_0_is_completed_with_its_stdout(tmp_path: Path) -> None:
    outcome = sh("echo hello; echo world", tmp_path)
    assert outcome.status is JobStatus.COMPLETED
    assert outcome.output == "hello\nworld\n"
    assert outcome.exit_code == 0
    assert outcome.error is None
    assert outcome.output_truncated is False


def test_a_command_runs_in_the_given_directory_with_only_the_given_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HORUS_TEST_SECRET", "leak")
    outcome = sh("pwd; env", tmp_path)
    lines = outcome.output.splitlines()
    assert Path(lines[0]).resolve() == tmp_path.resolve()
    assert "PATH=/usr/bin:/bin" in lines
    assert "leak" not in outcome.output


def test_a_command_that_exits_3_is_failed_with_exit_code_3_and_its_stderr(
    tmp_path: Path,
) -> None:
    outcome = sh("echo partial; echo 'something broke' >&2; exit 3", tmp_path)
    assert outcome.status is JobStatus.FAILED
    assert outcome.exit_code == 3
    assert outcome.error == "something broke\n"
    assert outcome.output == "partial\n"


def test_a_command_past_its_deadline_is_killed_as_timeout_grandchildren_included(
    tmp_path: Path,
) -> None:
    pidfile = tmp_path / "grandchild.pid"
    start = time.monotonic()
    outcome = sh(f"sleep 30 & echo $! > {pidfile}; sleep 30", tmp_path, timeout=0.5)
    elapsed = time.monotonic() - start
    assert outcome.status is JobStatus.TIMEOUT
    assert elapsed < 3
    assert outcome.error is not None
    assert "killed at the job's timeout" in outcome.error
    assert "--timeout" in outcome.error
    assert not alive(wait_for_pid(pidfile))


def test_a_job_that_dies_on_sigterm_is_reported_soon_after_its_deadline(tmp_path: Path) -> None:
    start = time.monotonic()
    outcome = sh("sleep 30", tmp_path, timeout=0.2)
    assert outcome.status is JobStatus.TIMEOUT
    assert time.monotonic() - start < 0.9


def test_a_background_grandchild_does_not_outlive_a_command_that_exited(
    tmp_path: Path,
) -> None:
    pidfile = tmp_path / "grandchild.pid"
    start = time.monotonic()
    outcome = sh(f"sleep 30 > /dev/null 2>&1 & echo $! > {pidfile}; echo done", tmp_path)
    assert outcome.status is JobStatus.COMPLETED
    assert outcome.output == "done\n"
    assert time.monotonic() - start < 3
    assert not alive(wait_for_pid(pidfile))


def test_a_cancelled_command_is_stopped_as_cancelled(tmp_path: Path) -> None:
    start = time.monotonic()
    outcome = sh("sleep 30", tmp_path, cancelled=lambda: True)
    assert outcome.status is JobStatus.CANCELLED
    assert outcome.error is not None
    assert "cancelled while running" in outcome.error
    assert time.monotonic() - start < 3


def test_output_over_the_cap_is_truncated_and_marked(tmp_path: Path) -> None:
    outcome = sh("printf 0123456789ABCDEF", tmp_path, output_cap=10)
    assert outcome.status is JobStatus.COMPLETED
    assert outcome.output.startswith("0123456789\n")
    assert "ABCDEF" not in outcome.output
    assert "output truncated, 6 more bytes dropped" in outcome.output
    assert outcome.output_truncated is True


def test_stderr_over_the_cap_is_truncated_and_marked(tmp_path: Path) -> None:
    outcome = sh("printf 0123456789ABCDEF >&2", tmp_path, output_cap=10)
    assert outcome.error is not None
    assert outcome.error.startswith("0123456789\n")
    assert "output truncated" in outcome.error
    assert outcome.output_truncated is True


def test_output_within_the_cap_is_not_marked(tmp_path: Path) -> None:
    outcome = sh("printf 0123456789", tmp_path, output_cap=10)
    assert outcome.output == "0123456789"
    assert outcome.output_truncated is False


def test_stdin_bytes_reach_the_process(tmp_path: Path) -> None:
    outcome = sh("cat", tmp_path, stdin=b"hello from stdin\n")
    assert outcome.output == "hello from stdin\n"


def test_without_stdin_the_process_reads_end_of_file(tmp_path: Path) -> None:
    start = time.monotonic()
    outcome = sh("cat; echo eof", tmp_path)
    assert outcome.output == "eof\n"
    assert time.monotonic() - start < 3


def test_a_process_ignoring_a_large_stdin_does_not_break_the_run(tmp_path: Path) -> None:
    outcome = sh("exit 0", tmp_path, stdin=b"x" * (1 << 20))
    assert outcome.status is JobStatus.COMPLETED


def test_a_process_that_never_reads_a_large_stdin_is_still_killed_at_its_deadline(
    tmp_path: Path,
) -> None:
    start = time.monotonic()
    outcome = sh("sleep 2", tmp_path, timeout=0.3, stdin=b"x" * (1 << 20))
    assert outcome.status is JobStatus.TIMEOUT
    assert time.monotonic() - start < 1.8


def test_the_group_marker_exists_while_running_and_is_gone_after(tmp_path: Path) -> None:
    groups = tmp_path / "groups"
    seen: list[dict[str, str]] = []

    def look() -> bool:  # called by run_process while the process runs
        seen.append({p.name: p.read_text() for p in groups.iterdir()})
        return False

    outcome = sh("echo $$; sleep 0.7", tmp_path, cancelled=look, groups_dir=groups)
    pid = outcome.output.strip()
    assert outcome.status is JobStatus.COMPLETED
    assert seen, "the process ended before the first cancel check"
    assert list(seen[0]) == [pid]
    leader_started, owner, owner_started = seen[0][pid].split()
    assert leader_started.isdigit()  # the leader's start time, in clock ticks
    assert (int(owner), owner_started) == (os.getpid(), _start_time(os.getpid()))
    assert list(groups.iterdir()) == []


def test_the_group_marker_is_gone_after_a_timeout(tmp_path: Path) -> None:
    groups = tmp_path / "groups"
    outcome = sh("sleep 30", tmp_path, timeout=0.3, groups_dir=groups)
    assert outcome.status is JobStatus.TIMEOUT
    assert list(groups.iterdir()) == []


def test_kill_recorded_groups_kills_a_recorded_live_group(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    groups = tmp_path / "groups"
    groups.mkdir()
    started = _start_time(sleeper.pid)
    assert started is not None
    (groups / str(sleeper.pid)).write_text(f"{started} {os.getpid()} {_start_time(os.getpid())}")
    assert kill_recorded_groups(groups) == 1
    sleeper.wait(5)
    assert sleeper.returncode == -signal.SIGTERM
    assert kill_recorded_groups(groups) == 0  # the leader is gone: its marker goes too
    assert list(groups.iterdir()) == []


def test_kill_recorded_groups_ignores_a_group_whose_start_time_does_not_match(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    groups = tmp_path / "groups"
    groups.mkdir()
    # a different process that reused the pid
    (groups / str(sleeper.pid)).write_text(f"1 {os.getpid()} 1")
    assert kill_recorded_groups(groups) == 0
    time.sleep(0.1)
    assert sleeper.poll() is None
    assert alive(sleeper.pid)
    assert list(groups.iterdir()) == []  # the stale marker is cleaned up


def test_kill_recorded_groups_skips_stray_files_and_a_missing_directory(tmp_path: Path) -> None:
    assert kill_recorded_groups(tmp_path / "nowhere") == 0
    groups = tmp_path / "groups"
    groups.mkdir()
    (groups / "not-a-pid").write_text("123")
    (groups / "999999999").write_text("123 1 1")  # no such process
    (groups / "12").write_text("garbage")
    assert kill_recorded_groups(groups) == 0


def test_orphans_only_spares_groups_whose_worker_process_lives(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    groups = tmp_path / "groups"
    groups.mkdir()
    started = _start_time(sleeper.pid)
    me = os.getpid()
    (groups / str(sleeper.pid)).write_text(f"{started} {me} {_start_time(me)}")
    assert kill_recorded_groups(groups, orphans_only=True) == 0
    assert sleeper.poll() is None
    dead = subprocess.Popen(["true"])
    dead.wait()
    (groups / str(sleeper.pid)).write_text(f"{started} {dead.pid} 12345")
    assert kill_recorded_groups(groups, orphans_only=True) == 1
    sleeper.wait(5)
    assert kill_recorded_groups(groups, orphans_only=True) == 0
    assert list(groups.iterdir()) == []


def test_the_reaper_kills_what_a_dead_leader_left_in_its_group(tmp_path: Path) -> None:
    """The job's first process dies with its worker (pdeathsig); its children live on in
    the group and must be killed before the job runs again."""
    pidfile = tmp_path / "child"
    leader = subprocess.Popen(
        ["/bin/sh", "-c", f"sleep 30 & echo $! > {pidfile}; exit 0"], start_new_session=True
    )
    started = _start_time(leader.pid)
    leader.wait(5)
    child = int(pidfile.read_text())
    assert alive(child)
    groups = tmp_path / "groups"
    groups.mkdir()
    (groups / str(leader.pid)).write_text(f"{started} {leader.pid} {started}")  # owner dead
    assert kill_recorded_groups(groups, orphans_only=True) == 1
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)


def exited_unreaped(script: str) -> subprocess.Popen[bytes]:
    """A job leader of ours that ran ``script`` and exited, left a zombie (not reaped)."""
    leader = subprocess.Popen(["/bin/sh", "-c", script], start_new_session=True)
    deadline = time.monotonic() + 5
    while pid_alive(leader.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert Path(f"/proc/{leader.pid}").exists()
    assert not pid_alive(leader.pid)
    return leader


def orphan_marker(groups: Path, leader: subprocess.Popen[bytes], label: str) -> Path:
    """The marker of ``leader``'s job, left by a worker process that died."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    groups.mkdir(exist_ok=True)
    marker = groups / str(leader.pid)
    marker.write_text(f"{_start_time(leader.pid)} {gone.pid} 12345 {label}")
    return marker


def test_a_zombie_leaders_marker_stays_until_the_process_that_adopted_it_collects_its_exit(
    tmp_path: Path,
) -> None:
    """A job that exited 0 as its pool process died: any reaper (the sweeper's included)
    leaves its marker, so the worker's main process, which adopted the zombie, can still
    tell whose job it was and that it completed."""
    groups = tmp_path / "groups"
    leader = exited_unreaped("exit 0")
    marker = orphan_marker(groups, leader, "job-1 1")
    assert kill_recorded_groups(groups, orphans_only=True) == 0
    assert marker.exists()
    noted: list[tuple[str, int]] = []
    assert collect_orphans(groups, lambda label, code: noted.append((label, code))) == 1
    assert noted == [("job-1 1", 0)]
    assert not Path(f"/proc/{leader.pid}").exists()  # reaped
    kill_recorded_groups(groups, orphans_only=True)
    assert not marker.exists()
    leader.wait(5)


def test_an_orphans_exit_code_or_signal_reaches_the_note(tmp_path: Path) -> None:
    groups = tmp_path / "groups"
    failed = exited_unreaped("exit 3")
    killed = exited_unreaped("kill -9 $$")
    orphan_marker(groups, failed, "job-3 2")
    orphan_marker(groups, killed, "job-9 1")
    noted: dict[str, int] = {}
    assert collect_orphans(groups, noted.__setitem__) == 2
    assert noted == {"job-3 2": 3, "job-9 1": -signal.SIGKILL}
    failed.wait(5)
    killed.wait(5)


def test_a_note_that_fails_leaves_the_zombie_for_the_next_collection(tmp_path: Path) -> None:
    """Should the store be away when the exit is noted, the exit is not lost with it."""
    groups = tmp_path / "groups"
    leader = exited_unreaped("exit 0")
    orphan_marker(groups, leader, "job-1 1")

    def away(label: str, code: int) -> None:
        raise ConnectionError("the store is away")

    with pytest.raises(ConnectionError):
        collect_orphans(groups, away)
    assert Path(f"/proc/{leader.pid}").exists()  # still a zombie, still ours
    noted: list[tuple[str, int]] = []
    assert collect_orphans(groups, lambda label, code: noted.append((label, code))) == 1
    assert noted == [("job-1 1", 0)]
    leader.wait(5)


def test_collect_orphans_leaves_jobs_whose_worker_process_lives(tmp_path: Path) -> None:
    groups = tmp_path / "groups"
    groups.mkdir()
    leader = exited_unreaped("exit 0")
    me = os.getpid()
    (groups / str(leader.pid)).write_text(f"{_start_time(leader.pid)} {me} {_start_time(me)} j 1")
    assert collect_orphans(groups, lambda label, code: None) == 0
    assert Path(f"/proc/{leader.pid}").exists()  # ours to reap, as run_process does
    leader.wait(5)


def test_the_scratch_directory_of_a_dead_workers_job_goes_with_its_marker(
    tmp_path: Path,
) -> None:
    groups = tmp_path / "groups"
    leader = exited_unreaped("exit 0")
    leader.wait(5)  # reaped: gone
    scratch = tmp_path / "horus-job-1-abc"
    (scratch / "deep").mkdir(parents=True)
    marker = orphan_marker(groups, leader, "job-1 1")
    marker.write_text(f"{marker.read_text()}\n{scratch}")
    kill_recorded_groups(groups, orphans_only=True)
    assert not marker.exists()
    assert not scratch.exists()


def test_the_scratch_directory_of_a_live_workers_job_stays(tmp_path: Path) -> None:
    """Only the reaper of a dead worker process removes it; a live one removes its own."""
    groups = tmp_path / "groups"
    groups.mkdir()
    scratch = tmp_path / "horus-job-2-abc"
    scratch.mkdir()
    me = os.getpid()
    (groups / "999999999").write_text(f"1 {me} {_start_time(me)} job-2 1\n{scratch}")
    kill_recorded_groups(groups)  # no such leader: the marker goes, the directory stays
    assert list(groups.iterdir()) == []
    assert scratch.exists()


def test_run_process_records_its_scratch_directory_while_it_runs(tmp_path: Path) -> None:
    groups = tmp_path / "groups"
    seen: list[str] = []

    def look() -> bool:
        seen.extend(p.read_text() for p in groups.iterdir())
        return False

    run_process(
        ["/bin/sh", "-c", "sleep 0.7"],
        env=ENV,
        cwd=tmp_path,
        deadline=time.monotonic() + 10,
        cancelled=look,
        output_cap=1024,
        groups_dir=groups,
        label="job-3 2",
        scratch=tmp_path,
    )
    assert seen
    assert seen[0].endswith(f" job-3 2\n{tmp_path}")
    assert list(groups.iterdir()) == []


def launch(canary: Path, parent: int, stdin: bytes | None) -> int:
    """Start a job that touches ``canary`` the way run_process does, as the child of a
    worker process ``parent``; ``stdin`` is what it gets (None: its writer died at once)."""
    assert DIE_WITH_WORKER, "setpriv (util-linux) is what makes a job die with its worker"
    proc = subprocess.Popen(
        _die_with_me(["/bin/sh", "-c", f"touch {canary}"]),
        env={**ENV, "HORUS_PARENT": str(parent)},
        stdin=subprocess.PIPE,
    )
    proc.communicate(stdin or b"", timeout=5)
    return proc.returncode


def test_a_job_starts_only_after_its_worker_process_sent_the_go_line(tmp_path: Path) -> None:
    """The worker process records the job's group, then sends the go line: a job whose
    worker process died before that never runs, so no job runs unrecorded."""
    canary = tmp_path / "ran"
    assert launch(canary, os.getpid(), None) == 137  # the pipe closed, no go line
    assert launch(canary, os.getpid(), b"ready\n") == 137
    assert not canary.exists()
    assert launch(canary, os.getpid(), GO) == 0
    assert canary.exists()


def test_a_job_whose_worker_process_is_not_its_parent_never_starts(tmp_path: Path) -> None:
    """Its worker process died before the death signal was armed: the job has another parent."""
    canary = tmp_path / "ran"
    assert launch(canary, 1, GO) == 137
    assert not canary.exists()
