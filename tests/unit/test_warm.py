"""Held processes with real /bin/sh processes: a held launch runs up to its stdin, a job
claims it only where it would run the same way, and a held process that is not used or no
longer runs leaves nothing."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from horus.execution import warm
from horus.execution.isolation import Isolation, python_paths
from horus.execution.launcher import AttemptLauncher
from horus.job import JobStatus
from horus.proc.groups import group_alive
from horus.proc.launch import Launch
from horus.proc.sandbox import Limits, Sandbox
from horus.runner import WarmStart

#: a "call" that says when it started and what it was given
SCRIPT = 'echo "started $(cat /proc/self/stat | cut -d" " -f22)"; cat; echo " HOME=$HOME"'
ARGV = ("/bin/sh", "-c", SCRIPT)
ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


@pytest.fixture(autouse=True)
def nothing_held() -> Iterator[None]:
    warm.release_all()
    yield
    warm.release_all()


#: the test runners: "call" makes library calls (ARGV), "shell" runs processes
KINDS: dict[str, WarmStart] = {"call": "call", "shell": "exec"}


def claimed(runner: str, *, started: bool = True) -> warm.Held:
    """A process held for the next job of ``runner``, claimed as that job's; with
    ``started``, once it has had time to start up."""
    warm.hold(runner, KINDS[runner], ARGV if runner == "call" else (), ENV, None, None)
    held = warm.claim(runner, None)
    assert held is not None
    if started:
        time.sleep(0.3)
    return held


def launcher(held: warm.Held | None, sandbox: Sandbox | None = None) -> AttemptLauncher:
    return AttemptLauncher(
        "job", 1, None, threading.Event(), isolation=Isolation(sandbox), held=held
    )


def test_a_held_launch_waits_for_its_stdin_then_runs_as_any_launch(tmp_path: Path) -> None:
    launch = Launch(
        ["/bin/sh", "-c", "cat; echo done"], env=ENV, cwd=tmp_path, output_cap=100, held=True
    )
    time.sleep(0.2)
    assert launch.proc.poll() is None  # started, and waiting
    assert launch.release(b"request ", 100)
    assert launch.release(b"again", 100) is False  # released once
    code = launch.wait(time.monotonic() + 10, threading.Event())
    ran = launch.finish()
    assert (code, ran.output) == (0, "request done\n")


def test_a_held_process_that_died_is_not_released(tmp_path: Path) -> None:
    launch = Launch(["/bin/sh", "-c", "exit 3"], env=ENV, cwd=tmp_path, output_cap=100, held=True)
    launch.proc.wait(timeout=10)
    assert launch.release(b"x", 100) is False
    launch.finish()


def test_a_job_claims_the_held_call_of_its_runner_and_sandbox_only() -> None:
    box = Sandbox(limits=Limits(processes=50))
    warm.hold("call", "call", ARGV, ENV, None, None)
    first = warm._held["call"]
    assert warm.claim("other", None) is None  # another runner's stays held for it
    assert group_alive(first.launch.proc.pid, first.launch.proc)
    assert warm.claim("call", box) is None  # another sandbox (another grant)
    assert not first.workdir.exists()
    assert not group_alive(first.launch.proc.pid, first.launch.proc)
    held = claimed("call", started=False)
    assert warm.claim("call", None) is None
    held.discard()


def test_a_claimed_call_runs_the_jobs_request_in_the_held_process() -> None:
    held = claimed("call")
    outcome = launcher(held).run(
        ARGV, env=ENV, cwd=held.workdir, deadline=time.monotonic() + 10, stdin=b"req", warm="call"
    )
    assert outcome.status is JobStatus.COMPLETED
    started, rest = outcome.output.split("\n", 1)
    assert rest == f"req HOME={held.workdir}\n"
    ticks = int(started.split()[1]) / os.sysconf("SC_CLK_TCK")
    age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks
    assert age > 0.25  # the process that was held, not a new one


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (("/bin/sh", "-c", "cat"), ENV),  # another command
        (ARGV, {**ENV, "LANG": "de_DE.UTF-8"}),  # another locale
        (ARGV, {**ENV, "TZ": "HRS+3"}),  # a time zone
    ],
)
def test_a_call_the_held_process_does_not_fit_starts_cold(
    argv: tuple[str, ...], env: dict[str, str]
) -> None:
    held = claimed("call")
    outcome = launcher(held).run(
        argv, env=env, cwd=held.workdir, deadline=time.monotonic() + 10, stdin=b"", warm="call"
    )
    assert outcome.status is JobStatus.COMPLETED
    assert not group_alive(held.launch.proc.pid, held.launch.proc)  # ended, unused
    assert held.workdir.is_dir()  # the attempt's directory now: the attempt removes it
    if argv == ARGV:
        ticks = int(outcome.output.split()[1]) / os.sysconf("SC_CLK_TCK")
        assert time.clock_gettime(time.CLOCK_BOOTTIME) - ticks < 0.25  # started for it
    held.workdir.rmdir()


def test_an_unused_claim_is_ended_when_its_attempt_closes() -> None:
    held = claimed("call", started=False)
    launcher(held).close()
    assert not group_alive(held.launch.proc.pid, held.launch.proc)
    held.workdir.rmdir()


def test_a_held_process_is_started_with_no_variable_of_its_maker_but_the_startup_ones() -> None:
    warm.hold(
        "call",
        "call",
        ("/bin/sh", "-c", "cat; env"),
        {**ENV, "SECRET": "x", "TZ": "UTC"},
        None,
        None,
    )
    held = warm._held.pop("call")
    held.launch.release(b"", 1000)
    held.launch.wait(time.monotonic() + 10, threading.Event())
    seen = dict(line.split("=", 1) for line in held.launch.finish().output.splitlines())
    assert "SECRET" not in seen
    assert seen["TZ"] == "UTC"
    assert seen["LANG"] == "C.UTF-8"
    assert seen["HOME"] == str(held.workdir)
    held.workdir.rmdir()


#: a job's command that shows its arguments, its environment, its stdin and its age
SHOW = [
    "/bin/sh",
    "-c",
    'printf "%s|" "$0" "$1"; echo; env | sort; cat; echo; cut -d" " -f22 /proc/$$/stat',
    "a b",
    'it\'s "quoted" $HOME\nand a new line',
]


def run_show(held: warm.Held | None, cwd: Path, env: dict[str, str]) -> tuple[str, float]:
    """SHOW run through a launcher (in ``held`` if given): its output and its age."""
    outcome = launcher(held).run(
        SHOW, env=env, cwd=cwd, deadline=time.monotonic() + 10, stdin=b"the stdin", warm="exec"
    )
    assert outcome.status is JobStatus.COMPLETED, outcome.error
    text, ticks = outcome.output.rstrip("\n").rsplit("\n", 1)
    age = time.clock_gettime(time.CLOCK_BOOTTIME) - int(ticks) / os.sysconf("SC_CLK_TCK")
    return text, age


def test_an_exec_start_runs_the_jobs_command_as_a_cold_start_would() -> None:
    held = claimed("shell")
    env = {**ENV, "HOME": str(held.workdir), "ODD": "a 'b' \"c\" $d `e`\nf\\g", "EMPTY": ""}
    warmed, warm_age = run_show(held, held.workdir, env)
    cold, cold_age = run_show(None, held.workdir, env)
    assert warmed == cold  # the same arguments, environment (exactly) and stdin
    assert "ODD=a 'b' \"c\" $d `e`\n" in warmed  # (sorted: its second line is apart)
    assert "\nf\\g\n" in warmed
    assert warmed.startswith("""a b|it's "quoted" $HOME\nand a new line|""")
    assert warm_age > 0.25  # in the held shell, started before
    assert cold_age < 0.25
    held.workdir.rmdir()


