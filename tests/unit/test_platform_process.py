"""The pieces of `horus up` that need no platform: its pid file, its restart budget and its
job lines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from horus.errors import ConfigError, ServiceFailed
from horus.services import pidfile, supervisor
from horus.services.supervisor import Restarts, job_line


def test_a_pid_file_names_the_up_of_its_home_until_it_is_released(tmp_path: Path) -> None:
    assert pidfile.running(tmp_path) is None
    pidfile.claim(tmp_path)
    assert pidfile.running(tmp_path) == os.getpid()
    pidfile.claim(tmp_path)  # the same process may claim again
    pidfile.release(tmp_path)
    assert pidfile.running(tmp_path) is None


def test_a_pid_reused_by_another_process_is_not_taken_for_horus(tmp_path: Path) -> None:
    file = pidfile.path_for(tmp_path)
    file.parent.mkdir(parents=True)
    file.write_text(f"{os.getpid()} 1\n")  # our pid, but not our start time
    assert pidfile.running(tmp_path) is None
    assert not file.exists()  # the stale file is gone


def test_a_second_up_of_the_same_home_is_refused(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        file = pidfile.path_for(tmp_path)
        file.parent.mkdir(parents=True)
        started = Path(f"/proc/{other.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        file.write_text(f"{other.pid} {started}\n")
        with pytest.raises(ConfigError, match=f"already up .* \\(pid {other.pid}\\)"):
            pidfile.claim(tmp_path)
        assert pidfile.stop(tmp_path, timeout=10) == other.pid
        assert other.poll() is not None
    finally:
        other.kill()
        other.wait()


def test_a_service_that_exits_at_start_fails_the_platform_with_its_last_log_line(
    tmp_path: Path,
) -> None:
    log = tmp_path / "flower.log"
    log.write_text("starting\nValueError: bad port\n\n")
    budget = Restarts("Flower", log)
    budget.started()
    with pytest.raises(ServiceFailed, match="Flower exited at start with code 1: ValueError"):
        budget.exited(1)


def test_a_service_that_keeps_exiting_fails_after_its_restarts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    budget = Restarts("the sweeper", tmp_path / "sweeper.log")
    budget.started()
    budget.first_start -= supervisor.STARTUP  # it was up a while
    for _ in range(supervisor.MAX_RESTARTS):
        budget.exited(1)  # restarted
    with pytest.raises(ServiceFailed, match="the sweeper exited 6 times in 60 s: no log"):
        budget.exited(1)


def test_job_lines_say_id_runner_status_and_attempt_or_duration() -> None:
    start = job_line({"id": "j1", "runner": "shell", "status": "running", "attempt": 2})
    assert start.endswith("  j1  shell  started  attempt 2")
    end = job_line(
        {"id": "j1", "runner": "shell", "status": "failed", "ending": "refused", "duration": 1}
    )
    assert end.endswith("  j1  shell  failed (refused)  1.00 s")
