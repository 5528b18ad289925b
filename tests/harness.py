"""Real processes for the tests: the embedded Redis and `horus worker` processes.

Every process started here runs in its own process group and is ended by its group id.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from horus import config
from horus.client import Client
from horus.config import Settings
from horus.proc import groups
from horus.proc.groups import kill_recorded_groups
from horus.store import keys, workers
from horus.store.records import Store

REPO = Path(__file__).resolve().parent.parent
PLUGINS = REPO / "tests" / "plugins"
#: the one host directory the tests' jobs may write (their grant makes it writable; a
#: sandboxed job sees nothing else of the host's /tmp). Every test's ``tmp_path`` is in it.
JOB_FILES = Path(tempfile.mkdtemp(prefix="hjobs-", dir="/tmp"))
JOB_FILES.chmod(0o777)


#: the grant the tests' chaos jobs run under, first in the policy: they stop their own
#: worker processes (tests of recovery, not of the sandbox, which would keep them from it)
CHAOS_GRANT = '[[grants]]\nwho = ["local"]\nrunners = ["chaos"]\nsandbox = "none"\n\n'


def grant_job_files(policy: str, first: str = CHAOS_GRANT) -> str:
    """The policy text with :data:`JOB_FILES` writable under each grant of ``policy``, and
    the grants ``first`` before them."""
    writable = f"writable = [{str(JOB_FILES)!r}]"
    granted = re.sub(r"(?m)^\[\[grants\]\]\n", lambda m: f"{m[0]}{writable}\n", policy)
    start = granted.index("\n[[grants]]") + 1
    return granted[:start] + first + granted[start:]


def job_dir(name: str) -> Path:
    """A new directory under :data:`JOB_FILES` that a sandboxed job may write."""
    path = Path(tempfile.mkdtemp(prefix=f"{name[:40]}-", dir=JOB_FILES))
    path.chmod(0o777)
    return path


def sleep_tag() -> str:
    """A ``sleep`` argument no other process has (60 s and a few nanoseconds): a job that
    runs ``sleep TAG`` can be found among the host's processes by :func:`tagged`, whatever
    its pid inside its sandbox."""
    return f"60.{time.time_ns() % 10**9:09d}"


def tagged(tag: str) -> list[int]:
    """The host pids of the live ``sleep TAG`` processes (not of the shells or sandboxes
    whose command lines hold the tag too)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        sleeps = argv[0].rsplit(b"/", 1)[-1] == b"sleep" and tag.encode() in argv[1:]
        if sleeps and pid_alive(int(cmdline.parent.name)):
            found.append(int(cmdline.parent.name))
    return found


def plugin_env() -> dict[str, str]:
    """The environment that lets a worker load the test runners of :data:`PLUGINS`."""
    return {
        "PYTHONPATH": os.pathsep.join(p for p in (str(PLUGINS), os.environ.get("PYTHONPATH")) if p)
    }


def horus_cmd(*args: str) -> list[str]:
    """The argv of a `horus` command run with this interpreter."""
    return [sys.executable, "-m", "horus", *args]


def run_horus(
    *args: str, env: dict[str, str] | None = None, stdin: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a `horus` command as a user would, from the repository, and capture its output
    (its stdin the file ``stdin``, if given)."""
    with open(stdin or os.devnull, encoding="utf-8") as given:
        return subprocess.run(
            horus_cmd(*args),
            env=env,
            cwd=REPO,
            stdin=given,
            capture_output=True,
            text=True,
            timeout=60,
        )


def end_group(proc: subprocess.Popen[bytes] | subprocess.Popen[str], grace: float = 15.0) -> None:
    """SIGTERM a process group, SIGKILL it after ``grace`` seconds, and reap the leader."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # leftovers of the group


def settings_for(env: dict[str, str]) -> Settings:
    """The settings a process started with ``env`` uses (brokers may differ from ours)."""
    ours = config.load()
    broker = env.get("HORUS_BROKER_URL") or ours.broker_url
    backend = env.get("HORUS_RESULT_BACKEND") or ours.result_backend
    return replace(ours, broker_url=broker, result_backend=backend)


class WorkerProcess:
    """A real `horus worker` process serving some runners."""

    def __init__(
        self, runners: list[str], concurrency: int = 1, env: dict[str, str] | None = None
    ) -> None:
        self.runners = runners
        self.concurrency = concurrency
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        home = config.load().home
        self.log = home / "logs" / f"test-worker-{'-'.join(runners)}-{time.time_ns()}.log"

    def start(self, timeout: float = 60.0) -> WorkerProcess:
        """Start the worker and wait until its heartbeat shows it serving its runners."""
        argv = horus_cmd("worker", "--concurrency", str(self.concurrency), "-l", "INFO")
        for runner in self.runners:
            argv += ["--runner", runner]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv,
                env=self.env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        store = Store(settings_for(self.env))
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early: {self.log.read_text()[-3000:]}")
            if any(info.get("pid") == self.proc.pid for info in workers.live(store).values()):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"worker did not come up: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """End the worker's process group and any job group it left."""
        if self.proc is not None:
            end_group(self.proc)
        kill_recorded_groups(config.load().groups_dir, orphans_only=True)


def wait_until(predicate: object, timeout: float = 10.0, step: float = 0.02) -> bool:
    """Poll ``predicate()`` until it is truthy or ``timeout`` passes."""
    assert callable(predicate)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


def workdir_of(job_id: str) -> Path | None:
    """The working directory of the running job ``job_id`` (a warm-started job's is not
    named after it): the scratch directory its process group's marker records."""
    for marker in groups.markers(config.load().groups_dir):
        if marker.label.split()[:1] == [job_id] and marker.scratch and marker.scratch.is_dir():
            return marker.scratch
    return None


def pid_alive(pid: int) -> bool:
    """True if a process with ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def attach_cancel(client: Client, job_id: str, request: str) -> None:
    """Put a cancel request on a job's record directly, as a race between a client and a
    worker can leave it (the client attaches one only to a running job)."""
    assert client.store.redis.hset(keys.job(job_id), "cancel", request) == 1