def test_an_exec_start_of_a_job_whose_variable_no_shell_can_set_starts_cold() -> None:
    held = claimed("shell")
    _, age = run_show(held, held.workdir, {**ENV, "NOT-A-NAME": "x"})
    assert age < 0.25
    assert not group_alive(held.launch.proc.pid, held.launch.proc)
    held.workdir.rmdir()


def test_each_runner_keeps_its_own_held_process() -> None:
    warm.hold("call", "call", ARGV, ENV, None, None)
    warm.hold("shell", "exec", [], ENV, None, None)
    shell = warm.claim("shell", None)
    call = warm.claim("call", None)
    assert shell is not None
    assert call is not None
    assert (shell.kind, call.kind) == ("exec", "call")
    shell.discard()
    call.discard()


def test_an_exec_start_gives_a_program_the_environment_a_cold_start_gives(tmp_path: Path) -> None:
    env = {**ENV, "HOME": "/nowhere", "PWD": "/nowhere", "IFS": "x", "A": "1"}

    def run(held: warm.Held | None) -> list[str]:
        argv = ["/usr/bin/env"]
        cwd = held.workdir if held is not None else tmp_path
        outcome = launcher(held).run(
            argv, env=env, cwd=cwd, deadline=time.monotonic() + 10, stdin=b"", warm="exec"
        )
        assert outcome.status is JobStatus.COMPLETED, outcome.error
        return sorted(outcome.output.replace(str(cwd), "<workdir>").splitlines())

    held = claimed("shell")
    assert run(held) == run(None)  # PWD is where it runs, as the keeper's shell sets it
    held.workdir.rmdir()


@pytest.mark.skipif(os.geteuid() != 0, reason="a root worker's jobs run as a user of their own")
def test_a_held_directory_is_the_sandbox_users_only_once_its_job_comes() -> None:
    box = Sandbox(readable=python_paths())
    warm.hold("shell", "exec", [], ENV, box, None)
    held = warm.claim("shell", box)
    assert held is not None
    # while it waits, the job running beside it (the same user) cannot write into it
    assert held.workdir.stat().st_uid == 0
    assert held.workdir.stat().st_mode & 0o777 == 0o700
    time.sleep(0.3)
    outcome = launcher(held, box).run(
        ["/bin/sh", "-c", "touch mine && stat -c %u mine"],
        env=ENV,
        cwd=held.workdir,
        deadline=time.monotonic() + 10,
        stdin=b"",
        warm="exec",
    )
    assert outcome.status is JobStatus.COMPLETED, outcome.error
    assert held.workdir.stat().st_uid == box.uid
    shutil.rmtree(held.workdir)
