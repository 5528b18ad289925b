"""The launcher with real /bin/sh processes: outcomes, deadlines, cancel, output, stdin and
the group marker it leaves while a job runs."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from horus.execution.isolation import Isolation
from horus.execution.launcher import AttemptLauncher
from horus.job import JobStatus
from horus.proc.groups import start_time
from horus.runner import Outcome
from tests.harness import pid_alive


class Polled:
    """A stop flag that asks ``cancelled`` each time the launcher looks."""

    def __init__(self, cancelled: Callable[[], bool]) -> None:
        self.cancelled = cancelled

    def is_set(self) -> bool:
        return self.cancelled()


def run_process(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    deadline: float,
    cancelled: Callable[[], bool],
    output_cap: int,
    stdin: bytes | None = None,
    groups_dir: Path | None = None,
    label: str = "job 1",
    scratch: Path | None = None,
) -> Outcome:
    """Run ``argv`` through the worker's launcher, with no job store."""
    job_id, _, attempt = label.partition(" ")
    launcher = AttemptLauncher(
        job_id,
        int(attempt),
        None,
        Polled(cancelled),
        groups_dir=groups_dir,
        scratch=scratch,
        isolation=Isolation(None, output_cap),
    )
    return launcher.run(argv, env=env, cwd=cwd, deadline=deadline, stdin=stdin)


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
    assert outcome.error.startswith("[horus: killed at the job's timeout")  # nothing before
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

    # named after the job's process group (its keeper leads it)
    script = "cut -d' ' -f5 /proc/$$/stat; sleep 0.7"
    outcome = sh(script, tmp_path, cancelled=look, groups_dir=groups)
    pid = outcome.output.strip()
    assert outcome.status is JobStatus.COMPLETED
    assert seen, "the process ended before the first cancel check"
    assert list(seen[0]) == [pid]
    leader_started, owner, owner_started, adopter, *label = seen[0][pid].split()
    assert label == ["job", "1"]
    assert leader_started.isdigit()  # the leader's start time, in clock ticks
    assert (int(owner), owner_started) == (os.getpid(), start_time(os.getpid()))
    assert int(adopter) == os.getppid()  # who adopts the job should this process die
    assert list(groups.iterdir()) == []


def test_the_group_marker_is_gone_after_a_timeout(tmp_path: Path) -> None:
    groups = tmp_path / "groups"
    outcome = sh("sleep 30", tmp_path, timeout=0.3, groups_dir=groups)
    assert outcome.status is JobStatus.TIMEOUT
    assert list(groups.iterdir()) == []


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


def test_run_process_leaves_no_exit_file_behind(tmp_path: Path) -> None:
    groups = tmp_path / "groups"
    assert sh("exit 4", tmp_path, groups_dir=groups).exit_code == 4
    assert list(groups.iterdir()) == []


def test_a_job_starts_with_no_signal_ignored(tmp_path: Path) -> None:
    """Its keeper runs it as a background child, which a shell starts with SIGINT and
    SIGQUIT ignored; the job gets them back."""
    outcome = sh("grep SigIgn /proc/self/status", tmp_path)
    ignored = int(outcome.output.split()[1], 16)
    assert ignored & (1 << (signal.SIGINT - 1) | 1 << (signal.SIGQUIT - 1)) == 0
