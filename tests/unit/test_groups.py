"""Job process groups left by worker processes that died: the markers, killing what is left,
collecting an adopted job's exit, reaping, and the scratch directory."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from horus.proc.groups import (
    kill_recorded_groups,
    orphan_exits,
    settle,
    start_time,
    unrecorded,
    write_marker,
)
from tests.harness import pid_alive


def collect_orphans(groups_dir: Path, note: Callable[[str, int], bool]) -> int:
    """Record each orphan's exit with ``note`` and settle those it took, as a reaper does
    (:func:`horus.execution.orphans.record_exits` with the job store)."""
    noted = 0
    for found in orphan_exits(groups_dir):
        if note(found.label, found.code):
            settle(found)
            noted += 1
    return noted


class Reaped(NamedTuple):
    killed: int
    waiting: bool


def reap_orphans(groups_dir: Path, note: Callable[[str, int], bool]) -> Reaped:
    """One reaping pass, as :func:`horus.execution.orphans.reap` makes it."""
    collect_orphans(groups_dir, note)
    killed = kill_recorded_groups(groups_dir, orphans_only=True)
    collect_orphans(groups_dir, note)
    return Reaped(killed, unrecorded(groups_dir))


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


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    return gone.pid


def mark(
    groups: Path,
    leader: int,
    *,
    owner: int | None = None,
    adopter: int | None = None,
    label: str = "job-1 1",
    scratch: Path | None = None,
    started: str | None = None,
) -> Path:
    """Write the marker a worker process leaves for job leader ``leader``: by default from
    a worker process that died, with this process as the one that adopts its jobs."""
    groups.mkdir(exist_ok=True)
    owner_fields = f"{dead_pid()} 12345" if owner is None else f"{owner} {start_time(owner)}"
    head = f"{started or start_time(leader)} {owner_fields} {adopter or os.getpid()} {label}"
    marker = groups / str(leader)
    marker.write_text(f"{head}\n{scratch}" if scratch else head)
    return marker


def exited_unreaped(script: str) -> subprocess.Popen[bytes]:
    """A job leader of ours that ran ``script`` and exited, left a zombie (not reaped)."""
    leader = subprocess.Popen(["/bin/sh", "-c", script], start_new_session=True)
    deadline = time.monotonic() + 5
    while pid_alive(leader.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert Path(f"/proc/{leader.pid}").exists()
    assert not pid_alive(leader.pid)
    return leader


def noting(into: list[tuple[str, int]]) -> Callable[[str, int], bool]:
    def note(label: str, code: int) -> bool:
        into.append((label, code))
        return True

    return note


def test_a_recorded_live_group_is_stopped_and_its_marker_goes_once_it_is_gone(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    groups = tmp_path / "groups"
    mark(groups, sleeper.pid, owner=os.getpid())
    assert kill_recorded_groups(groups) == 1
    sleeper.wait(5)
    assert sleeper.returncode == -signal.SIGTERM  # stopped gently: its worker may be alive
    assert kill_recorded_groups(groups) == 0
    assert list(groups.iterdir()) == []


def test_a_marker_whose_pid_is_another_process_now_is_dropped_and_nothing_killed(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    groups = tmp_path / "groups"
    mark(groups, sleeper.pid, owner=os.getpid(), started="1")  # the pid was reused
    assert kill_recorded_groups(groups) == 0
    time.sleep(0.1)
    assert pid_alive(sleeper.pid)
    assert list(groups.iterdir()) == []


def test_stray_files_and_a_missing_directory_are_ignored(tmp_path: Path) -> None:
    assert kill_recorded_groups(tmp_path / "nowhere") == 0
    assert collect_orphans(tmp_path / "nowhere", noting([])) == 0
    groups = tmp_path / "groups"
    groups.mkdir()
    (groups / "not-a-pid").write_text("123")
    (groups / "999999999").write_text("123 1 1 1")  # no such process
    (groups / "12").write_text("garbage")
    assert kill_recorded_groups(groups) == 0
    assert collect_orphans(groups, noting([])) == 0


def test_orphans_only_spares_groups_whose_worker_process_lives_and_kills_the_others(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    groups = tmp_path / "groups"
    mark(groups, sleeper.pid, owner=os.getpid())
    assert kill_recorded_groups(groups, orphans_only=True) == 0
    assert sleeper.poll() is None
    mark(groups, sleeper.pid)  # its worker process died
    assert kill_recorded_groups(groups, orphans_only=True) == 1
    sleeper.wait(5)
    assert sleeper.returncode in (-signal.SIGTERM, -signal.SIGKILL)
    assert kill_recorded_groups(groups, orphans_only=True) == 0
    assert list(groups.iterdir()) == []


def test_the_reaper_kills_what_a_dead_leader_left_in_its_group(tmp_path: Path) -> None:
    """The job's first process dies with its worker (pdeathsig); its children live on in
    the group and must be killed before the job runs again."""
    pidfile = tmp_path / "child"
    leader = subprocess.Popen(
        ["/bin/sh", "-c", f"sleep 30 & echo $! > {pidfile}; exit 0"], start_new_session=True
    )
    started = start_time(leader.pid)
    leader.wait(5)
    child = int(pidfile.read_text())
    assert pid_alive(child)
    mark(tmp_path / "groups", leader.pid, started=started)
    assert kill_recorded_groups(tmp_path / "groups", orphans_only=True) == 1
    deadline = time.monotonic() + 5
    while pid_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(child)


def test_a_zombie_leaders_marker_stays_until_the_process_that_adopted_it_collects_its_exit(
    tmp_path: Path,
) -> None:
    """A job that exited 0 as its pool process died: any reaper (the sweeper's included)
    leaves its marker, so the worker's main process, which adopted the zombie, can still
    tell whose job it was and that it completed."""
    groups = tmp_path / "groups"
    leader = exited_unreaped("exit 0")
    marker = mark(groups, leader.pid)
    assert kill_recorded_groups(groups, orphans_only=True) == 0
    assert marker.exists()
    noted: list[tuple[str, int]] = []
    assert collect_orphans(groups, noting(noted)) == 1
    assert noted == [("job-1 1", 0)]
    assert not Path(f"/proc/{leader.pid}").exists()  # reaped
    kill_recorded_groups(groups, orphans_only=True)
    assert not marker.exists()
    leader.wait(5)


def test_the_marker_of_a_zombie_nobody_will_collect_does_not_stay(tmp_path: Path) -> None:
    """Its adopter is not the worker's main process (that one died too): keeping the marker
    would only leak it."""
    groups = tmp_path / "groups"
    leader = exited_unreaped("exit 0")
    marker = mark(groups, leader.pid, adopter=dead_pid())
    kill_recorded_groups(groups, orphans_only=True)
    assert not marker.exists()
    leader.wait(5)


def test_an_orphans_exit_code_or_signal_reaches_the_note(tmp_path: Path) -> None:
    groups = tmp_path / "groups"
    failed = exited_unreaped("exit 3")
    killed = exited_unreaped("kill -9 $$")
    mark(groups, failed.pid, label="job-3 2")
    mark(groups, killed.pid, label="job-9 1")
    noted: list[tuple[str, int]] = []
    assert collect_orphans(groups, noting(noted)) == 2
    assert sorted(noted) == [("job-3 2", 3), ("job-9 1", -signal.SIGKILL)]
    failed.wait(5)
    killed.wait(5)


def test_an_exit_that_could_not_be_noted_waits_for_the_next_collection(tmp_path: Path) -> None:
    """Should the store be away when the exit is noted, the exit is not lost with it."""
    groups = tmp_path / "groups"
    leader = exited_unreaped("exit 0")
    mark(groups, leader.pid)
    assert collect_orphans(groups, lambda label, code: False) == 0
    assert Path(f"/proc/{leader.pid}").exists()  # still a zombie, still ours
    noted: list[tuple[str, int]] = []
    assert collect_orphans(groups, noting(noted)) == 1
    assert noted == [("job-1 1", 0)]
    leader.wait(5)


def test_collect_orphans_leaves_jobs_whose_worker_process_lives(tmp_path: Path) -> None:
    groups = tmp_path / "groups"
    leader = exited_unreaped("exit 0")
    mark(groups, leader.pid, owner=os.getpid())
    assert collect_orphans(groups, noting([])) == 0
    assert Path(f"/proc/{leader.pid}").exists()  # its worker process reaps it, as run_process does
    leader.wait(5)


def test_collect_orphans_never_reaps_a_process_that_only_reused_a_markers_pid(
    tmp_path: Path,
) -> None:
    groups = tmp_path / "groups"
    leader = exited_unreaped("exit 0")
    mark(groups, leader.pid, started="1")  # recorded for an earlier process with that pid
    assert collect_orphans(groups, noting([])) == 0
    assert Path(f"/proc/{leader.pid}").exists()
    leader.wait(5)


def scratch_dir(where: Path | None = None) -> Path:
    """A scratch directory as the worker makes one (in the temporary directory by default)."""
    made = Path(tempfile.mkdtemp(prefix="horus-test-", dir=where))
    (made / "deep").mkdir()
    return made


def test_the_scratch_directory_of_a_dead_workers_job_goes_with_its_marker(
    tmp_path: Path,
) -> None:
    leader = exited_unreaped("exit 0")
    leader.wait(5)  # reaped: gone
    scratch = scratch_dir()
    marker = mark(tmp_path / "groups", leader.pid, scratch=scratch)
    kill_recorded_groups(tmp_path / "groups", orphans_only=True)
    assert not marker.exists()
    assert not scratch.exists()


def test_the_scratch_directory_of_a_live_workers_job_stays(tmp_path: Path) -> None:
    """Only the reaper of a dead worker process removes it; a live one removes its own."""
    groups = tmp_path / "groups"
    scratch = scratch_dir()
    try:
        leader = exited_unreaped("exit 0")
        leader.wait(5)
        mark(groups, leader.pid, owner=os.getpid(), scratch=scratch)
        kill_recorded_groups(groups)  # the leader is gone: the marker goes, the directory stays
        assert list(groups.iterdir()) == []
        assert scratch.exists()
    finally:
        scratch.joinpath("deep").rmdir()
        scratch.rmdir()


@pytest.mark.parametrize("where", ["elsewhere", "not-horus", "link"])
def test_a_marker_never_removes_a_directory_the_worker_did_not_make(
    tmp_path: Path, where: str
) -> None:
    """Whatever path a marker names, only a horus-* directory right in the temporary
    directory is removed."""
    if where == "elsewhere":
        target = scratch_dir(tmp_path)  # named horus-*, but not in the temporary directory
        named = target
    elif where == "not-horus":
        target = Path(tempfile.mkdtemp(prefix="precious-"))
        named = target
    else:
        target = tmp_path / "precious"
        target.mkdir()
        named = Path(tempfile.gettempdir()) / f"horus-link-{os.getpid()}"
        named.symlink_to(target)
    leader = exited_unreaped("exit 0")
    leader.wait(5)
    try:
        mark(tmp_path / "groups", leader.pid, scratch=named)
        kill_recorded_groups(tmp_path / "groups", orphans_only=True)
        assert target.exists()
    finally:
        if named.is_symlink():
            named.unlink()
        if where == "not-horus":
            target.rmdir()


def test_an_exit_its_keeper_wrote_is_noted_even_by_a_process_that_is_not_its_parent(
    tmp_path: Path,
) -> None:
    """The whole worker died just after its job exited 0: the keeper wrote the exit before
    it went, and the sweeper on that machine records it before taking the lease back."""
    groups = tmp_path / "groups"
    leader = exited_unreaped("exit 0")
    leader.wait(5)  # reaped by someone else (init, in real life)
    marker = mark(groups, leader.pid, label="job-7 2")
    (groups / f"exit-{leader.pid}").write_text("0\n")
    kill_recorded_groups(groups, orphans_only=True)
    assert marker.exists()  # kept until the exit is recorded
    assert collect_orphans(groups, lambda label, code: False) == 0
    assert (groups / f"exit-{leader.pid}").exists()  # not noted: kept for the next call
    noted: list[tuple[str, int]] = []
    assert collect_orphans(groups, noting(noted)) == 1
    assert noted == [("job-7 2", 0)]
    kill_recorded_groups(groups, orphans_only=True)
    assert list(groups.iterdir()) == []


def test_a_new_job_never_inherits_an_exit_file_left_under_its_pid(tmp_path: Path) -> None:
    groups = tmp_path / "groups"
    groups.mkdir()
    (groups / f"exit-{os.getpid()}").write_text("0\n")  # an earlier process with this pid
    write_marker(groups, os.getpid(), "job-8 1")
    assert not (groups / f"exit-{os.getpid()}").exists()


def test_an_exit_file_its_keeper_died_writing_is_noted_as_unknown(tmp_path: Path) -> None:
    groups = tmp_path / "groups"
    leader = exited_unreaped("exit 0")
    leader.wait(5)
    mark(groups, leader.pid)
    (groups / f"exit-{leader.pid}").write_text("")
    noted: list[tuple[str, int]] = []
    assert collect_orphans(groups, noting(noted)) == 1
    assert noted == [("job-1 1", -1)]  # not 0: the job is not taken as completed
    kill_recorded_groups(groups, orphans_only=True)
    assert list(groups.iterdir()) == []


def test_a_reaping_pass_says_when_an_exit_still_waits_to_be_recorded(tmp_path: Path) -> None:
    """The sweeper takes no lease back while it does."""
    groups = tmp_path / "groups"
    leader = exited_unreaped("exit 0")
    leader.wait(5)
    mark(groups, leader.pid)
    (groups / f"exit-{leader.pid}").write_text("0\n")
    assert reap_orphans(groups, lambda label, code: False).waiting  # the store is away
    noted: list[tuple[str, int]] = []
    assert not reap_orphans(groups, noting(noted)).waiting
    assert noted == [("job-1 1", 0)]
    assert list(groups.iterdir()) == []
